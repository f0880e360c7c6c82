"""The collect step of a webhooked edit's fal request (a batch item's, an asynchronous job's),
queued by fal's webhook or by the sweeper: fetch its result, finish and store its images, mark
the call collected in the edit's journal (once: a redelivery or a sweep after the webhook changes
nothing); the collector of the edit's last call records its end with the edit's owner
(``editgate.app.batch.owners``): the item's record and settle, or the job's status."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools import Logger
from PIL import Image

from editgate.adapters.collect_journal import CollectState
from editgate.adapters.fal import FalSubmission
from editgate.adapters.fal_answers import FalRequestEnded, ProviderRejected
from editgate.app import metrics, timing
from editgate.app.batch.owners import EditOwner, owner_of
from editgate.app.batch.runtime import BatchRuntime
from editgate.app.batch.submit import plan_from
from editgate.app.edit_steps import all_flagged, flagged_failure, store_image
from editgate.app.fal_webhooks import CollectMessage
from editgate.app.provider_calls import finish_download
from editgate.domain import images
from editgate.domain.errors import EditgateError, InvalidRequest
from editgate.domain.models import CallFailure, EditedImage, EditResult, Plan

logger = Logger(child=True)


def collect(
    message: CollectMessage,
    runtime: BatchRuntime,
    deadline: float,
    *,
    last_attempt: bool,
    repeat: bool = False,
) -> str:
    """Collect one fal request; what became of it. Raises (for SQS to deliver it again) what a
    later try may get past: fal or AWS unreachable, a download past the deadline; on the last
    attempt such a call is recorded not collected, and its item failed (as an item that waited
    on fal and could not deliver what fal made), so that a redrive collects it.

    Nothing is read first: the message carries what the submit journaled (the edit's work, the
    call's submission). A message that may ``repeat`` one handled before (SQS delivered it
    already), or one that carries nothing, reads the journal first: a call collected before is
    not collected again."""
    journal = runtime.collecting.journal
    carried = None if repeat else _carried(message)
    if carried is None:
        state = journal.state(message.edit_key)
        # A call journaled by its lookup alone (its submit stopped between the two writes) is
        # collected with what its message carries.
        entry = state.entries.get(message.call) if state else None
        submitted = entry["submission"] if entry else message.submission
        if state is None or submitted is None:
            return _unknown(message)
        if message.call in state.done:
            return _collected_before(message, state, runtime)
        carried = state.work, submitted
    work, submission = carried
    try:
        outcome = _collect_call(message.call, work, submission, runtime, deadline)
    except EditgateError as exc:
        if not (last_attempt and exc.retryable):
            raise
        outcome = _failed_call(plan_from(work, runtime).calls[message.call].num_images, exc)
    marked = journal.mark(message.edit_key, message.call, outcome)
    if marked is None:  # collected before after all (this outcome is not kept), or no journal
        state = journal.state(message.edit_key)
        return _unknown(message) if state is None else _collected_before(message, state, runtime)
    journal.collected(message.request_id)
    if not marked.complete:
        return "collected"
    return _finish(marked, message.edit_key, runtime)


def _carried(message: CollectMessage) -> tuple[dict[str, Any], dict[str, Any]] | None:
    if message.work is None or message.submission is None:
        return None
    return message.work, message.submission


def _unknown(message: CollectMessage) -> str:
    logger.warning(
        "a fal request no journal holds: not collected", extra={"fal_request_id": message.request_id}
    )
    return "unknown"


def _collected_before(message: CollectMessage, state: CollectState, runtime: BatchRuntime) -> str:
    """A call collected before: its item finished now only if the collector that completed it
    did not get to (it crashed before its item's record was settled)."""
    runtime.collecting.journal.collected(message.request_id)
    metrics.add("CollectRepeats", 1)
    if not state.complete:
        return "collected"
    if owner_of(state.work, runtime).finished():
        return "already finished"
    return _finish(state, message.edit_key, runtime)


def _collect_call(
    call: int, work: dict[str, Any], submitted: dict[str, Any], runtime: BatchRuntime, deadline: float
) -> dict[str, Any]:
    """One call's outcome: the keys of its stored images, or why it made none."""
    owner = owner_of(work, runtime)
    services = owner.edits.services
    plan = plan_from(work, runtime)
    submission = FalSubmission.model_validate(submitted)
    wanted = plan.calls[call].num_images
    try:
        with timing.phase("fal-result"):
            output = services.fal.result(submission, deadline)
    except ProviderRejected as exc:
        name = plan.model.client_name(exc.param) if exc.param else None
        refused = InvalidRequest(exc.message.replace(f"'{exc.param}'", f"'{name}'"), param=name)
        return _failed_call(wanted, refused)
    except FalRequestEnded as exc:  # fal's ERROR: it bills nothing
        return _failed_call(wanted, exc)
    kept = [image.url for index, image in enumerate(output.images) if not output.flagged(index)]
    alpha = _alpha(owner, plan) if work.get("alpha") and kept else None
    first = sum(planned.num_images for planned in plan.calls[:call])
    folder = owner.folder
    slots = threading.BoundedSemaphore(plan.finish_slots(services.limits.memory_mb, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=max(1, len(kept))) as pool:
        stored = [
            pool.submit(timing.carried(_finish_and_store), url, f"{folder}/{first + k}", plan, alpha,
                        owner, deadline, slots)
            for k, url in enumerate(kept)
        ]  # fmt: skip
    keys = [future.result().key for future in stored]  # an image not finished: SQS tries again
    return {"keys": keys, "billed": len(output.images), "flagged": len(output.images) - len(kept),
            "request_id": output.request_id, "seconds": output.seconds, "retries": output.retries,
            "failures": []}  # fmt: skip


def _failed_call(images_wanted: int, error: EditgateError) -> dict[str, Any]:
    """A call that made nothing: fal's error (nothing billed), or images fal made that could not
    be collected (``retryable``: a redrive collects them)."""
    retryable = error.retryable and not isinstance(error, FalRequestEnded)
    failure = CallFailure(images=images_wanted, code=error.code, message=error.message, retryable=retryable)
    return {"keys": [], "billed": 0, "flagged": 0, "request_id": None, "seconds": 0.0, "retries": 0,
            "failures": [failure.model_dump()], "error": error.body()["error"]}  # fmt: skip


def _finish_and_store(
    url: str, stem: str, plan: Plan, alpha: Image.Image | None, owner: EditOwner, deadline: float,
    slots: threading.BoundedSemaphore,
) -> EditedImage:  # fmt: skip
    services = owner.edits.services
    data = finish_download(services.fal, url, plan, alpha, deadline, slots)
    return store_image(data, stem, plan, services.store)


def _alpha(owner: EditOwner, plan: Plan) -> Image.Image | None:
    """The input's transparency, which the finished images get back: read from the edit's input
    again (the journal keeps only that there was some)."""
    limit = owner.edits.services.limits.max_input_pixels
    source = images.UploadedImage(owner.source(), param="image", max_pixels=limit)
    return images.alpha_at(source.decoded(), plan.target, plan.fit)


def _finish(state: CollectState, edit_key: str, runtime: BatchRuntime) -> str:
    """The edit's end from its calls' outcomes, recorded with its owner."""
    owner = owner_of(state.work, runtime)
    outcomes = [state.done[call] for call in range(state.calls)]
    keys = [key for outcome in outcomes for key in outcome["keys"]]
    # Images fal made that could not be collected fail the edit, lest a success hide them.
    uncollected = [o["error"] for o in outcomes if any(f["retryable"] for f in o["failures"])]
    if not keys or uncollected:
        errors = uncollected or [outcome["error"] for outcome in outcomes if outcome.get("error")]
        error = errors[0] if errors else all_flagged(any(o["flagged"] for o in outcomes)).body()["error"]
        ended = owner.failed(error)
        if not uncollected:
            runtime.collecting.journal.forget(edit_key)  # nothing billed: a redrive submits it anew
        return ended
    plan = plan_from(state.work, runtime)
    return owner.succeeded(_result(owner, outcomes, keys, plan))


def _result(owner: EditOwner, outcomes: list[dict[str, Any]], keys: list[str], plan: Plan) -> EditResult:
    spec, store = plan.model, owner.edits.services.store
    billed = sum(outcome["billed"] for outcome in outcomes)
    failures = [CallFailure.model_validate(f) for outcome in outcomes for f in outcome["failures"]]
    flagged = sum(outcome["flagged"] for outcome in outcomes)
    if flagged:
        failures.append(flagged_failure(flagged))
    made = [o for o in outcomes if o["request_id"]]
    return EditResult(
        created=int(time.time()), request_id=owner.request_id, model=spec.id,
        provider=spec.provider, images=tuple(EditedImage(key=key, url=store.presign(key)) for key in keys),
        size=plan.target, output_format=plan.output_format, response_format=plan.response_format,
        cost_usd=spec.price_usd(billed, plan.provider_size.width, plan.provider_size.height),
        billed_images=billed, provider_request_ids=tuple(o["request_id"] for o in made),
        ignored_params=plan.ignored, passthrough_params=plan.passthrough,
        resampled_from=plan.provider_size if plan.provider_size != plan.target else None,
        upscaled=plan.upscaled, failures=tuple(failures),
        provider_seconds=max(o["seconds"] for o in outcomes),
        provider_retries=sum(o["retries"] for o in outcomes),
    )  # fmt: skip
