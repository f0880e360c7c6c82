"""S3 Batch Operations: one task, one item of batch ``s3job-<job id>``."""

from __future__ import annotations

import re
import time
from typing import Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import S3BatchOperationEvent
from pydantic import ValidationError

from editgate.app.batch.items import ItemOutcome, RetryLater, failed_record, process_item, settle
from editgate.app.batch.layout import S3_JOB_PREFIX, digest, output_key, safe_id
from editgate.app.batch.messages import ItemMessage
from editgate.app.batch.runtime import BatchRuntime
from editgate.domain import envelope
from editgate.domain.errors import EditgateError, InvalidRequest, RequestInProgress, UpstreamError

logger = Logger(child=True)


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
ResultCode = Literal["Succeeded", "TemporaryFailure", "PermanentFailure"]


def run_task(
    event: S3BatchOperationEvent, runtime: BatchRuntime, *, remaining_ms: int
) -> tuple[ResultCode, str]:
    """The task of an S3 Batch Operations invocation: the edit of the object it names (that
    version, when it names one) with the job's user arguments as parameters (over
    ``BATCH_DEFAULTS``), as an item of batch ``s3job-<job id>``, submitted to fal. It answers once
    fal has the item's requests, as any batch item: fal's webhook (or the sweeper) has them
    collected, which writes the item's record where the answer says. Any task answers a result
    code, never an exception."""
    item: ItemMessage | None = None
    try:
        item = _task_item(event)
        runtime.ledger.count_items(item.batch_id, 1, chunk=item.item_id, last=True)
        deadline = time.monotonic() + envelope.batch_seconds(remaining_ms)
        outcome = process_item(item, runtime, last_attempt=False, deadline=deadline)
    except RetryLater as exc:
        # S3 may try the task again, or give up without telling: the item is recorded failed
        # meanwhile, so that its batch finishes; a later try whose requests are collected records
        # it succeeded. (Not while another try submits it: that one answers for it.)
        assert item is not None, "RetryLater comes from the item's edit"
        if not isinstance(exc.error, RequestInProgress):
            _record_failed(item, exc.error, runtime)
        return "TemporaryFailure", f"{exc.error.message} ({_record_uri(item, runtime)})"
    except InvalidRequest as exc:
        return "PermanentFailure", exc.message
    except Exception as exc:  # a task this code cannot take: S3 must get an answer all the same
        logger.exception("an S3 Batch Operations task failed unexpectedly")
        error = UpstreamError(f"The task could not be run ({type(exc).__name__}; see the function's logs).")
        if item is None:  # a task that cannot be read: no try will do better
            return "PermanentFailure", error.message
        # An AWS fault, most likely: S3 tries the task again; meanwhile its item is recorded
        # failed, so that its batch finishes (a later try's collect records it succeeded).
        _record_failed(item, error, runtime)
        return "TemporaryFailure", error.message
    return _answer(outcome, _record_uri(item, runtime))  # item: set by the try


def _record_failed(item: ItemMessage, error: EditgateError, runtime: BatchRuntime) -> None:
    record = {**failed_record(error), "message": item.model_dump()}
    try:
        settle(runtime, item.batch_id, item.item_id, 0, record, 0, 0.0)
    except Exception:
        logger.exception("an S3 Batch Operations task's item not recorded failed")


def _record_uri(item: ItemMessage, runtime: BatchRuntime) -> str:
    return f"s3://{runtime.store.bucket}/{output_key(item.batch_id, 'items', f'{item.item_id}.json')}"


def _answer(outcome: ItemOutcome, where: str) -> tuple[ResultCode, str]:
    """The task's result: its item refused, done before, or submitted (its record to come)."""
    if outcome.state == "failed":
        return "PermanentFailure", f"{outcome.detail} ({where})"
    if outcome.state == "skipped":
        return "Succeeded", f"Already succeeded: its record is {where}"
    how = "by an earlier try (nothing paid again)"
    if outcome.submitted:
        how = f"({outcome.submitted} request(s))"
    return "Succeeded", f"Submitted to fal {how}: its record will be written to {where}"


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
            item_id=f"{safe_id(key)}-{digest([bucket, key, version], 16)}",
            line=0,
            image_bucket=bucket,
            image_key=key,
            image_version=version,
            params=dict(event.job.user_arguments),
            # S3 may invoke a task again, and says not how often nor how late: it asks the ledger.
            repeat=True,
        )
    except ValidationError as exc:
        raise InvalidRequest(f"The task cannot be read: {exc.errors()[0]['msg']}.") from None
