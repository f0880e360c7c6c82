"""The messages the batch queue carries besides S3's notifications: manifest chunks and items,
validated like the manifest's lines (a message no line could have made is dropped), and
asynchronous jobs and their callbacks."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from editgate.app.batch.layout import BatchId

logger = Logger(child=True)


MessageT = TypeVar("MessageT", bound=BaseModel)


class ChunkMessage(BaseModel):
    """Fan out the manifest from byte ``offset`` on, which is where line ``line`` starts. ``etag``:
    the manifest upload the batch runs (empty until its first read)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["chunk"] = "chunk"
    batch_id: BatchId
    bucket: str
    key: str
    offset: int = Field(default=0, ge=0)
    line: int = Field(default=1, ge=1)
    defaults: dict[str, Any] = Field(default_factory=dict)
    etag: str = ""
    # The message may repeat one handled before, maybe longer ago than an edit's record lives (a
    # redelivery, a chunk's items queued again by its redelivery, a redrive): an item that may
    # have succeeded already asks the ledger first, lest fal be paid again.
    repeat: bool = False


class ItemMessage(BaseModel):
    """One edit of a batch: where its image is, and its parameters with the defaults applied."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["item"] = "item"
    batch_id: BatchId
    item_id: BatchId
    line: int = Field(ge=0)  # in the manifest (0: an item without one)
    image_bucket: str
    image_key: str = Field(min_length=1)
    image_version: str | None = None
    params: dict[str, Any]
    # The message may repeat one handled before, maybe longer ago than an edit's record lives (a
    # redelivery, a chunk's items queued again by its redelivery, a redrive): an item that may
    # have succeeded already asks the ledger first, lest fal be paid again.
    repeat: bool = False


class JobMessage(BaseModel):
    """Run an asynchronous job (``app.batch.jobs``)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["job"] = "job"
    job_id: str = Field(pattern=r"^job_[0-9a-f]{32}$")


class CallbackMessage(BaseModel):
    """Deliver a job's end to its callback URL: attempt ``attempt`` (from 0)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["callback"] = "callback"
    job_id: str = Field(pattern=r"^job_[0-9a-f]{32}$")
    attempt: int = Field(ge=0, le=100)


def validated(kind: type[MessageT], document: dict[str, Any]) -> MessageT | None:
    try:
        return kind.model_validate(document)
    except ValidationError as exc:
        logger.warning(
            "a batch message no manifest could have made: dropped",
            extra={"kind": kind.__name__, "problems": [".".join(map(str, e["loc"])) for e in exc.errors()]},
        )
        return None
