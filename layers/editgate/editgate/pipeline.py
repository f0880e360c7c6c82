"""The one function that does an edit, whatever the transport: ``edit`` (and ``dry_run``, which
stops where the paid call would start)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pybase64  # SIMD base64: 60x the standard library on a 2 MB body
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from PIL import Image

from editgate import images, metrics, normalize, secrets, timing
from editgate.catalog import ModelSpec, build_catalog
from editgate.dedupe import Deduplicator
from editgate.errors import (
    ContentPolicyViolation,
    EditgateError,
    InvalidRequest,
    PayloadTooLarge,
    UpstreamError,
    UpstreamTimeout,
)
from editgate.fal import FalClient, FalOutput, FalRequestEnded, FalSubmission, ProviderRejected
from editgate.fetch import ImageFetcher
from editgate.images import CONTENT_TYPES
from editgate.models import CallFailure, EditedImage, EditRequest, EditResult, Plan
from editgate.settings import Settings
from editgate.storage import EditJournal, ResultStore, SubmissionJournal

logger = Logger(child=True)

# An input image: uploaded bytes, or a URL / data: URI to fetch.
InputImage = bytes | str


@dataclass
class Services:
    """What an edit needs, built once per cold start."""

    settings: Settings
    fal: FalClient
    store: ResultStore
    fetcher: ImageFetcher
    deduplicator: Deduplicator
    journal: SubmissionJournal
    catalog: dict[str, ModelSpec] = field(default_factory=dict)

    def model(self, model_id: str) -> ModelSpec:
        spec = self.catalog.get(model_id)
        if spec is None:
            known = ", ".join(sorted(self.catalog))
            raise InvalidRequest(
                f"Invalid value for 'model': '{model_id}' is not a model of this gateway (known: {known}).",
                param="model",
                code="model_not_found",
            )
        return spec

    @classmethod
    def create(cls, settings: Settings) -> Services:
        """Built once per cold start, from the settings alone."""
        fal_key = partial(secrets.secret_text, settings.fal_key_secret_name, settings.secrets_max_age_seconds)
        return cls(
            settings=settings,
            fal=FalClient(
                settings.fal_queue_url,
                fal_key,
                poll_interval=settings.fal_poll_interval_seconds,
                retry_base_seconds=settings.fal_retry_base_seconds,
                retention_seconds=settings.provider_retention_seconds,
            ),
            store=ResultStore(
                settings.results_bucket, settings.results_prefix, settings.presign_expiry_seconds
            ),
            fetcher=ImageFetcher(max_bytes=settings.max_image_bytes),
            deduplicator=Deduplicator(
                settings.idempotency_table,
                keyed_ttl_seconds=settings.idempotency_ttl_seconds,
                fingerprint_ttl_seconds=settings.fingerprint_ttl_seconds,
            ),
            journal=SubmissionJournal(settings.idempotency_table),
            catalog=build_catalog(settings),
        )


@dataclass(frozen=True)
class _Prepared:
    spec: ModelSpec
    plan: Plan
    image_uri: str
    alpha: Image.Image | None


def _prepare(
    request: EditRequest, inputs: Sequence[InputImage], services: Services, deadline: float
) -> _Prepared:
    """Everything before the paid call: validation, the plan, the provider's input image."""
    spec = services.model(request.model)
    if not inputs:
        raise InvalidRequest(
            "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
        )
    if len(inputs) > 1:
        raise InvalidRequest(
            f"{spec.id} edits one image at a time; {len(inputs)} were sent.",
            param="image",
            code="too_many_images",
        )
    if isinstance(inputs[0], bytes):
        data = inputs[0]
    else:
        with timing.phase("fetch"):
            data = services.fetcher.fetch(inputs[0], deadline)
    with timing.phase("decode"):  # the header: format, size, orientation
        upload = images.UploadedImage(data, param="image", max_pixels=services.settings.max_input_pixels)
    plan = normalize.plan(
        request, spec, upload.size, allow_safety_checker_off=services.settings.allow_safety_checker_off
    )
    plan.check_finish_fits(deadline - time.monotonic())
    if upload.sendable_as_is(plan.provider_size):  # nothing to change: fal gets the upload itself
        return _Prepared(spec, plan, images.to_data_uri(data, f"image/{upload.format}"), None)
    with timing.phase("decode"):
        source = upload.decoded()
    with timing.phase("fit"):
        fitted = images.fit(images.flatten_on_white(source), plan.provider_size, plan.fit)
    with timing.phase("encode-input"):
        image_uri = images.to_data_uri(images.encode(fitted, "png"), CONTENT_TYPES["png"])
    return _Prepared(spec, plan, image_uri, images.alpha_at(source, plan.target, plan.fit))


