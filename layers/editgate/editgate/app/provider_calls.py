"""The provider calls of one edit, side by side: each journaled the moment fal accepts it (or
collected from the journal, when an earlier attempt of the same edit submitted it), then its
images downloaded and finished as they come, within the deadline."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger
from PIL import Image

from editgate.adapters.fal import FalClient, FalOutput, FalSubmission
from editgate.adapters.fal_answers import FalRequestEnded, ProviderRejected
from editgate.adapters.journal import EditJournal
from editgate.app import timing
from editgate.app.preparing import Prepared
from editgate.app.services import Services
from editgate.domain import images
from editgate.domain.catalog import ModelSpec
from editgate.domain.errors import EditgateError, InvalidRequest, UpstreamError, UpstreamTimeout
from editgate.domain.models import Plan

logger = Logger(child=True)


@dataclass(frozen=True)
class CallOutcome:
    index: int  # of the call in the plan, and in the edit's journal
    output: FalOutput
    images: list[bytes]
    flagged: int
    unfinished: list[EditgateError]  # made and paid for, but not downloaded or finished in time
    counted_earlier: bool  # its cost was counted by an earlier attempt that did not answer in full


@dataclass
class ProviderCalls:
    """The provider calls of one edit, side by side: each submitted (or collected from the
    journal), then its images downloaded and finished as they come, within the deadline."""

    prepared: Prepared
    services: Services
    journal: EditJournal
    deadline: float
    # Images finished at once: one per vCPU, as far as the function's memory allows.
    finishing: threading.BoundedSemaphore = field(init=False)

    def __post_init__(self) -> None:
        memory_mb = self.services.limits.memory_mb
        slots = self.prepared.plan.finish_slots(memory_mb, os.cpu_count() or 1)
        self.finishing = threading.BoundedSemaphore(slots)

    def run(self) -> tuple[list[CallOutcome], list[tuple[int, EditgateError]]]:
        """What each call made, and the errors of those that failed (with the images they were
        to make) and of images made but not finished."""
        plan = self.prepared.plan
        with ThreadPoolExecutor(max_workers=len(plan.calls)) as pool:
            futures = [
                pool.submit(timing.carried(self._call), k, payload)
                for k, payload in enumerate(plan.payloads(self.prepared.image_uri))
            ]
        outcomes: list[CallOutcome] = []
        errors: list[tuple[int, EditgateError]] = []
        for planned, future in zip(plan.calls, futures, strict=True):
            try:
                outcomes.append(future.result())
            except EditgateError as exc:
                errors.append((planned.num_images, exc))
        errors += [(1, exc) for outcome in outcomes for exc in outcome.unfinished]
        return outcomes, errors

    def _call(self, index: int, payload: dict[str, Any]) -> CallOutcome:
        spec = self.prepared.spec
        try:
            output, counted_earlier = _journaled_output(
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
        return CallOutcome(index, output, made, len(output.images) - len(kept), unfinished, counted_earlier)

    def _finish(self, url: str) -> bytes:
        prepared = self.prepared
        return finish_download(
            self.services.fal, url, prepared.plan, prepared.alpha, self.deadline, self.finishing
        )


def finish_download(
    fal: FalClient,
    url: str,
    plan: Plan,
    alpha: Image.Image | None,
    deadline: float,
    finishing: threading.BoundedSemaphore,
) -> bytes:
    """One image fal made, downloaded and finished as the plan asks (one of ``finishing`` slots)."""
    with timing.phase("download"):
        data = fal.download(url, deadline)
    with finishing:
        if deadline - time.monotonic() < plan.finish_seconds_per_image:
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
                    alpha=alpha,
                    # Its presence in Server-Timing counts re-encodes.
                    encoding=partial(timing.phase, "encode-output"),
                )
        except ValueError:
            raise UpstreamError("The provider returned an unreadable image.") from None


def payload_digest(payload: dict[str, Any]) -> str:
    """What names a call's payload in the journal: the same payload is the same fal request."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _journaled_output(
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
    digest = payload_digest(payload)
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
