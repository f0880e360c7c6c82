"""The steps of one attempt of an edit: prepare, call the provider (journaled), count what fal
billed, store the images. Runs every time it is called: ``editgate.app.edit_service`` makes
sure an edit runs once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from editgate.adapters.journal import EditJournal
from editgate.adapters.objects import ObjectStore
from editgate.app import metrics, timing
from editgate.app.preparing import prepare
from editgate.app.provider_calls import CallOutcome, ProviderCalls
from editgate.app.services import InputImage, Services
from editgate.domain.errors import ContentPolicyViolation, EditgateError
from editgate.domain.images import CONTENT_TYPES
from editgate.domain.models import CallFailure, EditedImage, EditRequest, EditResult, Plan

logger = Logger(child=True)


def make_edit(
    request: EditRequest,
    inputs: Sequence[InputImage],
    services: Services,
    *,
    request_id: str,
    deadline: float,
    folder: str,
    journal: EditJournal,
) -> EditResult:
    """One attempt of an edit, step by step: validate and plan, run on the provider, finish and
    store the images under ``folder``. Raises
    ``EditgateError``s; when only some of the provider calls fail, answers with the images that
    were made (they are paid) and reports the rest in ``failures``. Each provider call is
    journaled as soon as fal accepts it, and a call the journal already holds is collected, not
    submitted again."""
    prepared = prepare(request, inputs, services, deadline)
    spec, plan = prepared.spec, prepared.plan
    outcomes, errors = ProviderCalls(prepared, services, journal, deadline).run()
    made = [data for outcome in outcomes for data in outcome.images]
    # fal bills every image it made, flagged or not finished here included; failed calls are free.
    billed = sum(len(outcome.output.images) for outcome in outcomes)
    counted_earlier = sum(len(outcome.output.images) for outcome in outcomes if outcome.counted_earlier)
    cost_usd = spec.price_usd(billed, plan.provider_size.width, plan.provider_size.height)
    failures = _failures(outcomes, errors)
    final = bool(made) and not any(failure.retryable for failure in failures)
    _count_cost(outcomes, journal, cost_usd * (billed - counted_earlier) / max(billed, 1), final=final)
    if not made:
        raise _nothing_made(outcomes, errors)
    return EditResult(
        created=int(time.time()),
        request_id=request_id,
        model=spec.id,
        provider=spec.provider,
        images=tuple(_store_all(made, folder, plan, services.store)),
        size=plan.target,
        output_format=plan.output_format,
        response_format=plan.response_format,
        cost_usd=cost_usd,
        billed_images=billed,
        provider_request_ids=tuple(o.output.request_id for o in outcomes),
        ignored_params=plan.ignored,
        passthrough_params=plan.passthrough,
        resampled_from=plan.provider_size if plan.provider_size != plan.target else None,
        upscaled=plan.upscaled,
        failures=tuple(failures),
        provider_seconds=max(o.output.seconds for o in outcomes),
        provider_retries=sum(o.output.retries for o in outcomes),
    )


def _failures(
    outcomes: Sequence[CallOutcome], errors: Sequence[tuple[int, EditgateError]]
) -> list[CallFailure]:
    """What the answer reports as not made, and whether the same request again could make it."""
    failures = [
        CallFailure(images=n, code=exc.code, message=exc.message, retryable=exc.retryable)
        for n, exc in errors
    ]
    flagged = sum(outcome.flagged for outcome in outcomes)
    if flagged:
        failures.append(flagged_failure(flagged))
    if failures:
        logger.warning("partial answer", extra={"failures": [f.code for f in failures]})
    return failures


def flagged_failure(flagged: int) -> CallFailure:
    """The images the provider's safety checker flagged, as the answer reports them."""
    return CallFailure(images=flagged, code="content_policy_violation",
                       message="flagged by the provider's safety checker")  # fmt: skip


def _count_cost(
    outcomes: Sequence[CallOutcome], journal: EditJournal, new_usd: float, *, final: bool
) -> None:
    """What fal billed for this attempt's calls, counted once across attempts: an attempt whose
    answer is not final marks its calls counted in the journal, so the attempt that collects them
    again does not count them a second time."""
    metrics.add("CostUSD", new_usd, MetricUnit.NoUnit)
    if not final:
        journal.mark_counted([o.index for o in outcomes if o.output.images and not o.counted_earlier])


def _nothing_made(
    outcomes: Sequence[CallOutcome], errors: Sequence[tuple[int, EditgateError]]
) -> EditgateError:
    """With nothing made there is no answer: the first error, or the safety checker's refusal."""
    if errors:
        return errors[0][1]
    return all_flagged(any(outcome.flagged for outcome in outcomes))


def all_flagged(flagged: bool) -> ContentPolicyViolation:
    """No image to answer with: the provider's safety checker flagged them all."""
    return ContentPolicyViolation(
        "The edited image was flagged by the provider's safety checker and is not returned.",
        param="prompt" if flagged else None,
    )


def _store_all(made: Sequence[bytes], folder: str, plan: Plan, store: ObjectStore) -> list[EditedImage]:
    """The images put in the results bucket side by side, like the downloads."""
    with ThreadPoolExecutor(max_workers=len(made)) as puts:
        putting = [puts.submit(timing.carried(store_image), data, f"{folder}/{index}", plan, store)
                   for index, data in enumerate(made)]  # fmt: skip
    return [put.result() for put in putting]


def store_image(data: bytes, stem: str, plan: Plan, store: ObjectStore) -> EditedImage:
    """An image put in the results bucket at ``<stem>.<format>`` (and presigned, for url answers)."""
    key = f"{stem}.{plan.output_format}"
    with timing.phase("store"):
        store.put(key, data, CONTENT_TYPES[plan.output_format])
    with timing.phase("presign"):
        url = store.presign(key) if plan.response_format == "url" else None
    return EditedImage(key=key, url=url)
