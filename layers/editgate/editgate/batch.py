"""Batch edits: a manifest (or a single image) dropped in the batch bucket becomes one queued
message per item, each edited by the same service as an HTTP edit, with a status record per item
and a summary per batch.

Bucket layout (input and output prefixes never overlap, so the function never triggers itself):
- ``incoming/<batch id>/manifest.jsonl`` (uploaded last) and the images it names;
- ``incoming/single/<name>.<png|jpg|jpeg|webp>`` with ``x-amz-meta-prompt`` and other parameters;
- ``batches/<batch id>/results/<item id>/<k>.<ext>``, ``batches/<batch id>/items/<item id>.json``
  and ``batches/<batch id>/summary.json`` (every key made by ``output_key``).

A batch reads only what its author may give it: objects of its own ``incoming/<batch id>/``
folder, and of the stack's source bucket (``SOURCE_BUCKET``) if it has one; each no larger than
``MAX_IMAGE_BYTES`` (a HEAD before the read). A batch id takes one manifest.

The batch queue carries three kinds of message: S3 event notifications, manifest ``chunk``s (the
manifest from a byte offset on, so no invocation reads more than ``batch_chunk_lines`` lines)
and ``item``s (one edit each). Chunks and items are checked by the rules the manifest's lines are
(a message no line could have made writes nothing).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from editgate import bodies, dedupe, openai_shapes, service
from editgate.errors import EditgateError, InvalidRequest, RequestInProgress, UpstreamTimeout
from editgate.models import EditResult
from editgate.pipeline import Services
from editgate.storage import BatchLedger, ObjectNotFound, ResultStore, Tally, WorkQueue, message_body

logger = Logger(child=True)

INCOMING = "incoming"
SINGLE_BATCH = "single"
S3_JOB_PREFIX = "s3job-"  # the batch of an S3 Batch Operations job: s3job-<job id>
MANIFEST_NAME = "manifest.jsonl"
OUTPUT = "batches"
# What a batch takes as an image, by name (any case): single uploads, `editgate batch run`.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_ID = re.compile(_ID_PATTERN)
# A name in a batch's output folder: an id, or a line's id made unique (``<id>~line-<n>``).
_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,199}$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# How much of a manifest one read takes: a longer line cannot be an edit.
WINDOW_BYTES = 8 * 1024 * 1024
# A manifest line (the defaults line too): its item's message must fit SQS's 256 KiB.
_MAX_LINE_BYTES = 200 * 1024
# How often one execution environment rewrites a summary that is not final.
_SUMMARY_INTERVAL_SECONDS = 1.0
# Leave this much of the invocation (at most 5 s, at most a fifth of it) to record an item.
_BATCH_MARGIN_SECONDS = 5.0
ResultCode = Literal["Succeeded", "TemporaryFailure", "PermanentFailure"]
BatchId = Annotated[str, StringConstraints(pattern=_ID_PATTERN)]
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


@dataclass(frozen=True)
class LineFailure:
    """A manifest line that is no edit."""

    item_id: str
    line: int
    error: InvalidRequest
    unparsable: bool  # not JSON at all


class ManifestRefused(Exception):
    """The manifest (from this chunk on) cannot be read: no line after it is."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class RetryLater(Exception):
    """An item failed in a way another attempt may fix: leave its message to SQS's retry."""

    def __init__(self, error: EditgateError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class ItemOutcome:
    state: Literal["succeeded", "failed", "skipped"]
    detail: str


@dataclass(frozen=True)
class ImageRules:
    """Where a batch may read images: the stack's source bucket, if it has one, and a manifest's
    or single upload's own folder of the batch bucket, ``incoming/<batch id>/`` (what its author
    uploaded). Never another batch's folder, never any batch's results."""

    batch_bucket: str
    source_bucket: str | None

    def refusal(self, batch_id: str, bucket: str, key: str) -> str | None:
        """Why batch ``batch_id`` may not read ``s3://bucket/key``; None when it may."""
        folder = f"{INCOMING}/{batch_id}/"
        if bucket == self.source_bucket:
            return None
        uploaded = not batch_id.startswith(S3_JOB_PREFIX)  # an S3 job has no folder: its operator's
        if bucket == self.batch_bucket and key.startswith(folder) and uploaded:
            if all(part not in ("", ".", "..") for part in key.removeprefix(folder).split("/")):
                return None
            return "a name beside the manifest has no empty, '.' or '..' path segments"
        if self.source_bucket is None:
            return (
                "s3:// images are read from the stack's source bucket (SourceBucketName) only, "
                "and this stack has none: put the image beside the manifest"
            )
        return (
            "images are read from beside the manifest or from the stack's source bucket, "
            f"s3://{self.source_bucket}/, only"
        )


@dataclass
class BatchRuntime:
    """What the batch function needs, built once per cold start."""

    services: Services
    ledger: BatchLedger
    queue: WorkQueue
    rules: ImageRules
    # When this environment last wrote each batch's summary (time.monotonic()).
    summaries_written: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(cls, services: Services) -> BatchRuntime:
        settings = services.settings
        if not (settings.batch_table and settings.batch_queue_url):
            raise RuntimeError("editgate is misconfigured: batch edits need BATCH_TABLE and BATCH_QUEUE_URL")
        rules = ImageRules(services.store.bucket, settings.source_bucket)
        return cls(services, BatchLedger(settings.batch_table), WorkQueue(settings.batch_queue_url), rules)


def output_key(batch_id: str, *names: str) -> str:
    """``batches/<batch id>/<names…>``, the key of anything a batch writes. Each part must be a
    plain name (an id, ``items``, ``0.png``: never empty, ``.``, ``..`` or holding a ``/``), so
    that nothing is ever written outside the batch's own folder."""
    for name in (batch_id, *names):
        if not _OUTPUT_NAME.match(name):
            raise ValueError(f"not a name in a batch's folder: {name!r}")
    return "/".join((OUTPUT, batch_id, *names))


def deadline_for(remaining_ms: int) -> float:
    """Items have no HTTP limit: the invocation's own time, less a margin to record the outcome."""
    remaining = remaining_ms / 1000
    return time.monotonic() + remaining - min(_BATCH_MARGIN_SECONDS, remaining / 5)


def handle_message(body: str, runtime: BatchRuntime, *, receive_count: int, deadline: float) -> None:
    """One message of the batch queue. Raises ``RetryLater`` for an item worth another attempt.
    A message that no notification, manifest or line could have made is dropped, unread."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        document = None
    last_attempt = receive_count >= runtime.services.settings.batch_max_receives
    if not isinstance(document, dict):
        logger.warning("a message on the batch queue that is no JSON object: dropped")
    elif document.get("Event") == "s3:TestEvent":
        logger.info("S3's test event: skipped")
    elif "Records" in document:
        _notification(document["Records"], runtime, last_attempt=last_attempt)
    elif document.get("kind") == "chunk":
        chunk = _valid_chunk(document, runtime)
        if chunk is not None:
            _fan_out_or_stop(chunk, runtime, last_attempt=last_attempt)
    elif document.get("kind") == "item":
        item = _validated(ItemMessage, document)
        if item is not None:
            _run_item(item, runtime, last_attempt=last_attempt, deadline=deadline)
    else:
        logger.warning("a message of unknown kind on the batch queue: dropped")


def _run_item(item: ItemMessage, runtime: BatchRuntime, *, last_attempt: bool, deadline: float) -> None:
    """An item message. Two deliveries of one item (S3 and SQS deliver at least once) may run at
    once: the later is dropped, for the earlier's message comes back should that one fail."""
    try:
        outcome = process_item(item, runtime, last_attempt=last_attempt, deadline=deadline)
    except RetryLater as exc:
        extra = {"item": item.item_id, "code": exc.error.code, "detail": exc.error.message}
        if isinstance(exc.error, RequestInProgress):
            logger.info("batch item being edited by another delivery: this one dropped", extra=extra)
            return
        logger.warning("batch item left for SQS to retry", extra=extra)
        raise
    logger.info("batch item", extra={"item": item.item_id, "state": outcome.state})


def _validated(kind: type[MessageT], document: dict[str, Any]) -> MessageT | None:
    try:
        return kind.model_validate(document)
    except ValidationError as exc:
        logger.warning(
            "a batch message no manifest could have made: dropped",
            extra={"kind": kind.__name__, "problems": [".".join(map(str, e["loc"])) for e in exc.errors()]},
        )
        return None


def _valid_chunk(document: dict[str, Any], runtime: BatchRuntime) -> ChunkMessage | None:
    """A chunk of a manifest of this batch bucket, read as its own batch."""
    chunk = _validated(ChunkMessage, document)
    if chunk is None:
        return None
    expected = f"{INCOMING}/{chunk.batch_id}/{MANIFEST_NAME}"
    if (
        chunk.bucket != runtime.rules.batch_bucket
        or chunk.key != expected
        or not manifest_batch_id(chunk.batch_id)
    ):
        logger.warning("a chunk of no manifest of this batch bucket: dropped", extra={"key": chunk.key})
        return None
    return chunk


def manifest_batch_id(batch_id: str) -> bool:
    """Whether a manifest may start batch ``batch_id``: a valid id, and none of those single
    uploads and S3 Batch Operations jobs hold (``single``, ``s3job-…``)."""
    reserved = batch_id == SINGLE_BATCH or batch_id.startswith(S3_JOB_PREFIX)
    return bool(_ID.match(batch_id)) and not reserved


def _notification(records: object, runtime: BatchRuntime, *, last_attempt: bool) -> None:
    if not isinstance(records, list):
        logger.warning("an S3 notification without records: dropped")
        return
    for record in records:
        try:
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])  # S3 event keys arrive URL-encoded
        except (KeyError, TypeError):
            logger.warning("an S3 notification record without a bucket and key: dropped")
            continue
        if bucket != runtime.rules.batch_bucket:
            logger.warning("a notification of another bucket: ignored", extra={"bucket": bucket})
            continue
        _object_created(bucket, key, runtime, last_attempt=last_attempt)


