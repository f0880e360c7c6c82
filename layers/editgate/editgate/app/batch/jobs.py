"""Asynchronous jobs on the batch queue: ``run_job`` submits one job's edit to fal once, with
fal's webhook (the collect step ends the job: ``editgate.app.batch.owners``), and
``deliver_callback`` tells the job's ``callback_url`` how it ended, retried with a growing delay."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aws_lambda_powertools import Logger

from editgate.adapters.queue import WorkQueue
from editgate.app.batch.items import RetryLater
from editgate.app.batch.runtime import BatchRuntime, JobRunner
from editgate.app.batch.submit import submit_edit
from editgate.app.jobs import CANCEL_SECONDS, cancel_at_fal
from editgate.domain import identity, jobs
from editgate.domain.errors import EditgateError, RequestInProgress
from editgate.domain.json_values import json_text
from editgate.domain.models import EditRequest

logger = Logger(child=True)


def run_job(job_id: str, runtime: BatchRuntime, *, last_attempt: bool, deadline: float) -> str:
    """Run a queued job: skipped when it ended (cancelled before it started: fal never hears of
    it), marked in progress, its edit submitted to fal with fal's webhook (once: a redelivery
    pays nothing again) and left to the collect step, which records the job succeeded or failed.
    Raises ``RetryLater`` for a failure another attempt may fix (not on the last attempt).
    Answers what became of it."""
    runner = runtime.jobs
    assert runner is not None, "jobs run where the stack has a jobs' table"
    job = runner.table.get(job_id)
    if job is None or job.status in jobs.ENDED:
        return "skipped"
    if job.status == "queued" and not runner.table.move(job_id, "in_progress", only_from=("queued",)):
        return "skipped"  # cancelled meanwhile
    try:
        (key,) = job.inputs
        image = runner.edits.services.store.get(key)
        request = EditRequest.model_validate(job.request)
        edit = identity.for_job(job.id, request, [image])
        owner = {"job": job.id, "input": key}
        services = runner.edits.services
        submit_edit(edit, owner, request, image, services, runtime.collecting, deadline)
    except EditgateError as exc:
        ended = _ended_meanwhile(job_id, runner)
        if ended is not None:
            return _stop_at_fal(job_id, ended, runner)  # cancelled or expired: nothing to retry
        if exc.retryable and (not last_attempt or isinstance(exc, RequestInProgress)):
            raise RetryLater(exc) from exc
        status = end_job(job_id, runner, runtime.queue, "failed", error=exc.body())
        return _stop_at_fal(job_id, status, runner)  # a call fal accepted before another failed
    ended = _ended_meanwhile(job_id, runner)
    # Cancelled (or expired) while it was being submitted: the cancel found no request yet.
    return "submitted" if ended is None else _stop_at_fal(job_id, ended, runner)


def _stop_at_fal(job_id: str, status: str, runner: JobRunner) -> str:
    """The job ended without its edit: whatever fal has of it, cancelled (nothing more billed
    for what fal had not started)."""
    services = runner.edits.services
    cancel_at_fal(job_id, services.journal, services.fal, time.monotonic() + CANCEL_SECONDS)
    return status


def job_output_folder(runner: JobRunner, job_id: str) -> str:
    return f"{jobs.folder(runner.prefix, job_id)}/output"


def _ended_meanwhile(job_id: str, runner: JobRunner) -> str | None:
    """The job's end, when it ended while its run was submitting it (cancelled, or failed by the
    jobs' sweeper)."""
    job = runner.table.get(job_id)
    return job.status if job is not None and job.status in jobs.ENDED else None


def end_job(
    job_id: str, runner: JobRunner, queue: WorkQueue, status: jobs.JobStatus, **outcome: object
) -> str:
    """The job's end recorded, unless it ended meanwhile (cancelled); its callback queued once."""
    if not runner.table.move(job_id, status, only_from=("in_progress",), **outcome):
        job = runner.table.get(job_id)
        return job.status if job is not None else "unknown"
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
