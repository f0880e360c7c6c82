"""The application layer's orchestration with fakes in the adapters' places, as the wiring would
put them (no moto, no emulator): the edit service's doors, the journal that keeps fal from being
paid twice, and a batch item's settling."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from editgate.adapters.collect_journal import CollectJournal, CollectState, Held
from editgate.adapters.fal import FalClient, FalImage, FalOutput, FalSubmission
from editgate.adapters.fetch import ImageFetcher
from editgate.adapters.idempotency import Deduplicator
from editgate.adapters.journal import EditJournal, SubmissionJournal, SubmittedRequest
from editgate.adapters.ledger import BatchLedger, Settled, Tally
from editgate.adapters.objects import ObjectHead, ObjectNotFound, ObjectStore
from editgate.adapters.queue import WorkQueue, message_body
from editgate.adapters.webhook_receipts import WebhookReceipts
from editgate.app.batch import items
from editgate.app.batch.collect import collect
from editgate.app.batch.layout import ImageRules, output_key
from editgate.app.batch.messages import ItemMessage
from editgate.app.batch.runtime import BatchRuntime, Collecting
from editgate.app.edit_service import EditCall, EditOutcome, EditService
from editgate.app.fal_webhooks import CollectMessage, collect_message
from editgate.app.preparing import Prepared
from editgate.app.services import EditLimits, Services
from editgate.domain import catalog
from editgate.domain.errors import IdempotencyKeyReused, RequestInProgress, UpstreamError
from editgate.domain.identity import EditIdentity
from editgate.domain.models import EditRequest
from tests.conftest import open_image, png_bytes

INPUT = png_bytes((256, 256))


class FakeFal(FalClient):
    """fal making one image per requested image; every call counted."""

    def __init__(self, failing: int = 0) -> None:
        super().__init__("https://queue.fal.invalid", lambda: "key")
        self.submitted: list[dict[str, Any]] = []
        self.collected: list[str] = []
        self.failing = failing  # how many submits fail first
        self.meanwhile: Callable[[], None] | None = None  # runs once, while the next submit is made

    def submit(
        self, endpoint_id: str, payload: dict[str, Any], deadline: float, *, webhook_url: str | None = None
    ) -> FalSubmission:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        if self.failing:
            self.failing -= 1
            raise UpstreamError("The provider answered HTTP 503.")
        self.submitted.append(payload)
        request_id = f"req-{len(self.submitted)}"
        url = f"https://queue.fal.invalid/{request_id}"
        return FalSubmission(
            request_id=request_id, status_url=url, response_url=url, submitted_at=time.time()
        )

    def collect(self, submission: FalSubmission, deadline: float) -> FalOutput:
        return self.result(submission, deadline)

    def result(self, submission: FalSubmission, deadline: float, retries: Any = None) -> FalOutput:
        self.collected.append(submission.request_id)
        images = [FalImage(url=f"https://cdn.fal.invalid/{submission.request_id}.png")]
        return FalOutput(request_id=submission.request_id, images=images)

    def download(self, url: str, deadline: float) -> bytes:
        return png_bytes((256, 256), (10, 200, 10))


class FakeStore(ObjectStore):
    def __init__(self) -> None:
        super().__init__("results-bucket", "results/", 3600)
        self.objects: dict[tuple[str, str], bytes] = {}

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[(self.bucket, key)] = data

    def read(
        self,
        bucket: str,
        key: str,
        start: int = 0,
        length: int | None = None,
        *,
        if_match: str | None = None,
        version_id: str | None = None,
    ) -> bytes:
        if (bucket, key) not in self.objects:
            raise ObjectNotFound(f"s3://{bucket}/{key}")
        data = self.objects[(bucket, key)]
        return data[start : None if length is None else start + length]

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectHead:
        return ObjectHead(size=len(self.read(bucket, key)), etag="etag", metadata={})

    def presign(self, key: str) -> str:
        return f"https://s3.invalid/{key}?signed"


class FakeDeduplicator(Deduplicator):
    """Powertools Idempotency's contract: one stored answer per identity."""

    def __init__(self) -> None:
        super().__init__("idempotency", keyed_ttl_seconds=3600, fingerprint_ttl_seconds=120)
        self.records: dict[str, dict[str, Any]] = {}

    def register(self, context: LambdaContext) -> None:
        pass

    def run(self, identity: EditIdentity, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if identity.key not in self.records:
            self.records[identity.key] = {"digest": identity.digest, "answer": work()}
        if identity.named and self.records[identity.key]["digest"] != identity.digest:
            raise IdempotencyKeyReused("This Idempotency-Key was already used for a different request.")
        answer: dict[str, Any] = self.records[identity.key]["answer"]
        return answer


class FakeJournals(SubmissionJournal):
    """The journal table, in memory: what each edit's attempts submitted."""

    def __init__(self) -> None:
        super().__init__("idempotency")
        self.entries: dict[str, dict[str, dict[str, Any]]] = {}

    def open(self, edit_key: str, ttl_seconds: int) -> EditJournal:
        journals = self

        class Journal(EditJournal):
            def _write(self, entries: dict[int, dict[str, Any]]) -> None:
                journals.entries.setdefault(edit_key, {}).update({str(k): v for k, v in entries.items()})
                self._entries.update({str(k): v for k, v in entries.items()})

        return Journal(
            "idempotency", f"journal#{edit_key}", ttl_seconds, dict(self.entries.get(edit_key, {}))
        )


class FakeCollectJournal(CollectJournal):
    """The journal's collecting side, in memory: each edit's work and submit lease, its calls'
    fal requests (those awaiting their webhook too) and the outcomes of those collected."""

    def __init__(self) -> None:
        super().__init__("idempotency")
        self.work: dict[str, dict[str, Any]] = {}
        self.leases: dict[str, float] = {}
        self.digests: dict[str, str] = {}
        self.ttls: dict[str, int] = {}  # how long each edit's journal is kept
        self.entries: dict[str, dict[int, dict[str, Any]]] = {}
        self.done: dict[str, dict[int, dict[str, Any]]] = {}
        # fal request id -> its edit, its call, and what its lookup carries for the collect step
        self.awaiting: dict[str, tuple[str, int, dict[str, Any]]] = {}

    def begin(
        self, edit_key: str, digest: str, work: dict[str, Any], *, lease_seconds: float, ttl_seconds: int
    ) -> CollectState | Held:
        if self.leases.get(edit_key, 0.0) >= time.time():
            return Held(other_edit=False)
        if self.digests.get(edit_key, digest) != digest:  # kept with its first fal request
            return Held(other_edit=True)
        self.leases[edit_key] = time.time() + lease_seconds
        self.work[edit_key] = json.loads(json.dumps(work))
        state = self.state(edit_key)
        assert state is not None
        return replace(state, lease_until=str(self.leases[edit_key]))

    def release(self, edit_key: str, state: CollectState) -> None:
        if state.lease_until == str(self.leases.get(edit_key)):
            del self.leases[edit_key]

    def expire_leases(self) -> None:
        """As when a redelivery comes: after the earlier attempt's time (SQS's visibility timeout)."""
        self.leases.clear()

    def edit_journal(self, edit_key: str, digest: str, state: CollectState, ttl_seconds: int) -> EditJournal:
        journals = self
        self.ttls[edit_key] = ttl_seconds

        class Journal(EditJournal):
            def _write(self, entries: dict[int, dict[str, Any]]) -> None:
                journals.digests.setdefault(edit_key, digest)
                journals.entries.setdefault(edit_key, {}).update(entries)
                self._entries.update({str(k): v for k, v in entries.items()})

            def _put_lookup(self, request_id: str, index: int, carried: dict[str, Any]) -> None:
                journals.awaiting[request_id] = (edit_key, index, json.loads(json.dumps(carried)))

        entries = {str(call): entry for call, entry in state.entries.items()}
        return Journal("idempotency", f"journal#{edit_key}", ttl_seconds, entries)

    def state(self, edit_key: str) -> CollectState | None:
        if edit_key not in self.work:
            return None
        return CollectState(self.work[edit_key], dict(self.entries.get(edit_key, {})),
                            dict(self.done.get(edit_key, {})))  # fmt: skip

    def mark(self, edit_key: str, call: int, outcome: dict[str, Any]) -> CollectState | None:
        if edit_key not in self.work or call in self.done.get(edit_key, {}):
            return None
        self.done.setdefault(edit_key, {})[call] = json.loads(json.dumps(outcome))
        return self.state(edit_key)

    def collected(self, request_id: str) -> None:
        self.awaiting.pop(request_id, None)

    def forget(self, edit_key: str) -> None:
        for kept in (self.work, self.leases, self.entries, self.done, self.digests):
            kept.pop(edit_key, None)


class FakeLedger(BatchLedger):
    def __init__(self) -> None:
        super().__init__("batches")
        self.states: dict[tuple[str, str], str] = {}
        self.counted: list[tuple[str, str, int, float]] = []
        self.state_reads = 0

    def state(self, batch_id: str, item_id: str) -> str | None:
        self.state_reads += 1
        return self.states.get((batch_id, item_id))

    def settle(
        self, batch_id: str, item_id: str, state: str, *, images: int = 0, cost_usd: float = 0
    ) -> Settled:
        if self.states.get((batch_id, item_id)) == state:
            return Settled(changed=False, may_finish=False)
        self.states[(batch_id, item_id)] = state
        self.counted.append((item_id, state, images, cost_usd))
        return Settled(changed=True, may_finish=False)

    def tally(self, batch_id: str) -> Tally | None:
        return None  # no summary to write


def services(fal: FalClient | None = None) -> Services:
    return Services(
        limits=EditLimits(max_input_pixels=40_000_000, allow_safety_checker_off=False, memory_mb=1769),
        fal=fal or FakeFal(),
        store=FakeStore(),
        fetcher=ImageFetcher(max_bytes=1024),
        deduplicator=FakeDeduplicator(),
        journal=FakeJournals(),
        catalog=catalog.with_endpoints({}),
    )


def call(request_id: str = "req-a", **values: Any) -> EditCall:
    request = EditRequest.from_values({"prompt": "make it green", **values})
    return EditCall(request, [INPUT], caller="key_1", idempotency_key=None, request_id=request_id,
                    deadline=time.monotonic() + 20)  # fmt: skip


def test_given_an_edit_when_asked_now_then_its_image_is_stored_and_answered_by_url() -> None:
    edits = EditService(services())
    outcome = edits.edit_now(call())
    assert isinstance(outcome, EditOutcome)
    (image,) = outcome.result.images
    assert image.url == f"https://s3.invalid/{image.key}?signed"
    assert open_image(edits.services.store.get(image.key)).size == (256, 256)
    assert not outcome.replayed


def test_given_the_same_edit_again_then_it_is_answered_from_its_record_and_fal_is_paid_once() -> None:
    fal = FakeFal()
    edits = EditService(services(fal))
    first = edits.edit_now(call("req-a"))
    again = edits.edit_now(call("req-b"))  # a client's retry: new request id, same content
    assert isinstance(first, EditOutcome)
    assert isinstance(again, EditOutcome)
    assert again.replayed
    assert again.result == first.result
    assert len(fal.submitted) == 1


def test_given_b64_json_then_the_stored_image_is_embedded_in_the_answer() -> None:
    edits = EditService(services())
    outcome = edits.edit_now(call(response_format="b64_json"))
    assert isinstance(outcome, EditOutcome)
    (image,) = outcome.result.images
    assert image.url is None
    assert image.b64_json


def test_given_a_dry_run_then_nothing_is_paid_or_stored() -> None:
    fal, store = FakeFal(), FakeStore()
    edits = EditService(replace(services(fal), store=store))
    outcome = edits.edit_now(replace(call(), dry_run=True))
    assert isinstance(outcome, Prepared)
    assert outcome.plan.cost_usd == 0.06
    assert fal.submitted == []
    assert store.objects == {}


def test_given_an_attempt_that_died_after_fal_accepted_then_the_retry_collects_it_unpaid() -> None:
    """The journal holds what the dead attempt submitted: the retry collects that request."""
    fal = FakeFal()
    wired = services(fal)
    edits = EditService(wired)
    journals = wired.journal
    assert isinstance(journals, FakeJournals)
    assert isinstance(wired.deduplicator, FakeDeduplicator)
    edits.edit_now(call())
    wired.deduplicator.records.clear()  # as if the first attempt died before its record was kept
    retried = edits.edit_now(call("req-b"))
    assert isinstance(retried, EditOutcome)
    assert not retried.replayed
    assert len(fal.submitted) == 1
    assert fal.collected == ["req-1", "req-1"]
    (journal,) = journals.entries.values()
    assert journal["0"]["submission"]["request_id"] == "req-1"


def batch(fal: FalClient | None = None) -> tuple[BatchRuntime, FakeLedger, FakeStore]:
    wired = services(fal)
    store, ledger = wired.store, FakeLedger()
    assert isinstance(store, FakeStore)
    store.objects[("batch-bucket", "incoming/b1/cat.png")] = INPUT
    runtime = BatchRuntime(
        edits=EditService(wired), store=store, ledger=ledger, queue=WorkQueue("https://sqs.invalid/q"),
        rules=ImageRules("batch-bucket", None), max_receives=3, chunk_lines=1000,
        defaults={}, max_image_bytes=1024 * 1024,
        collecting=Collecting(
            webhook_url="https://api.invalid/v1/fal/webhook", journal=FakeCollectJournal(),
            queue=WorkQueue("https://sqs.invalid/c"), receipts=WebhookReceipts("idem", 86400),
            sweep_after_seconds=180,
        ),
    )  # fmt: skip
    return runtime, ledger, store


def soon() -> float:
    return time.monotonic() + 20


def journal_of(runtime: BatchRuntime) -> FakeCollectJournal:
    journal = runtime.collecting.journal
    assert isinstance(journal, FakeCollectJournal)
    return journal


def webhooks(runtime: BatchRuntime, *, times: int = 1) -> list[str]:
    """fal's webhook for each request awaiting one, and the collect step it queues run, delivered
    ``times`` times: what became of each delivery."""
    awaiting = journal_of(runtime).awaiting
    messages = [
        CollectMessage(request_id=request_id, edit_key=key, call=call, status="OK", received_at=time.time(),
                       work=carried["work"], submission=carried["submission"])
        for request_id, (key, call, carried) in list(awaiting.items())
    ]  # fmt: skip
    # A delivery after the first is SQS's again (the webhook's receipt lets one message through).
    return [
        collect(m, runtime, soon(), last_attempt=False, repeat=again > 0)
        for m in messages
        for again in range(times)
    ]


ITEM = ItemMessage(batch_id="b1", item_id="cat", line=1, image_bucket="batch-bucket",
                   image_key="incoming/b1/cat.png", params={"prompt": "make it green"})  # fmt: skip
RECORD = ("results-bucket", output_key("b1", "items", "cat.json"))


def test_given_a_batch_item_then_its_record_is_written_and_it_is_counted_once() -> None:
    """Given an item delivered again (after the first delivery's time) before fal's webhook came,
    when the webhook comes twice,
    then the second delivery submits nothing, and the item's record is written and counted once."""
    fal = FakeFal()
    runtime, ledger, store = batch(fal)
    first = items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    journal_of(runtime).expire_leases()
    again = items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    assert (first.state, first.submitted, again.state, again.submitted) == ("submitted", 1, "submitted", 0)
    assert ledger.counted == []  # nothing settled before fal said it was done
    assert webhooks(runtime, times=2) == ["succeeded", "already finished"]
    assert ledger.counted == [("cat", "succeeded", 1, 0.06)]
    assert RECORD in store.objects
    assert len(fal.submitted) == 1
    assert fal.collected == ["req-1"]


def test_given_a_batch_item_delivered_once_or_twice_then_its_state_is_never_read_before_its_edit() -> None:
    """Issue 16's finding: the item's state was read (a GetItem) before every edit. An item
    submitted before finds its calls in its edit's journal and submits nothing, without that read."""
    runtime, ledger, _store = batch()
    for _ in range(2):
        items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
        journal_of(runtime).expire_leases()
    webhooks(runtime)
    assert ledger.state_reads == 0


def test_given_a_repeat_after_the_edits_record_expired_then_the_ledger_skips_it_and_fal_is_paid_once() -> (
    None
):
    """As a redrive or a redelivery after the journal's TTL: no journal, but the ledger."""
    fal = FakeFal()
    runtime, ledger, _store = batch(fal)
    items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    webhooks(runtime)
    journal_of(runtime).forget(next(iter(journal_of(runtime).work)))
    repeat = ITEM.model_copy(update={"repeat": True})
    outcome = items.process_item(repeat, runtime, last_attempt=False, deadline=soon())
    assert outcome.state == "skipped"
    assert len(fal.submitted) == 1
    assert ledger.counted == [("cat", "succeeded", 1, 0.06)]


def test_given_a_succeeded_item_when_a_duplicate_fails_then_the_item_is_not_recorded_failed() -> None:
    """A duplicate delivery whose image is no longer an image fails before anything is paid:
    the item that succeeded stays succeeded, its record untouched, even on the last attempt."""
    runtime, ledger, store = batch()
    items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    webhooks(runtime)
    record = store.objects[RECORD]
    store.objects[("batch-bucket", "incoming/b1/cat.png")] = b"no longer an image"
    journal_of(runtime).expire_leases()
    outcome = items.process_item(ITEM, runtime, last_attempt=True, deadline=soon())
    assert (outcome.state, outcome.detail) == ("skipped", "already succeeded")
    assert ledger.counted == [("cat", "succeeded", 1, 0.06)]
    assert store.objects[RECORD] == record


def test_given_a_batch_item_fal_fails_then_sqs_retries_it_until_its_last_attempt_records_it_failed() -> None:
    runtime, ledger, store = batch(FakeFal(failing=2))
    with pytest.raises(items.RetryLater):
        items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    assert ledger.counted == []
    assert RECORD not in store.objects
    journal_of(runtime).expire_leases()
    outcome = items.process_item(ITEM, runtime, last_attempt=True, deadline=soon())
    assert outcome.state == "failed"
    assert ledger.counted == [("cat", "failed", 0, 0.0)]


def test_given_a_delivery_while_another_submits_the_item_then_it_is_never_recorded_failed() -> None:
    """Two deliveries of one item at once: the later never records the item failed."""
    fal = FakeFal()
    runtime, ledger, _store = batch(fal)
    refused: list[BaseException] = []

    def second_delivery() -> None:
        with pytest.raises(items.RetryLater) as raised:
            items.process_item(ITEM, runtime, last_attempt=True, deadline=soon())
        refused.append(raised.value.error)

    fal.meanwhile = second_delivery
    items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    assert [type(error) for error in refused] == [RequestInProgress]
    assert ledger.counted == []
    assert len(fal.submitted) == 1


def test_given_an_item_submitted_when_delivered_again_at_once_then_it_is_not_refused_as_in_progress() -> None:
    """A finding of issue 17's review: the submit lease was held until the attempt's deadline, so
    an S3 Batch Operations retry (or any redelivery) within it was refused as in progress. The
    lease is given back once the submit is done: the redelivery submits nothing, and is not
    refused."""
    fal = FakeFal()
    runtime, _ledger, _store = batch(fal)
    first = items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    again = items.process_item(ITEM, runtime, last_attempt=True, deadline=soon())
    assert (first.state, first.submitted, again.state, again.submitted) == ("submitted", 1, "submitted", 0)
    assert len(fal.submitted) == 1


def test_given_an_item_that_succeeded_when_a_changed_line_of_it_is_delivered_then_fal_is_not_paid_again() -> (
    None
):
    """A finding of issue 17's review: a delivery of an item whose parameters changed since it
    was submitted (same batch and id, another prompt) submitted again, and its images were never
    collected (the call was done already). It is refused before fal: the item stays succeeded."""
    fal = FakeFal()
    runtime, ledger, _store = batch(fal)
    items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    webhooks(runtime)
    changed = ITEM.model_copy(update={"params": {"prompt": "make it blue"}})
    outcome = items.process_item(changed, runtime, last_attempt=True, deadline=soon())
    assert outcome.state == "skipped"
    assert len(fal.submitted) == 1
    assert ledger.counted == [("cat", "succeeded", 1, 0.06)]


def test_given_a_lookup_carrying_more_than_a_queue_message_holds_when_its_webhook_comes_then_its_collect_step_is_queued_without_it() -> (  # noqa: E501
    None
):
    """The review's finding: an item's parameters near SQS's 256 KiB made its collect message too
    big to queue, so its webhook was refused for good and the sweeper stopped at it every minute.
    Such a message goes without what the lookup carries: its collector reads the journal."""
    lookup = SubmittedRequest("req-1", "edit", 0, {"work": {"note": "x" * 250_000}, "submission": {}})
    message = collect_message("req-1", lookup, "OK")
    assert (message.work, message.submission) == (None, None)
    assert len(message_body(message.model_dump(mode="json"))) < 1024


def test_given_a_webhooked_item_then_its_journal_is_kept_as_long_as_fal_may_answer() -> None:
    """The review's finding: a webhooked edit's journal and lookups lived as long as an edit's name
    (an hour), so a request fal ended later (its queue under load) was never collected. They are
    kept as long as fal may still answer (a day)."""
    runtime, _ledger, _store = batch()
    items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    assert list(journal_of(runtime).ttls.values()) == [24 * 3600]


def test_given_a_call_collected_whose_journal_entry_was_never_written_when_the_item_is_delivered_again_then_fal_is_not_paid_again() -> (  # noqa: E501
    None
):
    """The review's finding: a submit that stopped between the lookup's write and the journal's
    left a call its webhook collected, but that the next delivery did not know: it paid fal again."""
    fal = FakeFal()
    runtime, _ledger, _store = batch(fal)
    items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    journal_of(runtime).entries.clear()  # as if the journal's write had been lost
    webhooks(runtime)
    items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    assert len(fal.submitted) == 1


def test_given_a_call_submitted_by_a_version_that_waited_on_fal_when_the_item_is_delivered_again_then_it_is_collected(  # noqa: E501
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The review's finding: an edit journaled by the version before (it waited on fal, so no
    webhook comes for its request) was taken for submitted and left to a webhook that never came.
    Its request is collected now, from its journal entry, and fal is not paid again."""
    fal = FakeFal()
    runtime, ledger, _store = batch(fal)
    items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    journal = journal_of(runtime)
    ((key, entries),) = journal.entries.items()
    entries[0].pop("webhook")  # journaled as the version before journaled it
    journal.awaiting.clear()  # and no webhook is coming
    journal.expire_leases()
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(runtime.collecting.queue, "send", sent.extend)
    items.process_item(ITEM, runtime, last_attempt=False, deadline=soon())
    messages = [CollectMessage.model_validate(message) for message in sent]
    assert [(m.edit_key, m.call, m.status) for m in messages] == [(key, 0, "POLLED")]
    assert [collect(m, runtime, soon(), last_attempt=False) for m in messages] == ["succeeded"]
    assert ledger.counted == [("cat", "succeeded", 1, 0.06)]
    assert len(fal.submitted) == 1