def _object_created(bucket: str, key: str, runtime: BatchRuntime, *, last_attempt: bool) -> None:
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != INCOMING:
        logger.info("an object that starts nothing: ignored", extra={"key": key})
    elif parts[1] == SINGLE_BATCH:
        _single(bucket, key, runtime)
    elif parts[2] == MANIFEST_NAME and manifest_batch_id(parts[1]):
        chunk = ChunkMessage(batch_id=parts[1], bucket=bucket, key=key)
        _fan_out_or_stop(chunk, runtime, last_attempt=last_attempt)
    else:
        logger.info("an object that starts nothing: ignored", extra={"key": key})


def _single(bucket: str, key: str, runtime: BatchRuntime) -> None:
    """A single image, edited with its metadata as parameters. Its id is its name and a digest
    of its content and parameters: the same upload twice is one edit, a new prompt is another."""
    name = key.rsplit("/", 1)[-1]
    if not name.lower().endswith(IMAGE_SUFFIXES):
        logger.info("a single upload that is not an image: ignored", extra={"key": key})
        return
    try:
        head = runtime.services.store.head(bucket, key)
    except ObjectNotFound:
        return  # deleted since: nothing to edit
    version = _digest([head.etag, head.metadata])
    item = ItemMessage(
        batch_id=SINGLE_BATCH,
        item_id=f"{safe_id(name.rsplit('.', 1)[0])}-{version}",
        line=0,
        image_bucket=bucket,
        image_key=key,
        params=head.metadata,
    )
    runtime.ledger.add_lines(SINGLE_BATCH, 1, chunk=item.item_id, last=True)
    runtime.queue.send([item.model_dump()])


