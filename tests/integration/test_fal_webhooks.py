"""fal's webhook route (``POST /v1/fal/webhook``) as fal and as a forger reach it: through the local
API front (no key: the route is open at API Gateway), the fal emulator signing with its own Ed25519
key and serving its JWKS. "Accepted" is what a user of the gateway would feel: a collect step on
the collect queue. Every forgery is answered with an OpenAI-shaped 4xx and queues nothing."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from editgate.adapters.fal import FalClient
from editgate.adapters.fal_jwks import FalSigningKeys
from editgate.adapters.journal import SubmissionJournal
from editgate.adapters.queue import WorkQueue
from editgate_local.fal_emulator import FalEmulator, Fault
from editgate_local.fal_webhooks import WebhookSigner, webhook_body
from editgate_local.stack import FAL_WEBHOOK_PATH, IDEMPOTENCY_TABLE, LocalStack
from tests.conftest import png_bytes

RESULT = {"images": [{"url": "https://v3.fal.media/files/x.png", "width": 64, "height": 48}], "seed": 7}
Delivery = tuple[dict[str, str], bytes]


@pytest.fixture
def collect_queue(stack: LocalStack, emulator: FalEmulator) -> Iterator[WorkQueue]:
    """The collect queue, empty before and after the test."""
    queue = WorkQueue(stack.collect_queue_url)
    list(queue.drain(queue.url))
    yield queue
    list(queue.drain(queue.url))


def queued(queue: WorkQueue) -> list[dict[str, Any]]:
    return list(queue.drain(queue.url))


def journaled(edit_key: str | None = None) -> str:
    """A fal request id the gateway's journal holds, as a submit journals it."""
    request_id = str(uuid.uuid4())
    journal = SubmissionJournal(IDEMPOTENCY_TABLE).open(edit_key or f"edit-{uuid.uuid4().hex}", 600)
    journal.record(0, {"payload": "digest", "submission": {"request_id": request_id}}, collected_with={})
    return request_id


def genuine(emulator: FalEmulator, request_id: str, **stamp: Any) -> Delivery:
    """fal's delivery about ``request_id``, signed with the emulator's key (the JWKS the route trusts)."""
    body = webhook_body(request_id, 200, RESULT)
    return emulator.webhooks.signer.headers(request_id, body, **stamp), body


def post(stack: LocalStack, delivery: Delivery) -> requests.Response:
    headers, body = delivery
    return requests.post(
        f"{stack.base_url}{FAL_WEBHOOK_PATH}",
        data=body,
        headers={**headers, "Content-Type": "application/json"},
        timeout=30,
    )


def assert_refused(answer: requests.Response, status: int = 401) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


def _with(headers: dict[str, str], **changes: str) -> dict[str, str]:
    names = {"signature": "X-Fal-Webhook-Signature", "timestamp": "X-Fal-Webhook-Timestamp",
             "request_id": "X-Fal-Webhook-Request-Id", "user_id": "X-Fal-Webhook-User-Id"}  # fmt: skip
    return {**headers, **{names[name]: value for name, value in changes.items()}}


def _without(name: str) -> Callable[[FalEmulator, str], Delivery]:
    def forge(emulator: FalEmulator, request_id: str) -> Delivery:
        headers, body = genuine(emulator, request_id)
        return {k: v for k, v in headers.items() if k != name}, body

    return forge


def _signed_body(emulator: FalEmulator, request_id: str, body: bytes) -> Delivery:
    return emulator.webhooks.signer.headers(request_id, body), body


def _other_body(emulator: FalEmulator, request_id: str) -> Delivery:
    headers, body = genuine(emulator, request_id)
    other_headers, _ = _signed_body(emulator, request_id, webhook_body(request_id, 500, {"detail": "x"}))
    return _with(headers, signature=other_headers["X-Fal-Webhook-Signature"]), body


def _named_elsewhere(emulator: FalEmulator, request_id: str) -> Delivery:
    other = journaled()
    return _signed_body(emulator, request_id, webhook_body(other, 200, RESULT))


