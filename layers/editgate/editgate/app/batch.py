"""Batch edits: a manifest (or a single image) dropped in the batch bucket becomes one queued
message per item, each edited by the same service as an HTTP edit, with a status record per item
and a summary per batch.

Bucket layout (input and output prefixes never overlap, so the function never triggers itself):
- ``incoming/<batch id>/manifest.jsonl`` (uploaded last) and the images it names;
- ``incoming/single/<name>.<png|jpg|jpeg|webp>`` with ``x-amz-meta-prompt`` and other parameters;
- ``batches/<batch id>/results/<item id>/<k>.<ext>``, ``batches/<batch id>/items/<item id>.json``
  and ``batches/<batch id>/summary.json``.

The batch queue carries three kinds of message: S3 event notifications, manifest ``chunk``s (the
manifest from a byte offset on, so no invocation reads more than ``batch_chunk_lines`` lines)
and ``item``s (one edit each).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict, Field

from editgate.adapters.storage import BatchLedger, ObjectNotFound, ResultStore, Tally, WorkQueue
from editgate.app import edit_service as service
from editgate.app.services import Services
from editgate.domain import identity as dedupe
from editgate.domain import json_values as bodies
from editgate.domain.errors import EditgateError, InvalidRequest, UpstreamTimeout
from editgate.domain.models import EditRequest, EditResult

logger = Logger(child=True)

INCOMING = "incoming"
SINGLE_BATCH = "single"
MANIFEST_NAME = "manifest.jsonl"
OUTPUT = "batches"
SINGLE_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# How much of a manifest one read takes: a longer line cannot be an edit.
WINDOW_BYTES = 8 * 1024 * 1024
# An item message must fit SQS's 256 KiB.
_MAX_LINE_BYTES = 200 * 1024
# How often one execution environment rewrites a summary that is not final.
_SUMMARY_INTERVAL_SECONDS = 1.0
# Leave this much of the invocation (at most 5 s, at most a fifth of it) to record an item.
_BATCH_MARGIN_SECONDS = 5.0
ResultCode = Literal["Succeeded", "TemporaryFailure", "PermanentFailure"]


class ChunkMessage(BaseModel):
    """Fan out the manifest from byte ``offset`` on, which is where line ``line`` starts."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["chunk"] = "chunk"
    batch_id: str
    bucket: str
    key: str
    offset: int = 0
    line: int = 1
    defaults: dict[str, Any] = Field(default_factory=dict)