def _fan_out_or_stop(chunk: ChunkMessage, runtime: BatchRuntime, *, last_attempt: bool) -> None:
    """A chunk that fails on its last delivery stops the batch's reading with a summary saying
    so, before SQS dead-letters it: no batch is left without one."""
    try:
        fan_out(chunk, runtime)
    except Exception:
        if last_attempt:
            _stop_reading(chunk, runtime, f"lines from {chunk.line} on could not be queued (see the logs)")
        raise


def fan_out(chunk: ChunkMessage, runtime: BatchRuntime) -> None:
    """Queue one item per manifest line, at most ``batch_chunk_lines`` of them, then hand the rest
    of the manifest to the next message. A line that is no edit fails on its own; a manifest
    whose first lines are none of them JSON, or whose defaults line cannot be used, fails whole.
    Every line claims its id, in manifest order: a later line with the same id fails."""
    pinned = _pinned(chunk, runtime)
    if pinned is None:
        return
    window = _window(pinned, runtime)
    if window is None:
        return
    lines, more = window
    try:
        entries, defaults = _parse_lines(lines, pinned, runtime.rules)
    except ManifestRefused as exc:
        _stop_reading(pinned, runtime, exc.why)
        return
    items, failures = _claim_ids(pinned.batch_id, entries, runtime.ledger)
    runtime.ledger.add_lines(pinned.batch_id, len(entries), chunk=str(pinned.offset), last=not more)
    for failure in failures:
        _settle(
            runtime, pinned.batch_id, failure.item_id, failure.line, _failed_record(failure.error), 0, 0.0
        )
    runtime.queue.send([item.model_dump() for item in items])
    if more:
        offset = pinned.offset + sum(len(line) + 1 for line in lines)
        rest = pinned.model_copy(
            update={"offset": offset, "line": pinned.line + len(lines), "defaults": defaults}
        )
        runtime.queue.send([rest.model_dump()])
    publish_progress(pinned.batch_id, runtime)