# Each forgery made from a request id the gateway did submit (journaled), and what it is answered.
FORGERIES: dict[str, tuple[Callable[[FalEmulator, str], Delivery], int]] = {
    "bad_signature": (lambda e, r: (_with(genuine(e, r)[0], signature="ab" * 64), genuine(e, r)[1]), 401),
    "signed_by_another_key": (lambda e, r: (WebhookSigner().headers(r, genuine(e, r)[1]), genuine(e, r)[1]), 401),
    "stale_timestamp": (lambda e, r: genuine(e, r, timestamp=int(time.time()) - 301), 401),
    "future_timestamp": (lambda e, r: genuine(e, r, timestamp=int(time.time()) + 301), 401),
    "body_altered": (lambda e, r: (genuine(e, r)[0], genuine(e, r)[1].replace(b'"OK"', b'"ERROR"')), 401),
    "signature_of_another_body": (_other_body, 401),
    "truncated_signature": (lambda e, r: (_with(genuine(e, r)[0], signature=genuine(e, r)[0]["X-Fal-Webhook-Signature"][:-2]), genuine(e, r)[1]), 401),
    "signature_not_hex": (lambda e, r: (_with(genuine(e, r)[0], signature="zz" * 64), genuine(e, r)[1]), 401),
    "timestamp_changed_after_signing": (lambda e, r: (_with(genuine(e, r, timestamp=int(time.time()) - 400)[0], timestamp=str(int(time.time()))), genuine(e, r)[1]), 401),
    "user_id_changed_after_signing": (lambda e, r: (_with(genuine(e, r)[0], user_id="someone-else"), genuine(e, r)[1]), 401),
    "request_id_header_changed_after_signing": (lambda e, r: (_with(genuine(e, r)[0], request_id=journaled()), genuine(e, r)[1]), 401),
    "body_names_another_request_than_the_headers": (_named_elsewhere, 401),
    "unknown_request_id": (lambda e, r: genuine(e, str(uuid.uuid4())), 401),
    "malformed_json": (lambda e, r: _signed_body(e, r, b'{"request_id": "' + r.encode() + b'", "status": "OK"'), 400),
    "not_fals_shape": (lambda e, r: _signed_body(e, r, json.dumps({"request_id": r, "status": "DONE"}).encode()), 400),
    "missing_signature_header": (_without("X-Fal-Webhook-Signature"), 401),
    "missing_timestamp_header": (_without("X-Fal-Webhook-Timestamp"), 401),
    "missing_request_id_header": (_without("X-Fal-Webhook-Request-Id"), 401),
    "missing_user_id_header": (_without("X-Fal-Webhook-User-Id"), 401),
    "no_headers_at_all": (lambda e, r: ({}, genuine(e, r)[1]), 401),
}  # fmt: skip


@pytest.mark.parametrize("forgery", FORGERIES)
def test_given_a_forged_fal_webhook_when_posted_then_it_is_refused_and_nothing_is_queued(
    stack: LocalStack, emulator: FalEmulator, collect_queue: WorkQueue, forgery: str
) -> None:
    """Given a request the gateway submitted, when a forger posts a webhook about it (or about
    one it did not submit), then the answer is an OpenAI-shaped 4xx and no collect step is queued."""
    forge, status = FORGERIES[forgery]
    request_id = journaled()

    answer = post(stack, forge(emulator, request_id))

    assert_refused(answer, status)
    assert queued(collect_queue) == []
    # The genuine delivery is still taken afterwards: a forgery spends nothing of it.
    assert post(stack, genuine(emulator, request_id)).status_code == 200
    assert [m["request_id"] for m in queued(collect_queue)] == [request_id]


def test_given_a_genuine_webhook_when_it_is_replayed_then_the_replay_is_answered_but_not_queued_again(
    stack: LocalStack, emulator: FalEmulator, collect_queue: WorkQueue
) -> None:
    """Given fal's genuine delivery, taken, when the same bytes come again within 300 s (fal's
    retry, or a replay), then 200 (fal stops retrying) and still one collect step."""
    edit_key = f"edit-{uuid.uuid4().hex}"
    request_id = journaled(edit_key)
    delivery = genuine(emulator, request_id)

    first, again = post(stack, delivery), post(stack, delivery)

    assert (first.status_code, first.json()["duplicate"]) == (200, False)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    [message] = queued(collect_queue)
    assert message["kind"] == "collect"
    assert (message["request_id"], message["edit_key"], message["call"], message["status"]) == (
        request_id,
        edit_key,
        0,
        "OK",
    )


@pytest.fixture
def fal_takes_a_second(emulator: FalEmulator) -> Iterator[None]:
    """fal runs each request a second: the gateway journals it long before the webhook comes (one
    that came first would be refused as unknown, and fal would deliver it again)."""
    emulator.latency = 1.0
    yield
    emulator.latency = 0.0