def dry_run(
    request: EditRequest, inputs: Sequence[InputImage], services: Services, *, deadline: float
) -> dict[str, Any]:
    """What ``edit`` would send and cost, without calling the provider or storing anything."""
    prepared = _prepare(request, inputs, services, deadline)
    plan, spec = prepared.plan, prepared.spec
    placeholder = f"<{len(prepared.image_uri):,}-character data:image/png;base64 URI, {plan.provider_size}>"
    return {
        "object": "edit.dry_run",
        "model": spec.id,
        "provider": spec.provider,
        "endpoint_id": spec.endpoint_id,
        "provider_requests": plan.payloads(placeholder),
        "size": str(plan.target),
        "provider_size": str(plan.provider_size),
        "resampled": plan.provider_size != plan.target,
        "upscaled": plan.upscaled,
        "output_format": plan.output_format,
        "response_format": plan.response_format,
        "ignored_params": list(plan.ignored),
        "passthrough_params": list(plan.passthrough),
        "cost": {"usd": plan.cost_usd, "images": sum(c.num_images for c in plan.calls)},
    }


def edit(
    request: EditRequest,
    inputs: Sequence[InputImage],
    services: Services,
    *,
    request_id: str,
    deadline: float,
    folder: str,
    journal: EditJournal,
) -> EditResult:
    """Validate, plan, run on the provider, finish and store one edit under ``folder``. Raises
    ``EditgateError``s; when only some of the provider calls fail, answers with the images that
    were made (they are paid) and reports the rest in ``failures``. Each provider call is
    journaled as soon as fal accepts it, and a call the journal already holds is collected, not
    submitted again."""
    prepared = _prepare(request, inputs, services, deadline)
    spec, plan = prepared.spec, prepared.plan
    outcomes, errors = _ProviderCalls(prepared, services, journal, deadline).run()
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


@dataclass
class _ProviderCalls:
    """The provider calls of one edit, side by side: each submitted (or collected from the
    journal), then its images downloaded and finished as they come, within the deadline."""

    prepared: _Prepared
    services: Services
    journal: EditJournal
    deadline: float
    # Images finished at once: one per vCPU, as far as the function's memory allows.
    finishing: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        memory_mb = self.services.settings.aws_lambda_function_memory_size
        slots = self.prepared.plan.finish_slots(memory_mb, os.cpu_count() or 1)
        self.finishing = threading.BoundedSemaphore(slots)

    def run(self) -> tuple[list[_CallOutcome], list[tuple[int, EditgateError]]]:
        """What each call made, and the errors of those that failed (with the images they were
        to make) and of images made but not finished."""
        plan = self.prepared.plan
        with ThreadPoolExecutor(max_workers=len(plan.calls)) as pool:
            futures = [
                pool.submit(timing.carried(self._call), k, payload)
                for k, payload in enumerate(plan.payloads(self.prepared.image_uri))
            ]
        outcomes: list[_CallOutcome] = []
        errors: list[tuple[int, EditgateError]] = []
        for planned, future in zip(plan.calls, futures, strict=True):
            try:
                outcomes.append(future.result())
            except EditgateError as exc:
                errors.append((planned.num_images, exc))
        errors += [(1, exc) for outcome in outcomes for exc in outcome.unfinished]
        return outcomes, errors

    def _call(self, index: int, payload: dict[str, Any]) -> _CallOutcome:
        spec = self.prepared.spec
        try:
            output, counted_earlier = _provider_output(
                index, payload, spec, self.services.fal, self.journal, self.deadline
            )
        except ProviderRejected as exc:
            name = spec.client_name(exc.param) if exc.param else None
            raise InvalidRequest(exc.message.replace(f"'{exc.param}'", f"'{name}'"), param=name) from None
        kept = [image.url for index, image in enumerate(output.images) if not output.flagged(index)]
        with ThreadPoolExecutor(max_workers=max(1, len(kept))) as downloads:
            finished = [downloads.submit(timing.carried(self._finish), url) for url in kept]
        made, unfinished = [], []
        for future in finished:
            try:
                made.append(future.result())
            except EditgateError as exc:
                unfinished.append(exc)
        return _CallOutcome(index, output, made, len(output.images) - len(kept), unfinished, counted_earlier)

    def _finish(self, url: str) -> bytes:
        plan = self.prepared.plan
        with timing.phase("download"):
            data = self.services.fal.fetch(url, self.deadline)
        with self.finishing:
            if self.deadline - time.monotonic() < plan.finish_seconds_per_image:
                raise UpstreamTimeout(
                    "The edited images were made but could not be finished in time; retrying the same "
                    "request collects them from the provider without a second charge.",
                    retry_after=1,
                )
            try:
                with timing.phase("finish"):
                    return images.finish(
                        data,
                        plan.target,
                        plan.output_format,
                        compression=plan.output_compression,
                        alpha=self.prepared.alpha,
                    )
            except ValueError:
                raise UpstreamError("The provider returned an unreadable image.") from None


