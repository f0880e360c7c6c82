"""The batch queue's door: each message (an S3 notification, a manifest chunk, an item) routed
to what it starts; and the collect queue's (a fal request to collect), which the batch function
consumes too."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger

from editgate.adapters.objects import ObjectNotFound
from editgate.app.batch.collect import collect
from editgate.app.batch.items import RetryLater, process_item
from editgate.app.batch.jobs import deliver_callback, run_job
from editgate.app.batch.layout import (
    IMAGE_SUFFIXES,
    INCOMING,
    MANIFEST_NAME,
    SINGLE_BATCH,
    digest,
    manifest_batch_id,
    safe_id,
)
from editgate.app.batch.manifest import fan_out_or_stop
from editgate.app.batch.messages import CallbackMessage, ChunkMessage, ItemMessage, JobMessage, validated
from editgate.app.batch.runtime import BatchRuntime
from editgate.app.fal_webhooks import CollectMessage
from editgate.domain import envelope
from editgate.domain.errors import RequestInProgress

logger = Logger(child=True)


def handle_record(body: str, runtime: BatchRuntime, *, receive_count: int, remaining_ms: int) -> None:
    """One SQS record of the batch queue, with the invocation's remaining time. Any exception
    reports it failed and SQS delivers it again: ``RetryLater`` is expected and logged where it
    is raised; anything else is a bug or an AWS fault, logged here."""
    try:
        handle_message(body, runtime, receive_count=receive_count, deadline=deadline_for(remaining_ms))
    except RetryLater:
        raise
    except Exception:
        logger.exception("batch message failed unexpectedly; SQS will deliver it again")
        raise


def deadline_for(remaining_ms: int) -> float:
    """Items have no HTTP limit: the invocation's own time, less a margin to record the outcome."""
    return time.monotonic() + envelope.batch_seconds(remaining_ms)


def handle_message(body: str, runtime: BatchRuntime, *, receive_count: int, deadline: float) -> None:
    """One message of the batch queue. Raises ``RetryLater`` for an item worth another attempt.
    A message that no notification, manifest or line could have made is dropped, unread."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        document = None
    last_attempt = receive_count >= runtime.max_receives
    # A redelivered message, or one a redrive queued again.
    repeat = receive_count > 1 or (isinstance(document, dict) and document.get("repeat") is True)
    if not isinstance(document, dict):
        logger.warning("a message on the batch queue that is no JSON object: dropped")
    elif document.get("Event") == "s3:TestEvent":
        logger.info("S3's test event: skipped")
    elif "Records" in document:
        _notification(document["Records"], runtime, last_attempt=last_attempt, repeat=repeat)
    elif document.get("kind") == "chunk":
        chunk = _valid_chunk(document, runtime)
        if chunk is not None:
            fan_out_or_stop(chunk.model_copy(update={"repeat": repeat}), runtime, last_attempt=last_attempt)
    elif document.get("kind") in ("item", "collect"):
        _edit_message(document, runtime, last_attempt=last_attempt, repeat=repeat, deadline=deadline)
    elif document.get("kind") in ("job", "callback"):
        _job_message(document, runtime, last_attempt=last_attempt, deadline=deadline)
    else:
        logger.warning("a message of unknown kind on the batch queue: dropped")


def _edit_message(
    document: dict[str, Any], runtime: BatchRuntime, *, last_attempt: bool, repeat: bool, deadline: float
) -> None:
    """An item to submit, or (from the collect queue: fal's webhook, the sweeper) a fal request
    of an item to collect."""
    if document["kind"] == "collect":
        message = validated(CollectMessage, document)
        if message is not None:
            outcome = collect(message, runtime, deadline, last_attempt=last_attempt, repeat=repeat)
            logger.info("fal request", extra={"fal_request_id": message.request_id, "outcome": outcome})
        return
    item = validated(ItemMessage, document)
    if item is not None:
        item = item.model_copy(update={"repeat": repeat})
        _run_item(item, runtime, last_attempt=last_attempt, deadline=deadline)


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


def _job_message(
    document: dict[str, Any], runtime: BatchRuntime, *, last_attempt: bool, deadline: float
) -> None:
    """An asynchronous job to run, or its callback to deliver."""
    if runtime.jobs is None:
        logger.warning("a job message, and this stack has no jobs' table: dropped")
    elif document["kind"] == "callback":
        callback = validated(CallbackMessage, document)
        if callback is not None:
            deliver_callback(callback.job_id, callback.attempt, runtime.jobs, runtime.queue)
    else:
        job = validated(JobMessage, document)
        if job is not None:
            state = run_job(job.job_id, runtime, last_attempt=last_attempt, deadline=deadline)
            logger.info("job", extra={"job": job.job_id, "state": state})


def _valid_chunk(document: dict[str, Any], runtime: BatchRuntime) -> ChunkMessage | None:
    """A chunk of a manifest of this batch bucket, read as its own batch."""
    chunk = validated(ChunkMessage, document)
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


def _notification(records: object, runtime: BatchRuntime, *, last_attempt: bool, repeat: bool) -> None:
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
        _object_created(bucket, key, runtime, last_attempt=last_attempt, repeat=repeat)


def _object_created(
    bucket: str, key: str, runtime: BatchRuntime, *, last_attempt: bool, repeat: bool
) -> None:
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != INCOMING:
        logger.info("an object that starts nothing: ignored", extra={"key": key})
    elif parts[1] == SINGLE_BATCH:
        _single(bucket, key, runtime, repeat=repeat)
    elif parts[2] == MANIFEST_NAME and manifest_batch_id(parts[1]):
        chunk = ChunkMessage(batch_id=parts[1], bucket=bucket, key=key, repeat=repeat)
        fan_out_or_stop(chunk, runtime, last_attempt=last_attempt)
    else:
        logger.info("an object that starts nothing: ignored", extra={"key": key})


def _single(bucket: str, key: str, runtime: BatchRuntime, *, repeat: bool) -> None:
    """A single image, edited with its metadata as parameters. Its id is its name and a digest
    of its content and parameters: the same upload twice is one edit, a new prompt is another."""
    name = key.rsplit("/", 1)[-1]
    if not name.lower().endswith(IMAGE_SUFFIXES):
        logger.info("a single upload that is not an image: ignored", extra={"key": key})
        return
    try:
        head = runtime.store.head(bucket, key)
    except ObjectNotFound:
        return  # deleted since: nothing to edit
    version = digest([head.etag, head.metadata])
    item = ItemMessage(
        batch_id=SINGLE_BATCH,
        item_id=f"{safe_id(name.rsplit('.', 1)[0])}-{version}",
        line=0,
        image_bucket=bucket,
        image_key=key,
        params=head.metadata,
        repeat=repeat,
    )
    runtime.ledger.count_items(SINGLE_BATCH, 1, chunk=item.item_id, last=True)
    runtime.queue.send([item.model_dump()])