class ItemMessage(BaseModel):
    """One edit of a batch: where its image is, and its parameters with the defaults applied."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["item"] = "item"
    batch_id: str
    item_id: str
    line: int  # in the manifest (0: an item without one)
    image_bucket: str
    image_key: str
    params: dict[str, Any]


@dataclass(frozen=True)
class LineFailure:
    """A manifest line that is no edit."""

    item_id: str
    line: int
    error: InvalidRequest
    unparsable: bool  # not JSON at all


class RetryLater(Exception):
    """An item failed in a way another attempt may fix: leave its message to SQS's retry."""

    def __init__(self, error: EditgateError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class ItemOutcome:
    state: Literal["succeeded", "failed", "skipped"]
    detail: str


@dataclass
class BatchRuntime:
    """What the batch function needs, built once per cold start."""

    services: Services
    ledger: BatchLedger
    queue: WorkQueue
    # When this environment last wrote each batch's summary (time.monotonic()).
    summaries_written: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(cls, services: Services) -> BatchRuntime:
        settings = services.settings
        if not (settings.batch_table and settings.batch_queue_url):
            raise RuntimeError("editgate is misconfigured: batch edits need BATCH_TABLE and BATCH_QUEUE_URL")
        return cls(services, BatchLedger(settings.batch_table), WorkQueue(settings.batch_queue_url))


def deadline_for(remaining_ms: int) -> float:
    """Items have no HTTP limit: the invocation's own time, less a margin to record the outcome."""
    remaining = remaining_ms / 1000
    return time.monotonic() + remaining - min(_BATCH_MARGIN_SECONDS, remaining / 5)


def handle_message(body: str, runtime: BatchRuntime, *, receive_count: int, deadline: float) -> None:
    """One message of the batch queue. Raises ``RetryLater`` for an item worth another attempt."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        logger.warning("a message on the batch queue that is no JSON object: dropped")
    elif document.get("Event") == "s3:TestEvent":
        logger.info("S3's test event: skipped")
    elif "Records" in document:
        for record in document["Records"]:
            _object_created(record, runtime)
    elif document.get("kind") == "chunk":
        fan_out(ChunkMessage.model_validate(document), runtime)
    elif document.get("kind") == "item":
        last_attempt = receive_count >= runtime.services.settings.batch_max_receives
        item = ItemMessage.model_validate(document)
        outcome = process_item(item, runtime, last_attempt=last_attempt, deadline=deadline)
        logger.info("batch item", extra={"item": item.item_id, "state": outcome.state})
    else:
        logger.warning("a message of unknown kind on the batch queue: dropped")


def _object_created(record: Mapping[str, Any], runtime: BatchRuntime) -> None:
    bucket = record["s3"]["bucket"]["name"]
    key = unquote_plus(record["s3"]["object"]["key"])  # S3 event keys arrive URL-encoded
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != INCOMING:
        logger.info("an object that starts nothing: ignored", extra={"key": key})
    elif parts[1] == SINGLE_BATCH:
        _single(bucket, key, record["s3"]["object"].get("eTag", ""), runtime)
    elif parts[2] == MANIFEST_NAME and _ID.match(parts[1]):
        fan_out(ChunkMessage(batch_id=parts[1], bucket=bucket, key=key), runtime)
    else:
        logger.info("an object that starts nothing: ignored", extra={"key": key})


def _single(bucket: str, key: str, etag: str, runtime: BatchRuntime) -> None:
    """A single image, edited with its metadata as parameters. Its id is its name and a digest
    of its content and parameters: the same upload twice is one edit, a new prompt is another."""
    name = key.rsplit("/", 1)[-1]
    if not name.lower().endswith(SINGLE_IMAGE_SUFFIXES):
        logger.info("a single upload that is not an image: ignored", extra={"key": key})
        return
    try:
        params = runtime.services.store.metadata(bucket, key)
    except ObjectNotFound:
        return  # deleted since: nothing to edit
    version = hashlib.sha256(json.dumps([etag, params], sort_keys=True).encode()).hexdigest()[:8]
    item = ItemMessage(
        batch_id=SINGLE_BATCH,
        item_id=f"{_safe_id(name.rsplit('.', 1)[0])}-{version}",
        line=0,
        image_bucket=bucket,
        image_key=key,
        params=params,
    )
    runtime.ledger.add_lines(SINGLE_BATCH, 1, chunk=item.item_id, last=True)
    runtime.queue.send([item.model_dump()])


def _parse_lines(
    lines: list[bytes], chunk: ChunkMessage
) -> tuple[list[ItemMessage], list[LineFailure], dict[str, Any]]:
    """The chunk's lines as items to queue and lines that failed, and the defaults in force
    after its last line (a defaults line applies to the lines after it)."""
    defaults = dict(chunk.defaults)
    items: list[ItemMessage] = []
    failures: list[LineFailure] = []
    for number, raw in enumerate(lines, start=chunk.line):
        if not raw.strip():
            continue
        parsed = _parse_line(raw, number, defaults, chunk)
        if isinstance(parsed, ItemMessage):
            items.append(parsed)
        elif isinstance(parsed, LineFailure):
            failures.append(parsed)
        else:
            defaults = parsed
    return items, failures, defaults


def fan_out(chunk: ChunkMessage, runtime: BatchRuntime) -> None:
    """Queue one item per manifest line, at most ``batch_chunk_lines`` of them, then hand the rest
    of the manifest to the next message. A line that is no edit fails on its own; a manifest
    whose first lines are none of them JSON fails whole."""
    store = runtime.services.store
    try:
        window = store.read(chunk.bucket, chunk.key, start=chunk.offset, length=WINDOW_BYTES)
    except ObjectNotFound:
        logger.warning("manifest gone before it was read", extra={"key": chunk.key})
        return
    at_end = len(window) < WINDOW_BYTES
    pieces = window.split(b"\n")
    if not at_end:
        pieces.pop()  # may be cut short: the next chunk reads it whole
    if not pieces:
        _refuse_manifest(chunk, runtime, f"line {chunk.line} is longer than {WINDOW_BYTES:,} bytes")
        return
    taken = pieces[: runtime.services.settings.batch_chunk_lines]
    more = len(pieces) > len(taken) or not at_end
    items, failures, defaults = _parse_lines(taken, chunk)
    if chunk.offset == 0 and not items and failures and all(f.unparsable for f in failures):
        _refuse_manifest(chunk, runtime, "it is not JSON Lines: none of its lines is a JSON object")
        return
    items, duplicates = _claim_ids(items, runtime.ledger)
    failures += duplicates
    runtime.ledger.add_lines(
        chunk.batch_id, len(items) + len(failures), chunk=str(chunk.offset), last=not more
    )
    for failure in failures:
        _settle(runtime, chunk.batch_id, failure.item_id, failure.line, _failed_record(failure.error), 0, 0.0)
    runtime.queue.send([item.model_dump() for item in items])
    if more:
        rest = chunk.model_copy(
            update={
                "offset": chunk.offset + sum(len(p) + 1 for p in taken),
                "line": chunk.line + len(taken),
                "defaults": defaults,
            }
        )
        runtime.queue.send([rest.model_dump()])
    publish_progress(chunk.batch_id, runtime)


def _claim_ids(items: list[ItemMessage], ledger: BatchLedger) -> tuple[list[ItemMessage], list[LineFailure]]:
    """Each id belongs to the first manifest line that names it, claimed in manifest order (a
    redelivered chunk claims the same ids for the same lines); a later line with the same id fails."""
    claimed, duplicates = [], []
    for item in items:
        holder = ledger.claim(item.batch_id, item.item_id, item.line)
        if holder == item.line:
            claimed.append(item)
            continue
        message = f"The id '{item.item_id}' is already used by manifest line {holder}."
        error = InvalidRequest(message, param="id", code="duplicate_id")
        duplicates.append(LineFailure(f"{item.item_id}~line-{item.line}", item.line, error, False))
    return claimed, duplicates


def _parse_line(
    raw: bytes, number: int, defaults: dict[str, Any], chunk: ChunkMessage
) -> ItemMessage | LineFailure | dict[str, Any]:
    """A manifest line as an item, as the defaults (the first line only), or as why it is no edit."""
    fallback = f"line-{number}"
    try:
        value = bodies.parse_json(raw)
    except InvalidRequest as exc:
        message = f"Manifest line {number}: {exc.message}"
        return LineFailure(fallback, number, InvalidRequest(message, code="invalid_manifest_line"), True)
    if not isinstance(value, dict):
        message = f"Manifest line {number} is not a JSON object."
        return LineFailure(fallback, number, InvalidRequest(message, code="invalid_manifest_line"), True)
    if number == 1 and set(value) == {"defaults"}:
        if isinstance(value["defaults"], dict):
            return dict(value["defaults"])
        message = "Invalid value for 'defaults': expected an object of edit parameters."
        return LineFailure(fallback, number, InvalidRequest(message, param="defaults"), False)
    item_id = value.get("id", fallback)
    if not isinstance(item_id, str) or not _ID.match(item_id):
        message = (
            f"Invalid value for 'id' on manifest line {number}: 1 to 128 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit."
        )
        return LineFailure(fallback, number, InvalidRequest(message, param="id"), False)
    if len(raw) > _MAX_LINE_BYTES:
        message = f"Manifest line {number} is longer than {_MAX_LINE_BYTES:,} bytes."
        return LineFailure(item_id, number, InvalidRequest(message, code="invalid_manifest_line"), False)
    image = value.get("image")
    location = _image_location(image, chunk) if isinstance(image, str) else None
    if location is None:
        message = (
            f"Invalid value for 'image' on manifest line {number}: a file name beside the "
            "manifest or an s3://bucket/key URI."
        )
        return LineFailure(item_id, number, InvalidRequest(message, param="image"), False)
    params = {**defaults, **{k: v for k, v in value.items() if k not in ("id", "image")}}
    return ItemMessage(
        batch_id=chunk.batch_id,
        item_id=item_id,
        line=number,
        image_bucket=location[0],
        image_key=location[1],
        params=params,
    )


def _image_location(image: str, chunk: ChunkMessage) -> tuple[str, str] | None:
    if image.startswith("s3://"):
        bucket, _, key = image.removeprefix("s3://").partition("/")
        return (bucket, key) if bucket and key else None
    if not image or image.startswith("/") or ".." in image.split("/"):
        return None
    return chunk.bucket, f"{INCOMING}/{chunk.batch_id}/{image}"


def process_item(
    item: ItemMessage, runtime: BatchRuntime, *, last_attempt: bool, deadline: float
) -> ItemOutcome:
    """Edit one item and record its outcome, once: an item that succeeded before is skipped, and
    an attempt after a crash collects the fal requests the crashed one submitted. A failure
    another attempt may fix raises ``RetryLater``, unless this is the last attempt."""
    ledger = runtime.ledger
    if ledger.state(item.batch_id, item.item_id) == "succeeded":
        return ItemOutcome("skipped", "already succeeded")
    try:
        result = _edit(item, runtime, deadline)
        if not result.complete and not last_attempt:
            raise _missing_images(result)
    except EditgateError as exc:
        if exc.retryable and not last_attempt:
            logger.warning(
                "batch item left for SQS to retry",
                extra={"item": item.item_id, "code": exc.code, "detail": exc.message},
            )
            raise RetryLater(exc) from exc
        record = {**_failed_record(exc), "message": item.model_dump()}
        _settle(runtime, item.batch_id, item.item_id, item.line, record, 0, 0.0)
        return ItemOutcome("failed", exc.message)
    record = _succeeded_record(result)
    _settle(runtime, item.batch_id, item.item_id, item.line, record, len(result.images), result.cost_usd)
    return ItemOutcome("succeeded", f"{len(result.images)} image(s)")


def _missing_images(result: EditResult) -> EditgateError:
    """Images fal made (and billed) that this attempt could not deliver: the next attempt collects
    them. On the last attempt the item succeeds with what was delivered, the rest in its failures."""
    failure = next(failure for failure in result.failures if failure.retryable)
    return UpstreamTimeout(failure.message, code=failure.code)


def _edit(item: ItemMessage, runtime: BatchRuntime, deadline: float) -> EditResult:
    # Results are always stored and presigned: a batch answers in records, not in the response.
    request = EditRequest.from_values({**item.params, "response_format": "url"})
    try:
        data = runtime.services.store.read(item.image_bucket, item.image_key)
    except ObjectNotFound:
        raise InvalidRequest(
            f"The image s3://{item.image_bucket}/{item.image_key} does not exist or cannot be read.",
            param="image",
            code="image_not_found",
        ) from None
    outcome = service.run_edit(
        request,
        [data],
        runtime.services,
        identity=dedupe.for_item(item.batch_id, item.item_id, request, [data]),
        request_id=f"{item.batch_id}/{item.item_id}",
        deadline=deadline,
        folder=f"{OUTPUT}/{item.batch_id}/results/{item.item_id}",
    )
    return outcome.result


def run_task(
    job_id: str,
    bucket: str,
    key: str,
    arguments: Mapping[str, str],
    runtime: BatchRuntime,
    *,
    deadline: float,
) -> tuple[ResultCode, str]:
    """One task of an S3 Batch Operations job: edit ``s3://bucket/key`` with the job's user
    arguments as parameters, as an item of batch ``s3job-<job id>``."""
    batch_id = f"s3job-{_safe_id(job_id)}"
    item = ItemMessage(
        batch_id=batch_id,
        item_id=_key_id(key),
        line=0,
        image_bucket=bucket,
        image_key=key,
        params=dict(arguments),
    )
    runtime.ledger.add_lines(batch_id, 1, chunk=item.item_id, last=True)
    try:
        outcome = process_item(item, runtime, last_attempt=False, deadline=deadline)
    except RetryLater as exc:
        return "TemporaryFailure", exc.error.message
    where = f"s3://{runtime.services.store.bucket}/{OUTPUT}/{batch_id}/items/{item.item_id}.json"
    if outcome.state == "failed":
        return "PermanentFailure", f"{outcome.detail} ({where})"
    return "Succeeded", where


def publish_progress(batch_id: str, runtime: BatchRuntime) -> None:
    """The summary after an item settled: rewritten at most every second by one environment while
    the batch runs (each write costs three calls), and always once it is done."""
    now = time.monotonic()
    if now - runtime.summaries_written.get(batch_id, -math.inf) < _SUMMARY_INTERVAL_SECONDS:
        tally = runtime.ledger.tally(batch_id)
        if tally is None or not tally.done:
            return
    runtime.summaries_written[batch_id] = now
    publish_summary(batch_id, runtime.ledger, runtime.services.store)


def publish_summary(batch_id: str, ledger: BatchLedger, store: ResultStore) -> None:
    """Write ``summary.json`` from the ledger's counters. Writers race, so one that wrote before the
    batch finished looks again and, if it has finished meanwhile, writes the final summary."""
    tally = ledger.tally(batch_id)
    if tally is None:
        return
    if tally.done and tally.finished_at is None:
        ledger.mark_finished(batch_id)
        tally = ledger.tally(batch_id) or tally
    key = f"{OUTPUT}/{batch_id}/summary.json"
    store.put_json(key, summary(batch_id, tally))
    if tally.finished_at is None:
        after = ledger.tally(batch_id)
        if after is not None and after.finished_at is not None:
            store.put_json(key, summary(batch_id, after))


def summary(batch_id: str, tally: Tally, error: dict[str, Any] | None = None) -> dict[str, Any]:
    finished = tally.finished_at is not None
    return {
        "batch_id": batch_id,
        "items": tally.total,
        "counts": {
            "succeeded": tally.succeeded,
            "failed": tally.failed,
            "pending": max(0, tally.total - tally.succeeded - tally.failed),
        },
        "images": tally.images,
        "cost": {"usd": tally.cost_usd},
        "started_at": tally.started_at,
        "finished_at": tally.finished_at,
        "finished": finished,
        "manifest_read": tally.manifest_done,
        "error": error,
    }


def redrive(
    batch_id: str, store: ResultStore, ledger: BatchLedger, queue: WorkQueue, dead_letter_url: str | None
) -> tuple[int, int]:
    """Queue the batch's failed items again, and every message of the dead-letter queue. Nothing
    already paid is paid again: each item collects what its earlier attempts submitted. Returns
    how many failed items and dead letters were queued."""
    again = [record["message"] for record in failed_items(batch_id, store) if record.get("message")]
    dead = list(queue.drain(dead_letter_url)) if dead_letter_url else []
    # An item both failed and dead-lettered goes once: two copies would only race each other.
    unique = {_message_name(message): message for message in again + dead}
    for message in again:
        ledger.settle(batch_id, message["item_id"], "queued")  # pending again, until it settles
    ledger.reopen(batch_id)
    publish_summary(batch_id, ledger, store)
    queue.send(list(unique.values()))
    return len(again), len(dead)


def failed_items(batch_id: str, store: ResultStore) -> list[dict[str, Any]]:
    """The item records of a batch that failed."""
    records = (json.loads(store.get(key)) for key in store.keys(f"{OUTPUT}/{batch_id}/items/"))
    return [record for record in records if record.get("state") == "failed"]


def _message_name(message: dict[str, Any]) -> str:
    if message.get("kind") == "item":
        return f"item:{message.get('batch_id')}:{message.get('item_id')}"
    return json.dumps(message, sort_keys=True)


def _settle(
    runtime: BatchRuntime,
    batch_id: str,
    item_id: str,
    line: int,
    record: dict[str, Any],
    images: int,
    cost: float,
) -> None:
    """The item's record first, then its state and counters: a crash between the two is repaired
    by the redelivery, which finds the edit done and settles it."""
    document = {
        "id": item_id,
        "batch_id": batch_id,
        "line": line or None,
        **record,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    runtime.services.store.put_json(f"{OUTPUT}/{batch_id}/items/{item_id}.json", document)
    runtime.ledger.settle(batch_id, item_id, record["state"], images=images, cost_usd=cost)
    publish_progress(batch_id, runtime)


def _failed_record(error: EditgateError) -> dict[str, Any]:
    return {"state": "failed", **error.body()}


def _succeeded_record(result: EditResult) -> dict[str, Any]:
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
    }


def _refuse_manifest(chunk: ChunkMessage, runtime: BatchRuntime, why: str) -> None:
    error = InvalidRequest(f"The manifest {chunk.key} cannot be read: {why}.", code="invalid_manifest")
    runtime.ledger.add_lines(chunk.batch_id, 0, chunk=str(chunk.offset), last=True)
    runtime.ledger.mark_finished(chunk.batch_id)
    tally = runtime.ledger.tally(chunk.batch_id)
    if tally is not None:
        document = summary(chunk.batch_id, tally, error=error.body()["error"])
        runtime.services.store.put_json(f"{OUTPUT}/{chunk.batch_id}/summary.json", document)


def _safe_id(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:100]
    return cleaned or "item"


def _key_id(key: str) -> str:
    """An item id for any object key: readable, and unique by a digest of the key."""
    return f"{_safe_id(key)}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