def _pinned(chunk: ChunkMessage, runtime: BatchRuntime) -> ChunkMessage | None:
    """The chunk, naming the manifest upload its batch runs. A batch id takes one manifest: the
    first upload read claims it; a later upload with other content is refused with a failed item
    of its own (``manifest~<etag>``), and none of its lines is read."""
    if chunk.etag:
        return chunk
    try:
        etag = runtime.services.store.head(chunk.bucket, chunk.key).etag
    except ObjectNotFound:
        logger.warning("manifest gone before it was read", extra={"key": chunk.key})
        return None
    if runtime.ledger.claim_manifest(chunk.batch_id, etag) == etag:
        return chunk.model_copy(update={"etag": etag})
    name = f"manifest~{safe_id(etag)[:40]}"
    message = (
        f"Batch {chunk.batch_id} runs the manifest uploaded first, and a batch id takes one manifest: "
        f"{chunk.key} uploaded again with other content (ETag {etag}) is not read. Upload it under "
        "a new batch id."
    )
    runtime.ledger.add_lines(chunk.batch_id, 1, chunk=name, last=False)
    error = InvalidRequest(message, code="manifest_exists")
    _settle(runtime, chunk.batch_id, name, 0, _failed_record(error), 0, 0.0)
    return None


def _window(chunk: ChunkMessage, runtime: BatchRuntime) -> tuple[list[bytes], bool] | None:
    """The chunk's lines (at most ``batch_chunk_lines``), and whether the manifest goes on after
    them; None when the manifest cannot be read on (said in the summary)."""
    try:
        window = runtime.services.store.read(
            chunk.bucket, chunk.key, start=chunk.offset, length=WINDOW_BYTES, if_match=chunk.etag or None
        )
    except ObjectNotFound:  # or changed: the upload the batch runs is gone
        why = f"it was replaced or deleted while it was read: lines from {chunk.line} on were not read"
        _stop_reading(chunk, runtime, why)
        return None
    at_end = len(window) < WINDOW_BYTES
    pieces = window.split(b"\n")
    if not at_end:
        pieces.pop()  # may be cut short: the next chunk reads it whole
    if not pieces:
        _stop_reading(chunk, runtime, f"line {chunk.line} is longer than {WINDOW_BYTES:,} bytes")
        return None
    taken = pieces[: runtime.services.settings.batch_chunk_lines]
    return taken, len(pieces) > len(taken) or not at_end


def _parse_lines(
    lines: list[bytes], chunk: ChunkMessage, rules: ImageRules
) -> tuple[list[ItemMessage | LineFailure], dict[str, Any]]:
    """The chunk's lines as items to queue and lines that failed, in manifest order, and the
    defaults in force after its last line (a defaults line applies to the lines after it).
    ``ManifestRefused`` when the manifest's first lines are none of them JSON."""
    defaults = dict(chunk.defaults)
    entries: list[ItemMessage | LineFailure] = []
    for number, raw in enumerate(lines, start=chunk.line):
        if not raw.strip():
            continue
        parsed = _parse_line(raw, number, defaults, chunk, rules)
        if isinstance(parsed, dict):
            defaults = parsed
        else:
            entries.append(parsed)
    if chunk.offset == 0 and entries and all(isinstance(e, LineFailure) and e.unparsable for e in entries):
        raise ManifestRefused("it is not JSON Lines: none of its lines is a JSON object")
    return entries, defaults


