"""The edit service both front doors call: one edit, run at most once however often it is asked
for, resumed where an earlier attempt left it, and counted in the metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from editgate import pipeline
from editgate.dedupe import EditIdentity
from editgate.normalize import EditRequest
from editgate.pipeline import EditResult, InputImage, Services

metrics = Metrics()  # the handler's: Powertools keeps one metric set per process


@dataclass(frozen=True)
class EditOutcome:
    result: EditResult
    replayed: bool  # answered from an earlier attempt's stored result


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

    def work() -> dict[str, object]:
        nonlocal ran
        ran = True
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
        return result.model_dump(mode="json")

    result = EditResult.model_validate(services.deduplicator.run(identity, work))
    replayed = not ran
    if replayed:
        metrics.add_metric(name="Replays", unit=MetricUnit.Count, value=1)
    else:
        _count(result, time.monotonic() - started)
    return EditOutcome(result, replayed)


def _count(result: EditResult, seconds: float) -> None:
    metrics.add_metric(name="ImagesEdited", unit=MetricUnit.Count, value=len(result.images))
    metrics.add_metric(name="CostUSD", unit=MetricUnit.NoUnit, value=result.cost_usd)
    metrics.add_metric(name="FalLatency", unit=MetricUnit.Milliseconds, value=result.provider_seconds * 1000)
    metrics.add_metric(
        name="GatewayLatency",
        unit=MetricUnit.Milliseconds,
        value=max(0.0, seconds - result.provider_seconds) * 1000,
    )
    metrics.add_metric(name="FalRetries", unit=MetricUnit.Count, value=result.provider_retries)
    metrics.add_metric(name="PartialFailures", unit=MetricUnit.Count, value=len(result.failures))
