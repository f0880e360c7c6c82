"""The sweeper (an EventBridge schedule, every minute): the fal requests of batch items whose
webhook has not come ``sweep_after_seconds`` after their submit are asked about, once each, by
fal's status; those fal has ended get the collect step queued, as their webhook would have. A
lost webhook delays an item, never loses it. A webhook that comes after all is taken for a
duplicate (the sweep claimed its request), and a sweep after the webhook finds nothing pending."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from aws_lambda_powertools import Logger

from editgate.adapters.fal import FalSubmission
from editgate.adapters.journal import SubmittedRequest
from editgate.app import metrics
from editgate.app.batch.job_sweeper import sweep_jobs
from editgate.app.batch.runtime import BatchRuntime
from editgate.app.fal_webhooks import collect_message

logger = Logger(child=True)


def sweep(runtime: BatchRuntime, deadline: float, now: float | None = None) -> int:
    """How many requests this sweep queued for collecting."""
    collecting = runtime.collecting
    submitted_before = (time.time() if now is None else now) - collecting.sweep_after_seconds
    queued = 0
    try:
        for request in collecting.journal.pending(submitted_before, collecting.sweep_limit):
            if time.monotonic() >= deadline:
                break  # the next minute's sweep goes on
            queued += _sweep_one(request, runtime, deadline)
    finally:
        sweep_jobs(runtime, deadline, now)  # whatever became of the fal requests' sweep
    if queued:
        logger.warning("fal requests collected without their webhook", extra={"queued": queued})
        metrics.add("WebhooksMissed", queued)
    return queued


def _sweep_one(request: SubmittedRequest, runtime: BatchRuntime, deadline: float) -> int:
    """1 when the request's collect step was queued. One that cannot be (fal or AWS failing for
    it) is logged and left to the next sweep: it never holds up the others."""
    collecting = runtime.collecting
    try:
        carried = _ended(request, runtime, deadline)
        if carried is None or not collecting.receipts.claim(request.request_id):
            return 0
    except Exception:
        logger.exception("a fal request not swept", extra={"fal_request_id": request.request_id})
        return 0
    work, submission = carried
    lookup = replace(request, carried={"work": work, "submission": submission})
    message = collect_message(request.request_id, lookup, "POLLED")
    try:
        collecting.queue.send([message.model_dump(mode="json")])
    except Exception:
        collecting.receipts.release(request.request_id)
        logger.exception(
            "a fal request's collect step not queued", extra={"fal_request_id": request.request_id}
        )
        return 0
    return 1


def _ended(
    request: SubmittedRequest, runtime: BatchRuntime, deadline: float
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """When fal has ended the request, what collecting it needs (the edit's work, the call's
    submission); a request its journal no longer waits for (collected, submitted anew, or its
    journal expired) is no longer pending."""
    journal = runtime.collecting.journal
    state = journal.state(request.edit_key)
    entry = state.entries.get(request.call) if state else None
    submission = FalSubmission.model_validate(entry["submission"]) if entry else None
    if (
        state is None
        or entry is None
        or submission is None
        or request.call in state.done
        or submission.request_id != request.request_id
    ):
        journal.collected(request.request_id)
        return None
    if not runtime.edits.services.fal.ended(submission, deadline):
        return None
    return state.work, entry["submission"]
