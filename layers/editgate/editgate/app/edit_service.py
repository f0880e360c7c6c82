"""The edit service of the one front door that waits on fal: ``EditService.edit_now`` for the
HTTPS door (the edit's identity, folder, dry run and base64 answer behind it); batch items and
asynchronous jobs submit and return (``editgate.app.batch.submit``). It runs one edit at most
once however often it is asked for (``edit_once``), resumed where an earlier attempt left it, and
counted in the metrics.

Only a final answer is kept as the edit's record. An answer missing images that the same request
again could make or collect (a download past the deadline: fal made and billed them) is given to
the caller but not kept, so the retry runs again and collects them from the edit's journal."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import pybase64
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from editgate.adapters.objects import ObjectStore
from editgate.app import metrics, timing
from editgate.app.edit_steps import make_edit
from editgate.app.preparing import Prepared, prepare
from editgate.app.services import InputImage, Services
from editgate.domain import envelope, identity
from editgate.domain.errors import InvalidRequest
from editgate.domain.identity import EditIdentity
from editgate.domain.models import EditRequest, EditResult


@dataclass(frozen=True)
class EditCall:
    """An HTTPS edit as its door read it."""

    request: EditRequest
    inputs: Sequence[InputImage]
    caller: str  # the id of the API key the authorizer accepted
    idempotency_key: str | None  # the Idempotency-Key header, as sent
    request_id: str
    deadline: float  # time.monotonic()
    dry_run: bool = False
    stream: bool = False  # the answer as server-sent events (the door's concern: the edit is the same)
    respond_async: bool = False  # a job: answered 202 at once, run on the batch queue
    callback_url: str | None = None  # where a job's end is told (jobs only)


@dataclass(frozen=True)
class EditOutcome:
    result: EditResult
    replayed: bool  # answered from an earlier attempt's stored result


class EditService:
    """The edits the front doors ask for."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def register(self, context: LambdaContext) -> None:
        """Tie the idempotency records in progress to this invocation (see ``Deduplicator``)."""
        self.services.deduplicator.register(context)

    def edit_now(self, call: EditCall) -> EditOutcome | Prepared:
        """The edit, answered as the client asked for it (``b64_json`` images embedded); or, for a
        dry run, what it would send and cost, with nothing paid or stored."""
        key = identity.idempotency_key(call.idempotency_key)
        if call.callback_url is not None:
            raise InvalidRequest(
                "'callback_url' is for jobs: send the edit with 'Prefer: respond-async' (or ?async=true).",
                param="callback_url",
            )
        if call.dry_run:
            return prepare(call.request, call.inputs, self.services, call.deadline)
        outcome = edit_once(
            call.request,
            call.inputs,
            self.services,
            identity=identity.for_request(call.caller, key, call.request, call.inputs),
            request_id=call.request_id,
            deadline=call.deadline,
            folder=self.services.store.folder_for(call.request_id),
        )
        with timing.phase("inline"):
            return EditOutcome(_with_b64(outcome.result, self.services.store), outcome.replayed)

    def with_urls(self, result: EditResult) -> EditResult:
        """A stored result as its client reads it: each image presigned now (``url``), or read
        back (``b64_json``)."""
        if result.response_format == "b64_json":
            return _with_b64(result, self.services.store)
        store = self.services.store
        images = tuple(image.model_copy(update={"url": store.presign(image.key)}) for image in result.images)
        return result.model_copy(update={"images": images})


def edit_once(
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
        result = make_edit(
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


class _NotFinal(Exception):
    """Raised through the deduplicator so that it keeps no record of an answer that is not final."""

    def __init__(self, record: dict[str, object]) -> None:
        super().__init__("the answer is missing images a retry can collect")
        self.record = record


def _count(result: EditResult, seconds: float) -> None:
    metrics.add("ImagesEdited", len(result.images))
    metrics.add("FalLatency", result.provider_seconds * 1000, MetricUnit.Milliseconds)
    gateway_seconds = max(0.0, seconds - result.provider_seconds)  # a resumed edit waited less
    metrics.add("GatewayLatency", gateway_seconds * 1000, MetricUnit.Milliseconds)
    metrics.add("FalRetries", result.provider_retries)
    metrics.add("PartialFailures", len(result.failures))


def _with_b64(result: EditResult, store: ObjectStore) -> EditResult:
    """``b64_json`` images read back from the bucket (results are always stored, so a repeated
    request can be answered from its record)."""
    if result.response_format != "b64_json":
        return result
    encoded = [
        image.model_copy(update={"b64_json": pybase64.b64encode(store.get(image.key)).decode("ascii")})
        for image in result.images
    ]
    envelope.check_b64_fits(sum(len(image.b64_json or "") for image in encoded))
    return result.model_copy(update={"images": tuple(encoded)})
