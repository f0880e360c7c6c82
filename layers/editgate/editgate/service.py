"""The edit service both front doors call: one edit, run at most once however often it is asked
for, resumed where an earlier attempt left it, and counted in the metrics.

Only a final answer is kept as the edit's record. An answer missing images that the same request
again could make or collect (a download past the deadline: fal made and billed them) is given to
the caller but not kept, so the retry runs again and collects them from the edit's journal."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit

from editgate import metrics, pipeline, timing
from editgate.dedupe import EditIdentity
from editgate.models import EditRequest, EditResult
from editgate.pipeline import InputImage, Services


@dataclass(frozen=True)
class EditOutcome:
    result: EditResult
    replayed: bool  # answered from an earlier attempt's stored result


class _NotFinal(Exception):
    """Raised through the deduplicator so that it keeps no record of an answer that is not final."""

    def __init__(self, record: dict[str, object]) -> None:
        super().__init__("the answer is missing images a retry can collect")
        self.record = record


def run_edit(
    request: EditRequest,
    inputs: Sequence[InputImage],
    services: Services,
    *,
    identity: EditIdentity,
    request_id: str,
    deadline: float,
    folder: str,
) -> EditOutcome:
    """Run the edit named by ``identity`` once. A repeat after it finished gets its stored result
    (no provider call); a repeat after an attempt died (a timeout, a crash, a 504) collects the
    provider requests that attempt submitted, from the edit's journal."""
    started = time.monotonic()
    ran = False
    worked = 0.0

    def work() -> dict[str, object]:
        nonlocal ran, worked
        ran = True
        began = time.perf_counter()
        with timing.phase("journal"):
            journal = services.journal.open(identity.key, services.deduplicator.ttl_seconds(identity))
        result = pipeline.edit(
            request,
            inputs,
            services,
            request_id=request_id,
            deadline=deadline,
            folder=folder,
            journal=journal,
        )
        worked = time.perf_counter() - began
        if not result.complete:
            raise _NotFinal(result.model_dump(mode="json"))
        return result.model_dump(mode="json")

    began = time.perf_counter()
    try:
        record = services.deduplicator.run(identity, work)
    except _NotFinal as partial:
        record = partial.record
    # The deduplicator's own calls around the work (its record written, read and completed).
    timing.add("dedupe", (time.perf_counter() - began - worked) * 1000)
    result = EditResult.model_validate(record)
    replayed = not ran
    if replayed:
        metrics.add("Replays", 1)
    else:
        _count(result, time.monotonic() - started)
    return EditOutcome(result, replayed)


def _count(result: EditResult, seconds: float) -> None:
    metrics.add("ImagesEdited", len(result.images))
    metrics.add("FalLatency", result.provider_seconds * 1000, MetricUnit.Milliseconds)
    gateway_seconds = max(0.0, seconds - result.provider_seconds)  # a resumed edit waited less
    metrics.add("GatewayLatency", gateway_seconds * 1000, MetricUnit.Milliseconds)
    metrics.add("FalRetries", result.provider_retries)
    metrics.add("PartialFailures", len(result.failures))