def _claim_ids(
    batch_id: str, entries: list[ItemMessage | LineFailure], ledger: BatchLedger
) -> tuple[list[ItemMessage], list[LineFailure]]:
    """Each id belongs to the first manifest line that names it, valid or not, claimed in
    manifest order (a redelivered chunk claims the same ids for the same lines). A later line with
    the same id fails as ``<id>~line-<n>``: an item as a duplicate, a failure with its own error."""
    items: list[ItemMessage] = []
    failures: list[LineFailure] = []
    for entry in entries:
        holder = ledger.claim(batch_id, entry.item_id, entry.line)
        if isinstance(entry, LineFailure):
            failures.append(entry if holder == entry.line else replace(entry, item_id=_renamed(entry)))
        elif holder == entry.line:
            items.append(entry)
        else:
            message = f"The id '{entry.item_id}' is already used by manifest line {holder}."
            error = InvalidRequest(message, param="id", code="duplicate_id")
            failures.append(LineFailure(_renamed(entry), entry.line, error, False))
    return items, failures


def _renamed(entry: ItemMessage | LineFailure) -> str:
    """A line's name when another line holds its id (no id has a ``~``: no line can hold it)."""
    return f"{entry.item_id}~line-{entry.line}"


def _parse_line(
    raw: bytes, number: int, defaults: dict[str, Any], chunk: ChunkMessage, rules: ImageRules
) -> ItemMessage | LineFailure | dict[str, Any]:
    """A manifest line as an item, as the defaults (the first line only), or as why it is no edit."""
    fallback = f"line-{number}"
    try:
        value = bodies.read_json(raw)
    except InvalidRequest as exc:
        message = f"Manifest line {number}: {exc.message}"
        return LineFailure(fallback, number, InvalidRequest(message, code="invalid_manifest_line"), True)
    if not isinstance(value, dict):
        message = f"Manifest line {number} is not a JSON object."
        return LineFailure(fallback, number, InvalidRequest(message, code="invalid_manifest_line"), True)
    if number == 1 and set(value) == {"defaults"}:
        return _defaults(value["defaults"], raw)
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
    try:
        bodies.check_value(value)
    except InvalidRequest as exc:  # a value no edit takes (a number that is not finite): this line fails
        error = InvalidRequest(f"Manifest line {number}: {exc.message}", param=exc.param, code=exc.code)
        return LineFailure(item_id, number, error, False)
    return _line_item(value, item_id, number, defaults, chunk, rules)


def _defaults(value: object, raw: bytes) -> dict[str, Any]:
    """The defaults line's parameters. Every line after it depends on them: one that cannot be
    used stops the manifest rather than run its lines with other parameters than meant."""
    if not isinstance(value, dict):
        raise ManifestRefused("its defaults line holds no object of edit parameters")
    try:
        bodies.check_value(value)
    except InvalidRequest as exc:
        raise ManifestRefused(f"its defaults line cannot be used: {exc.message}") from None
    queued = bodies.json_text(value)  # as the next chunk's message carries them (maybe longer: \u-escapes)
    if max(len(raw), len(queued)) > _MAX_LINE_BYTES:
        raise ManifestRefused(f"its defaults line is longer than {_MAX_LINE_BYTES:,} bytes")
    return dict(value)


def _line_item(
    value: dict[str, Any],
    item_id: str,
    number: int,
    defaults: dict[str, Any],
    chunk: ChunkMessage,
    rules: ImageRules,
) -> ItemMessage | LineFailure:
    location = _line_location(value.get("image"), chunk, rules)
    if isinstance(location, str):
        message = f"Invalid value for 'image' on manifest line {number}: {location}."
        return LineFailure(item_id, number, InvalidRequest(message, param="image"), False)
    item = ItemMessage(
        batch_id=chunk.batch_id,
        item_id=item_id,
        line=number,
        image_bucket=location[0],
        image_key=location[1],
        params={**defaults, **{k: v for k, v in value.items() if k not in ("id", "image")}},
    )
    try:
        message_body(item.model_dump())
    except ValueError as exc:
        message = f"Manifest line {number} cannot be queued with the defaults: {exc}."
        return LineFailure(item_id, number, InvalidRequest(message, code="invalid_manifest_line"), False)
    return item