def submit_with_webhook(stack: LocalStack, emulator: FalEmulator, edit_key: str) -> str:
    """A fal request submitted as the gateway does it, with the webhook route as ``fal_webhook``,
    then journaled as the gateway journals it."""
    fal = FalClient(emulator.url, lambda: emulator.key, retention_seconds=600)
    image = "data:image/png;base64," + base64.b64encode(png_bytes((64, 48))).decode()
    submission = fal.submit(
        "fal-ai/hidream-e1-1",
        {"image_url": image, "prompt": "add snow"},
        time.monotonic() + 10,
        webhook_url=f"{stack.base_url}{FAL_WEBHOOK_PATH}",
    )
    journal = SubmissionJournal(IDEMPOTENCY_TABLE).open(edit_key, 600)
    journal.record(
        0, {"payload": "digest", "submission": submission.model_dump(mode="json")}, collected_with={}
    )
    return submission.request_id


def collected(queue: WorkQueue, emulator: FalEmulator, deliveries: int) -> list[dict[str, Any]]:
    """The collect steps queued once the emulator has made ``deliveries`` answered deliveries."""
    end = time.monotonic() + 20
    while time.monotonic() < end:
        answered = [d for d in emulator.webhooks.deliveries if d.status is not None and d.status < 300]
        if len(answered) >= deliveries:
            return queued(queue)
        time.sleep(0.05)
    raise AssertionError(f"the emulator made these deliveries only: {emulator.webhooks.deliveries}")


def test_given_a_submit_with_fal_webhook_when_the_request_ends_then_the_signed_webhook_is_taken_once(
    stack: LocalStack, emulator: FalEmulator, collect_queue: WorkQueue, fal_takes_a_second: None
) -> None:
    """Given a submit with ``?fal_webhook=`` the route and every webhook duplicated by the
    emulator, when the request ends, then both deliveries are answered 200 and one collect step
    names the request and the edit that submitted it."""
    emulator.webhook_faults(duplicate=1.0)
    edit_key = f"edit-{uuid.uuid4().hex}"

    request_id = submit_with_webhook(stack, emulator, edit_key)

    [message] = collected(collect_queue, emulator, deliveries=2)
    assert (message["request_id"], message["edit_key"], message["status"]) == (request_id, edit_key, "OK")
    assert [(d.request_id, d.status) for d in emulator.webhooks.deliveries] == [(request_id, 200)] * 2
    assert emulator.submit_headers[-1]  # the submit reached the emulator with its query
    assert queued(collect_queue) == []


def test_given_a_corrupted_delivery_when_fal_delivers_again_then_the_genuine_one_is_taken(
    stack: LocalStack, emulator: FalEmulator, collect_queue: WorkQueue, fal_takes_a_second: None
) -> None:
    """Given the emulator alters its first delivery's body after signing, when it retries (as fal
    does on a non-2xx), then the altered one is refused and the genuine one queued once."""
    emulator.inject(Fault("webhook", kind="corrupt"))

    request_id = submit_with_webhook(stack, emulator, f"edit-{uuid.uuid4().hex}")

    [message] = collected(collect_queue, emulator, deliveries=1)
    assert message["request_id"] == request_id
    assert [d.status for d in emulator.webhooks.deliveries] == [401, 200]


def test_given_fals_keys_when_read_many_times_then_the_jwks_is_fetched_once_a_day_and_anew_once_a_minute(
    emulator: FalEmulator,
) -> None:
    """Given a fresh key cache, when the keys are asked for ten times and a read anew ten times
    (ten deliveries no kept key verified) within the minute after the first read, then the
    emulator served its JWKS once; a cache whose refetch interval has passed reads it anew."""
    keys = FalSigningKeys(emulator.jwks_url)

    current = [len(keys.current()) for _ in range(10)]
    refetched = [keys.refreshed() for _ in range(10)]

    assert current == [1] * 10
    assert refetched == [None] * 10
    assert emulator.calls["jwks"] == 1
    ready_to_refetch = FalSigningKeys(emulator.jwks_url, refresh_seconds=0)
    assert len(ready_to_refetch.current()) == 1
    assert len(ready_to_refetch.refreshed() or []) == 1
    assert emulator.calls["jwks"] == 3


def test_given_the_webhook_route_when_many_deliveries_come_then_the_jwks_is_not_read_for_each(
    stack: LocalStack, emulator: FalEmulator, collect_queue: WorkQueue
) -> None:
    """Given the route has read fal's keys, when ten genuine deliveries come, then the JWKS is
    read at most once more (the kept keys verify them all)."""
    post(stack, genuine(emulator, journaled()))
    emulator.calls.clear()

    answers = [post(stack, genuine(emulator, journaled())).status_code for _ in range(10)]

    assert answers == [200] * 10
    assert emulator.calls["jwks"] == 0
    assert len(queued(collect_queue)) == 11