def _failures(
    outcomes: Sequence[_CallOutcome], errors: Sequence[tuple[int, EditgateError]]
) -> list[CallFailure]:
    """What the answer reports as not made, and whether the same request again could make it."""
    failures = [
        CallFailure(images=n, code=exc.code, message=exc.message, retryable=exc.retryable)
        for n, exc in errors
    ]
    flagged = sum(outcome.flagged for outcome in outcomes)
    if flagged:
        failures.append(CallFailure(images=flagged, code="content_policy_violation",
                                    message="flagged by the provider's safety checker"))  # fmt: skip
    if failures:
        logger.warning("partial answer", extra={"failures": [f.code for f in failures]})
    return failures


def _nothing_made(
    outcomes: Sequence[_CallOutcome], errors: Sequence[tuple[int, EditgateError]]
) -> EditgateError:
    """With nothing made there is no answer: the first error, or the safety checker's refusal."""
    if errors:
        return errors[0][1]
    flagged = sum(outcome.flagged for outcome in outcomes)
    return ContentPolicyViolation(
        "The edited image was flagged by the provider's safety checker and is not returned.",
        param="prompt" if flagged else None,
    )


def _count_cost(
    outcomes: Sequence[_CallOutcome], journal: EditJournal, new_usd: float, *, final: bool
) -> None:
    """What fal billed for this attempt's calls, counted once across attempts: an attempt whose
    answer is not final marks its calls counted in the journal, so the attempt that collects them
    again does not count them a second time."""
    metrics.add("CostUSD", new_usd, MetricUnit.NoUnit)
    if not final:
        journal.mark_counted([o.index for o in outcomes if o.output.images and not o.counted_earlier])


def _store_all(made: Sequence[bytes], folder: str, plan: Plan, store: ResultStore) -> list[EditedImage]:
    """The images put in the results bucket side by side, like the downloads."""
    with ThreadPoolExecutor(max_workers=len(made)) as puts:
        putting = [puts.submit(timing.carried(_store), data, f"{folder}/{index}", plan, store)
                   for index, data in enumerate(made)]  # fmt: skip
    return [put.result() for put in putting]


def inline(result: EditResult, store: ResultStore) -> EditResult:
    """The answer as the client asked for it: ``b64_json`` images read back from the bucket
    (results are always stored, so a repeated request can be answered from its record)."""
    if result.response_format != "b64_json":
        return result
    encoded = [
        image.model_copy(update={"b64_json": pybase64.b64encode(store.get(image.key)).decode("ascii")})
        for image in result.images
    ]
    size = sum(len(image.b64_json or "") for image in encoded)
    if size > normalize.LAMBDA_RESPONSE_LIMIT:
        raise PayloadTooLarge(
            f"The images are {size:,} bytes as base64, over Lambda's "
            f"{normalize.LAMBDA_RESPONSE_LIMIT:,}-byte response limit: ask for response_format=url.",
            param="response_format",
        )
    return result.model_copy(update={"images": tuple(encoded)})


@dataclass(frozen=True)
class _CallOutcome:
    index: int  # of the call in the plan, and in the edit's journal
    output: FalOutput
    images: list[bytes]
    flagged: int
    unfinished: list[EditgateError]  # made and paid for, but not downloaded or finished in time
    counted_earlier: bool  # its cost was counted by an earlier attempt that did not answer in full


def _provider_output(
    index: int,
    payload: dict[str, Any],
    spec: ModelSpec,
    fal: FalClient,
    journal: EditJournal,
    deadline: float,
) -> tuple[FalOutput, bool]:
    """Call ``index`` of an edit: collected from the request an earlier attempt submitted for the
    same payload, or submitted (once) and journaled before waiting on it; and whether an earlier
    attempt already counted its cost."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    with timing.phase("journal"):
        known = journal.get(index)
    if known is not None and known.get("payload") == digest:
        try:
            output = fal.collect(FalSubmission.model_validate(known["submission"]), deadline)
            return output, bool(known.get("counted"))
        except FalRequestEnded:
            logger.info("journaled fal request ended without images: submitting anew",
                        extra={"fal_request_id": known["submission"].get("request_id")})  # fmt: skip
    with timing.phase("fal-submit"):
        submission = fal.submit(spec.endpoint_id, payload, deadline)
    entry = {"payload": digest, "submission": submission.model_dump(mode="json")}
    # Journaled while fal works: leaving the pool waits for the write, whatever the wait ended in.
    with ThreadPoolExecutor(max_workers=1) as writer, timing.phase("fal-wait"):
        writer.submit(timing.carried(journal.record), index, entry)
        return fal.collect(submission, deadline), False


def _store(data: bytes, stem: str, plan: Plan, store: ResultStore) -> EditedImage:
    key = f"{stem}.{plan.output_format}"
    with timing.phase("store"):
        store.put(key, data, CONTENT_TYPES[plan.output_format])
    with timing.phase("presign"):
        url = store.presign(key) if plan.response_format == "url" else None
    return EditedImage(key=key, url=url)