def _line_location(image: object, chunk: ChunkMessage, rules: ImageRules) -> tuple[str, str] | str:
    """Where a line's image is, or why the batch may not read it."""
    bucket, key = chunk.bucket, ""
    if isinstance(image, str) and image.startswith("s3://"):
        bucket, _, key = image.removeprefix("s3://").partition("/")
    elif isinstance(image, str) and image:
        key = f"{INCOMING}/{chunk.batch_id}/{image}"
    if not (bucket and key):
        return "a file name beside the manifest or an s3://bucket/key URI"
    return rules.refusal(chunk.batch_id, bucket, key) or (bucket, key)


def process_item(
    item: ItemMessage, runtime: BatchRuntime, *, last_attempt: bool, deadline: float
) -> ItemOutcome:
    """Edit one item and record its outcome, once: an item that succeeded before is skipped, and
    an attempt after a crash collects the fal requests the crashed one submitted. A failure
    another attempt may fix raises ``RetryLater``, unless this is the last attempt (and while
    another attempt edits the item, always)."""
    ledger = runtime.ledger
    if ledger.state(item.batch_id, item.item_id) == "succeeded":
        return ItemOutcome("skipped", "already succeeded")
    try:
        result = _edit(item, runtime, deadline)
        if not result.complete:
            raise _missing_images(result)
    except EditgateError as exc:
        # Another attempt editing the item right now is never this item's failure.
        if exc.retryable and (not last_attempt or isinstance(exc, RequestInProgress)):
            raise RetryLater(exc) from exc
        record = {**_failed_record(exc), "message": item.model_dump()}
        _settle(runtime, item.batch_id, item.item_id, item.line, record, 0, 0.0)
        return ItemOutcome("failed", exc.message)
    record = _succeeded_record(result)
    _settle(runtime, item.batch_id, item.item_id, item.line, record, len(result.images), result.cost_usd)
    return ItemOutcome("succeeded", f"{len(result.images)} image(s)")


def _missing_images(result: EditResult) -> EditgateError:
    """Images fal made (and billed) that this attempt could not deliver: the next attempt collects
    them. On the last attempt the item is recorded failed, so that ``editgate batch redrive``
    queues it again and it collects them, at no new fal cost (its cost is counted when it succeeds)."""
    failure = next(failure for failure in result.failures if failure.retryable)
    return UpstreamTimeout(failure.message, code=failure.code)


def _edit(item: ItemMessage, runtime: BatchRuntime, deadline: float) -> EditResult:
    # The stack's BATCH_DEFAULTS under the item's own parameters. Results are always stored and
    # presigned: a batch answers in records, not in the response.
    values = {**runtime.services.settings.batch_defaults, **item.params, "response_format": "url"}
    request = openai_shapes.request_from_values(values)
    data = _image(item, runtime)
    outcome = service.run_edit(
        request,
        [data],
        runtime.services,
        identity=dedupe.for_item(item.batch_id, item.item_id, request, [data]),
        request_id=f"{item.batch_id}/{item.item_id}",
        deadline=deadline,
        folder=output_key(item.batch_id, "results", item.item_id),
    )
    return outcome.result


def _image(item: ItemMessage, runtime: BatchRuntime) -> bytes:
    """The item's image, if its batch may read it and it is no larger than ``max_image_bytes``."""
    where = f"s3://{item.image_bucket}/{item.image_key}"
    refusal = runtime.rules.refusal(item.batch_id, item.image_bucket, item.image_key)
    if refusal:
        message = f"Invalid value for 'image': {where} is not for this batch to read: {refusal}."
        raise InvalidRequest(message, param="image")
    limit = runtime.services.settings.max_image_bytes
    try:
        data = _read_within(runtime.services.store, item, limit)
    except ObjectNotFound:
        message = f"The image {where} does not exist or cannot be read."
        raise InvalidRequest(message, param="image", code="image_not_found") from None
    if data is None:
        message = f"Invalid value for 'image': {where} is larger than the {limit:,} bytes accepted."
        raise InvalidRequest(message, param="image", code="image_too_large")
    return data


def _read_within(store: ResultStore, item: ItemMessage, limit: int) -> bytes | None:
    """The item's object, or None when it is larger than ``limit`` bytes: its size is asked
    first (a HEAD), so a larger one is never read; should it grow after that, one byte over the
    limit is all that is read."""
    if store.head(item.image_bucket, item.image_key, version_id=item.image_version).size > limit:
        return None
    data = store.read(item.image_bucket, item.image_key, length=limit + 1, version_id=item.image_version)
    return None if len(data) > limit else data


