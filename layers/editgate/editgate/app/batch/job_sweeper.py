"""The jobs' sweeper, run by the batch function's schedule after the fal requests' sweep: a job
whose message dead-lettered (its runs died) or never came would stay queued or in progress
forever. A job not ended ``stale_seconds`` after it was queued or started is failed
(``job_expired``), its fal requests are cancelled, and its callback is queued, as a run's end
queues it. The jobs' table's sparse ``unended`` index finds them: no scan. A collect step that
brings one of its requests later finds the job ended and records nothing (a job ends once)."""

from __future__ import annotations

import time

from aws_lambda_powertools import Logger

from editgate.adapters.queue import WorkQueue
from editgate.app import metrics
from editgate.app.batch.messages import CallbackMessage
from editgate.app.batch.runtime import BatchRuntime, JobRunner
from editgate.app.jobs import CANCEL_SECONDS, cancel_at_fal
from editgate.domain import jobs
from editgate.domain.errors import EditgateError

logger = Logger(child=True)


def sweep_jobs(runtime: BatchRuntime, deadline: float, now: float | None = None) -> int:
    """How many jobs this sweep ended as expired (none on a stack without jobs)."""
    runner, queue = runtime.jobs, runtime.queue
    if runner is None:
        return 0
    since_before = (time.time() if now is None else now) - runner.stale_seconds
    expired = 0
    for job_id in runner.table.unended(since_before, runner.sweep_limit):
        if time.monotonic() >= deadline:
            break  # the next minute's sweep goes on
        expired += _expire(job_id, runner, queue, deadline)
    if expired:
        logger.warning("jobs that did not end in time failed", extra={"expired": expired})
        metrics.add("JobsExpired", expired)
    return expired


def _expire(job_id: str, runner: JobRunner, queue: WorkQueue, deadline: float) -> bool:
    """The job failed, unless it ended meanwhile; its callback queued; then its fal requests
    cancelled (after the failure: what their collect steps bring finds the job ended)."""
    error = jobs.expired(runner.stale_seconds).body()
    if not runner.table.move(job_id, "failed", only_from=("queued", "in_progress"), error=error):
        return False
    job = runner.table.get(job_id)
    if job is not None and job.callback_url:
        queue.send([CallbackMessage(job_id=job_id, attempt=0).model_dump()])
    services = runner.edits.services
    cancel_by = min(deadline, time.monotonic() + CANCEL_SECONDS)
    try:
        cancel_at_fal(job_id, services.journal, services.fal, cancel_by)
    except EditgateError as exc:  # the job has ended: the other jobs are swept all the same
        logger.warning("an expired job's fal requests not cancelled", extra={"job": job_id, "code": exc.code})
    logger.info("job expired", extra={"job": job_id})
    return True
