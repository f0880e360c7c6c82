"""A batch item: submitted to fal once (``editgate.app.batch.submit``), or refused with its record
written; the collect step settles it the same way (``settle``): its record written, its state
and counters settled in the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from editgate.adapters.ledger import Settled
from editgate.adapters.objects import ObjectNotFound, ObjectStore
from editgate.app.batch.layout import output_key
from editgate.app.batch.messages import ItemMessage
from editgate.app.batch.runtime import BatchRuntime
from editgate.app.batch.submit import submit_item
from editgate.app.batch.summary import publish_progress
from editgate.domain.errors import EditgateError, InvalidRequest, RequestInProgress
from editgate.domain.models import EditRequest, EditResult


class RetryLater(Exception):
    """An item failed in a way another attempt may fix: leave its message to SQS's retry."""

    def __init__(self, error: EditgateError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class ItemOutcome:
    state: Literal["submitted", "failed", "skipped"]
    detail: str
    submitted: int = 0  # fal requests this attempt submitted (0 when an earlier one had)


def process_item(
    item: ItemMessage, runtime: BatchRuntime, *, last_attempt: bool, deadline: float
) -> ItemOutcome:
    """Hand one item to fal and return: its webhook, or the sweeper, has it collected (see
    ``editgate.app.batch.collect``), which writes its record and settles it. Once: an item that
    succeeded before is skipped, and an attempt after a crash (or after fal accepted an earlier
    one's calls) submits only what is not yet submitted. A failure another attempt may fix raises
    ``RetryLater``, unless this is the last attempt (and while another attempt submits the item,
    always).

    Nothing is read first: a message that may ``repeat`` one handled longer ago than the edit's
    journal lives asks the ledger first."""
    if item.repeat and _succeeded_before(item, runtime):
        return _ALREADY_SUCCEEDED
    try:
        request, image = _request(item, runtime), _image(item, runtime)
        submitted = submit_item(item, request, image, runtime, deadline)
    except EditgateError as exc:
        # Another attempt submitting the item right now is never this item's failure.
        if exc.retryable and (not last_attempt or isinstance(exc, RequestInProgress)):
            raise RetryLater(exc) from exc
        if not item.repeat and _succeeded_before(item, runtime):  # a duplicate never undoes a success
            return _ALREADY_SUCCEEDED
        record = {**failed_record(exc), "message": item.model_dump()}
        settle(runtime, item.batch_id, item.item_id, item.line, record, 0, 0.0)
        return ItemOutcome("failed", exc.message)
    return ItemOutcome("submitted", f"{submitted} fal request(s) submitted", submitted)


_ALREADY_SUCCEEDED = ItemOutcome("skipped", "already succeeded")


def _succeeded_before(item: ItemMessage, runtime: BatchRuntime) -> bool:
    return runtime.ledger.state(item.batch_id, item.item_id) == "succeeded"


def _request(item: ItemMessage, runtime: BatchRuntime) -> EditRequest:
    # The stack's BATCH_DEFAULTS under the item's own parameters. Results are always stored and
    # presigned: a batch answers in records, not in the response.
    return EditRequest.from_values({**runtime.defaults, **item.params, "response_format": "url"})


def results_folder(item: ItemMessage) -> str:
    return output_key(item.batch_id, "results", item.item_id)


def _image(item: ItemMessage, runtime: BatchRuntime) -> bytes:
    """The item's image, if its batch may read it and it is no larger than ``max_image_bytes``."""
    where = f"s3://{item.image_bucket}/{item.image_key}"
    refusal = runtime.rules.refusal(item.batch_id, item.image_bucket, item.image_key)
    if refusal:
        message = f"Invalid value for 'image': {where} is not for this batch to read: {refusal}."
        raise InvalidRequest(message, param="image")
    limit = runtime.max_image_bytes
    try:
        data = _read_within(runtime.store, item, limit)
    except ObjectNotFound:
        message = f"The image {where} does not exist or cannot be read."
        raise InvalidRequest(message, param="image", code="image_not_found") from None
    if data is None:
        message = f"Invalid value for 'image': {where} is larger than the {limit:,} bytes accepted."
        raise InvalidRequest(message, param="image", code="image_too_large")
    return data


def _read_within(store: ObjectStore, item: ItemMessage, limit: int) -> bytes | None:
    """The item's object, or None when it is larger than ``limit`` bytes: its size is asked
    first (a HEAD), so a larger one is never read; should it grow after that, one byte over the
    limit is all that is read."""
    if store.head(item.image_bucket, item.image_key, version_id=item.image_version).size > limit:
        return None
    data = store.read(item.image_bucket, item.image_key, length=limit + 1, version_id=item.image_version)
    return None if len(data) > limit else data


def settle(
    runtime: BatchRuntime,
    batch_id: str,
    item_id: str,
    line: int,
    record: dict[str, Any],
    images: int,
    cost: float,
) -> Settled:
    """The item's record first, then its state and counters: a crash between the two is repaired
    by the redelivery, which finds the edit done and settles it."""
    document = {
        "id": item_id,
        "batch_id": batch_id,
        "line": line or None,
        **record,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    runtime.store.put_json(output_key(batch_id, "items", f"{item_id}.json"), document)
    settled = runtime.ledger.settle(batch_id, item_id, record["state"], images=images, cost_usd=cost)
    publish_progress(batch_id, runtime, due=False, may_finish=settled.may_finish)
    return settled


def failed_record(error: EditgateError) -> dict[str, Any]:
    return {"state": "failed", **error.body()}


def succeeded_record(result: EditResult) -> dict[str, Any]:
    return {
        "state": "succeeded",
        "results": [{"key": image.key, "url": image.url} for image in result.images],
        "size": str(result.size),
        "output_format": result.output_format,
        "model": result.model,
        "cost": {"usd": result.cost_usd, "images": result.billed_images},
        "provider_request_ids": list(result.provider_request_ids),
        "failures": [failure.model_dump() for failure in result.failures],
        "ignored_params": list(result.ignored_params),
        "passthrough_params": list(result.passthrough_params),
    }
