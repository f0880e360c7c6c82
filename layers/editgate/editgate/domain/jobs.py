"""Asynchronous edit jobs: an edit submitted now and collected later (``Prefer: respond-async``).
A job is queued, runs once on the batch machinery, and ends succeeded, failed or cancelled; its
caller may be told at a ``callback_url``, signed as Standard Webhooks sign (HMAC-SHA256 of
``id.timestamp.body`` with a per-key secret). Data and rules; no I/O."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Literal

import pybase64
from pydantic import BaseModel, ConfigDict

from editgate.domain.errors import EditgateError, InvalidRequest

JobStatus = Literal["queued", "in_progress", "succeeded", "failed", "cancelled"]
ENDED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
JOB_OBJECT = "image.edit.job"
# The list route's page sizes, as OpenAI's lists have them.
DEFAULT_PAGE = 20
MAX_PAGE = 100
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of Standard Webhooks secrets


class Job(BaseModel):
    """A job as it is kept: who asked, what, where its input images are, and how it ended.
    ``result``: the edit's result (image keys, presigned when the job is read); ``error``: the
    OpenAI error body of a failed job."""

    model_config = ConfigDict(frozen=True)

    id: str
    caller: str
    created: int
    status: JobStatus = "queued"
    request: dict[str, Any]
    inputs: tuple[str, ...]  # the input images' keys in the results bucket
    digest: str  # the request's content: an Idempotency-Key reused for another request is refused
    callback_url: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class JobExpired(EditgateError):
    """A job that had not ended long after it was made or started: its run died (its message
    dead-lettered) or never came. The jobs' sweeper ends it so."""

    status = 504
    default_code = "job_expired"


def expired(stale_seconds: int) -> JobExpired:
    """Why the sweeper failed a job, as its caller reads it."""
    return JobExpired(
        f"The job did not finish in time (it had not ended {stale_seconds // 60} minutes after it "
        "was queued or started) and was stopped: fal was asked to cancel its requests. Submit it again."
    )


def job_id(identity_key: str | None) -> str:
    """A keyed job's id is its edit's name (the same Idempotency-Key, the same job); any other
    job's, random."""
    return "job_" + (identity_key[:32] if identity_key else secrets.token_hex(16))


def folder(prefix: str, job_id: str) -> str:
    """Where a job keeps its input images (``input/``) and its results (``output/``)."""
    return f"{prefix}{job_id}"


def prefers_async(prefer_headers: list[str]) -> bool:
    """Whether ``Prefer`` (RFC 7240: comma-separated preferences, each with optional parameters)
    asks for ``respond-async``."""
    parts = (part for header in prefer_headers for part in header.split(","))
    preferences = {part.split(";")[0].split("=")[0].strip().lower() for part in parts}
    return "respond-async" in preferences


def page_size(raw: str | None) -> int:
    """The list route's ``limit``: 1 to ``MAX_PAGE``."""
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        message = f"Invalid value for 'limit': expected an integer from 1 to {MAX_PAGE}."
        raise InvalidRequest(message, param="limit")
    return int(raw)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + pybase64.b64encode(secrets.token_bytes(32)).decode("ascii")


def webhook_signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header of a delivery: ``v1,`` and the base64 HMAC-SHA256, keyed
    by the secret's bytes, of ``id.timestamp.body``."""
    key = pybase64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + pybase64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def callback_event(job: Job, timestamp: str) -> dict[str, Any]:
    """What a callback delivers: the job's id and how it ended (Standard Webhooks' thin payload:
    the result itself is read from the job, with fresh URLs)."""
    return {
        "type": f"{JOB_OBJECT}.{job.status}",
        "timestamp": timestamp,
        "data": {"id": job.id, "object": JOB_OBJECT, "status": job.status},
    }
