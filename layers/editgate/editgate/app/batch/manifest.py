"""A manifest fanned out: its lines read a chunk at a time, each an item queued or a line failed,
every id claimed by the first line that names it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from aws_lambda_powertools import Logger

from editgate.adapters.ledger import BatchLedger
from editgate.adapters.objects import ObjectNotFound
from editgate.adapters.queue import message_body
from editgate.app.batch.items import failed_record, settle
from editgate.app.batch.layout import ID, INCOMING, ImageRules, safe_id
from editgate.app.batch.messages import ChunkMessage, ItemMessage
from editgate.app.batch.runtime import BatchRuntime
from editgate.app.batch.summary import publish_progress, stop_reading
from editgate.domain import json_values
from editgate.domain.errors import InvalidRequest

logger = Logger(child=True)


# How much of a manifest one read takes: a longer line cannot be an edit.
WINDOW_BYTES = 8 * 1024 * 1024
# Lines claimed (one ledger transaction) and queued together: a chunk's first few, so that its
# first items start at once (a transaction of a hundred takes longer: on moto, whose transactions
# copy the table once per item, most of a second), then a hundred at a time.
FIRST_CLAIM_LINES = 10
CLAIM_LINES = 100
# A manifest line (the defaults line too): its item's message must fit SQS's 256 KiB.
_MAX_LINE_BYTES = 200 * 1024


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


def fan_out_or_stop(chunk: ChunkMessage, runtime: BatchRuntime, *, last_attempt: bool) -> None:
    """A chunk that fails on its last delivery stops the batch's reading with a summary saying
    so, before SQS dead-letters it: no batch is left without one."""
    try:
        fan_out(chunk, runtime)
    except Exception:
        if last_attempt:
            stop_reading(chunk, runtime, f"lines from {chunk.line} on could not be queued (see the logs)")
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
        stop_reading(pinned, runtime, exc.why)
        return
    runtime.ledger.count_items(pinned.batch_id, len(entries), chunk=str(pinned.offset), last=not more)
    # A few lines, then a hundred at a time, claimed and queued: the first items start while the
    # rest is claimed.
    bounds = [0, *range(FIRST_CLAIM_LINES, len(entries), CLAIM_LINES), len(entries)] if entries else []
    for start, end in pairwise(bounds):
        items, failures = _claim_ids(pinned.batch_id, entries[start:end], runtime.ledger)
        for failure in failures:
            record = failed_record(failure.error)
            settle(runtime, pinned.batch_id, failure.item_id, failure.line, record, 0, 0.0)
        runtime.queue.send([item.model_dump() for item in items])
    if more:
        offset = pinned.offset + sum(len(line) + 1 for line in lines)
        rest = pinned.model_copy(
            update={"offset": offset, "line": pinned.line + len(lines), "defaults": defaults}
        )
        runtime.queue.send([rest.model_dump()])
    # Due: the first summary, or the batch may have finished (its manifest all read once its items
    # had settled).
    publish_progress(pinned.batch_id, runtime, due=True, may_finish=not more)


def _pinned(chunk: ChunkMessage, runtime: BatchRuntime) -> ChunkMessage | None:
    """The chunk, naming the manifest upload its batch runs. A batch id takes one manifest: the
    first upload read claims it; a later upload with other content is refused with a failed item
    of its own (``manifest~<etag>``), and none of its lines is read."""
    if chunk.etag:
        return chunk
    try:
        etag = runtime.store.head(chunk.bucket, chunk.key).etag
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
    runtime.ledger.count_items(chunk.batch_id, 1, chunk=name, last=False)
    error = InvalidRequest(message, code="manifest_exists")
    settle(runtime, chunk.batch_id, name, 0, failed_record(error), 0, 0.0)
    return None


def _window(chunk: ChunkMessage, runtime: BatchRuntime) -> tuple[list[bytes], bool] | None:
    """The chunk's lines (at most ``batch_chunk_lines``), and whether the manifest goes on after
    them; None when the manifest cannot be read on (said in the summary)."""
    try:
        window = runtime.store.read(
            chunk.bucket, chunk.key, start=chunk.offset, length=WINDOW_BYTES, if_match=chunk.etag or None
        )
    except ObjectNotFound:  # or changed: the upload the batch runs is gone
        why = f"it was replaced or deleted while it was read: lines from {chunk.line} on were not read"
        stop_reading(chunk, runtime, why)
        return None
    at_end = len(window) < WINDOW_BYTES
    pieces = window.split(b"\n")
    if not at_end:
        pieces.pop()  # may be cut short: the next chunk reads it whole
    if not pieces:
        stop_reading(chunk, runtime, f"line {chunk.line} is longer than {WINDOW_BYTES:,} bytes")
        return None
    taken = pieces[: runtime.chunk_lines]
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
    holders = ledger.claim(batch_id, [(entry.item_id, entry.line) for entry in entries])
    for entry in entries:
        holder = holders[entry.item_id]
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
        value = json_values.read_json(raw)
    except InvalidRequest as exc:
        message = f"Manifest line {number}: {exc.message}"
        return LineFailure(fallback, number, InvalidRequest(message, code="invalid_manifest_line"), True)
    if not isinstance(value, dict):
        message = f"Manifest line {number} is not a JSON object."
        return LineFailure(fallback, number, InvalidRequest(message, code="invalid_manifest_line"), True)
    if number == 1 and set(value) == {"defaults"}:
        return _defaults(value["defaults"], raw)
    item_id = value.get("id", fallback)
    if not isinstance(item_id, str) or not ID.match(item_id):
        message = (
            f"Invalid value for 'id' on manifest line {number}: 1 to 128 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit."
        )
        return LineFailure(fallback, number, InvalidRequest(message, param="id"), False)
    if len(raw) > _MAX_LINE_BYTES:
        message = f"Manifest line {number} is longer than {_MAX_LINE_BYTES:,} bytes."
        return LineFailure(item_id, number, InvalidRequest(message, code="invalid_manifest_line"), False)
    try:
        json_values.check_value(value)
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
        json_values.check_value(value)
    except InvalidRequest as exc:
        raise ManifestRefused(f"its defaults line cannot be used: {exc.message}") from None
    # As the next chunk's message carries them (maybe longer: \u-escapes).
    queued = json_values.json_text(value)
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
        repeat=chunk.repeat,
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
