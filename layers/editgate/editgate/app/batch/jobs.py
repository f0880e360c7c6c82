"""Asynchronous jobs on the batch queue: ``run_job`` runs one job's edit once (the seam where a
job stops waiting on fal once fal's webhooks collect it), and ``deliver_callback`` tells the
job's ``callback_url`` how it ended, retried with a growing delay."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from editgate.adapters.queue import WorkQueue
from editgate.app.batch.items import RetryLater
from editgate.app.batch.runtime import JobRunner
from editgate.domain import jobs
from editgate.domain.errors import EditgateError, RequestInProgress, UpstreamTimeout
from editgate.domain.json_values import json_text
from editgate.domain.models import EditRequest

logger = Logger(child=True)


def run_job(job_id: str, runner: JobRunner, queue: WorkQueue, *, last_attempt: bool, deadline: float) -> str:
    """Run a queued job: skipped when it ended (cancelled before it started: fal never hears of
    it), marked in progress, edited once (a redelivery collects what an earlier attempt submitted,
    from the edit's journal), recorded succeeded or failed. Raises ``RetryLater`` for a failure
    another attempt may fix (not on the last attempt). Answers what became of it."""
    job = runner.table.get(job_id)
    if job is None or job.status in jobs.ENDED:
        return "skipped"
    if job.status == "queued" and not runner.table.move(job_id, "in_progress", only_from=("queued",)):
        return "skipped"  # cancelled meanwhile
    store = runner.edits.services.store
    try:
        inputs = [store.get(key) for key in job.inputs]
        result = runner.edits.edit_job(
            job.id,
            EditRequest.model_validate(job.request),
            inputs,
            deadline=deadline,
            folder=f"{jobs.folder(runner.prefix, job.id)}/output",
        )
        if not result.complete:
            failure = next(failure for failure in result.failures if failure.retryable)
            raise UpstreamTimeout(failure.message, code=failure.code)
    except EditgateError as exc:
        if _cancelled(job_id, runner):
            return "cancelled"  # fal ended its requests for the cancel: nothing to retry
        if exc.retryable and (not last_attempt or isinstance(exc, RequestInProgress)):
            raise RetryLater(exc) from exc
        return _end(job_id, runner, queue, "failed", error=exc.body())
    return _end(
        job_id,
        runner,
        queue,
        "succeeded",
        result=result.model_dump(mode="json", exclude={"images": {"__all__": {"url", "b64_json"}}}),
    )


def _cancelled(job_id: str, runner: JobRunner) -> bool:
    job = runner.table.get(job_id)
    return job is not None and job.status == "cancelled"


def _end(job_id: str, runner: JobRunner, queue: WorkQueue, status: jobs.JobStatus, **outcome: object) -> str:
    """The job's end recorded, unless it was cancelled meanwhile; its callback queued once."""
    if not runner.table.move(job_id, status, only_from=("in_progress",), **outcome):
        return "cancelled"
    job = runner.table.get(job_id)
    if job is not None and job.callback_url:
        queue.send([{"kind": "callback", "job_id": job_id, "attempt": 0}])
    return status


def deliver_callback(job_id: str, attempt: int, runner: JobRunner, queue: WorkQueue) -> None:
    """One delivery of a job's end to its ``callback_url``, signed with its key's secret; when the
    receiver does not answer 2xx, tried again later (``callback_retry_seconds``, doubling), up to
    ``callback_attempts`` in all. Every attempt carries the same ``webhook-id``: a receiver that
    got one twice can tell."""
    job = runner.table.get(job_id)
    if job is None or not job.callback_url or job.status not in jobs.ENDED:
        return
    secret = runner.secrets.get(job.caller)
    if secret is None:
        logger.warning("callback not delivered: the job's key has no webhook secret", extra={"job": job_id})
        return
    timestamp = int(time.time())
    body = json_text(jobs.callback_event(job, datetime.fromtimestamp(timestamp, UTC).isoformat()))
    message_id = f"msg_{job.id}"
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": jobs.webhook_signature(secret, message_id, timestamp, body),
    }
    if runner.callbacks.deliver(job.callback_url, headers, body):
        return
    if attempt + 1 >= runner.callback_attempts:
        logger.warning("callback given up", extra={"job": job_id, "attempts": attempt + 1})
        return
    delay = runner.callback_retry_seconds * 2**attempt
    queue.send_later({"kind": "callback", "job_id": job_id, "attempt": attempt + 1}, delay)