def run_task(
    event: S3BatchOperationEvent, runtime: BatchRuntime, *, deadline: float
) -> tuple[ResultCode, str]:
    """The task of an S3 Batch Operations invocation: edit the object it names (that version, when
    it names one) with the job's user arguments as parameters (over ``BATCH_DEFAULTS``), as an
    item of batch ``s3job-<job id>``. Any task answers a result code, never an exception."""
    try:
        item = _task_item(event)
        runtime.ledger.add_lines(item.batch_id, 1, chunk=item.item_id, last=True)
        outcome = process_item(item, runtime, last_attempt=False, deadline=deadline)
    except RetryLater as exc:
        # S3 may try the task again, or give up without telling: the item is recorded failed
        # meanwhile, so that its batch finishes; a later try that succeeds records it succeeded.
        # (Not while another try edits it: that one records its own outcome.)
        if not isinstance(exc.error, RequestInProgress):
            record = {**_failed_record(exc.error), "message": item.model_dump()}
            _settle(runtime, item.batch_id, item.item_id, 0, record, 0, 0.0)
        return "TemporaryFailure", exc.error.message
    except InvalidRequest as exc:
        return "PermanentFailure", exc.message
    except Exception as exc:  # a task this code cannot take: S3 must get an answer all the same
        logger.exception("an S3 Batch Operations task failed unexpectedly")
        return (
            "PermanentFailure",
            f"The task could not be run ({type(exc).__name__}; see the function's logs).",
        )
    where = (
        f"s3://{runtime.services.store.bucket}/{output_key(item.batch_id, 'items', f'{item.item_id}.json')}"
    )
    if outcome.state == "failed":
        return "PermanentFailure", f"{outcome.detail} ({where})"
    return "Succeeded", where


def _task_item(event: S3BatchOperationEvent) -> ItemMessage:
    """The item of a task. Its id covers the task's bucket, key and version: each is its own
    edit, however alike their keys."""
    task = event.task
    bucket, key, version = task.s3_bucket, task.s3_key, task.s3_version_id
    if not _BUCKET_NAME.match(bucket):
        raise InvalidRequest(f"The task's bucket {bucket!r} is not an S3 bucket name.", param="s3Bucket")
    if not key:
        raise InvalidRequest("The task's key is empty.", param="s3Key")
    try:
        return ItemMessage(
            batch_id=f"{S3_JOB_PREFIX}{safe_id(event.job.get_id)}",
            item_id=f"{safe_id(key)}-{_digest([bucket, key, version], 16)}",
            line=0,
            image_bucket=bucket,
            image_key=key,
            image_version=version,
            params=dict(event.job.user_arguments),
        )
    except ValidationError as exc:
        raise InvalidRequest(f"The task cannot be read: {exc.errors()[0]['msg']}.") from None


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
    key = output_key(batch_id, "summary.json")
    store.put_json(key, summary(batch_id, tally))
    if tally.finished_at is None:
        after = ledger.tally(batch_id)
        if after is not None and after.finished_at is not None:
            store.put_json(key, summary(batch_id, after))


def summary(batch_id: str, tally: Tally) -> dict[str, Any]:
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
        "error": tally.error,
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
    records = (json.loads(store.get(key)) for key in store.keys(output_key(batch_id, "items") + "/"))
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
    runtime.services.store.put_json(output_key(batch_id, "items", f"{item_id}.json"), document)
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
        "passthrough_params": list(result.passthrough_params),
    }


def _stop_reading(chunk: ChunkMessage, runtime: BatchRuntime, why: str) -> None:
    """No more of the manifest is read: the summary's ``error`` says why, and the batch finishes
    once the items already queued settle."""
    error = InvalidRequest(f"The manifest {chunk.key} cannot be read: {why}.", code="invalid_manifest")
    runtime.ledger.stop_reading(chunk.batch_id, error.body()["error"])
    publish_summary(chunk.batch_id, runtime.ledger, runtime.services.store)


def safe_id(text: str, fallback: str = "item") -> str:
    """Any text as the start of an item id: letters, digits, '.', '_' and '-', from a letter or
    digit on, at most 100 characters (room for a suffix within the id's 128)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:100]
    return cleaned or fallback


def _digest(value: object, length: int = 8) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:length]
