"""The fal client against the emulator's queue protocol."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from editgate.adapters.fal import FalClient, FalOutput, FalSubmission
from editgate.adapters.fal_answers import FalRequestEnded, ProviderRejected, event_data
from editgate.domain.errors import UpstreamError, UpstreamTimeout
from editgate_local.fal_emulator import FalEmulator, Fault
from tests.conftest import png_bytes

ENDPOINT = "fal-ai/hidream-e1-1"


@pytest.fixture(scope="module")
def fal() -> Iterator[FalEmulator]:
    emulator = FalEmulator().start()
    yield emulator
    emulator.stop()


def payload(**extra: object) -> dict[str, object]:
    from editgate.domain.images import to_data_uri

    return {"image_url": to_data_uri(png_bytes((64, 48)), "image/png"), "prompt": "edit", **extra}


def client(fal: FalEmulator, key: str | None = None) -> FalClient:
    return FalClient(fal.url, lambda: key or fal.key, poll_interval=0.01)


def run(fal_client: FalClient, body: dict[str, object], seconds: float = 10) -> FalOutput:
    deadline = time.monotonic() + seconds
    return fal_client.collect(fal_client.submit(ENDPOINT, body, deadline), deadline)


def test_given_a_valid_payload_then_images_come_back_and_download(fal: FalEmulator) -> None:
    fal.reset()
    output = run(client(fal), payload(num_images=2, seed=3))
    assert len(output.images) == 2
    assert output.seed == 3
    assert output.request_id
    assert client(fal).download(output.images[0].url, time.monotonic() + 5)[:4] == b"\xff\xd8\xff\xe0"


def test_given_sync_mode_then_data_uris_are_decoded(fal: FalEmulator) -> None:
    output = run(client(fal), payload(sync_mode=True, output_format="png"))
    assert output.images[0].url.startswith("data:image/png;base64,")
    assert client(fal).download(output.images[0].url, time.monotonic() + 5).startswith(b"\x89PNG")


def test_given_a_value_fal_rejects_then_its_422_names_the_provider_field(fal: FalEmulator) -> None:
    with pytest.raises(ProviderRejected) as caught:
        run(client(fal), payload(num_inference_steps=60))
    assert caught.value.param == "num_inference_steps"
    assert caught.value.status == 400


def test_given_a_wrong_fal_key_then_a_502_that_does_not_show_the_key(fal: FalEmulator) -> None:
    with pytest.raises(UpstreamError) as caught:
        run(client(fal, key="fal-secret-123"), payload())
    assert caught.value.status == 502
    assert caught.value.code == "upstream_auth_failed"
    assert "fal-secret-123" not in str(caught.value.body())


def test_given_the_deadline_passes_then_a_504_and_the_request_is_left_for_a_later_collect(
    fal: FalEmulator,
) -> None:
    fal.reset()
    fal.latency = 1.0
    fal_client = client(fal)
    try:
        submission = fal_client.submit(ENDPOINT, payload(), time.monotonic() + 10)
        with pytest.raises(UpstreamTimeout) as caught:
            fal_client.collect(submission, time.monotonic() + 0.2)
        output = fal_client.collect(submission, time.monotonic() + 10)
    finally:
        fal.latency = 0.0
    assert caught.value.status == 504
    assert fal.calls["cancel"] == 0
    assert fal.calls["submit"] == 1
    assert output.request_id == submission.request_id
    assert output.images


def test_given_a_request_fal_does_not_know_then_collecting_it_says_it_ended(fal: FalEmulator) -> None:
    unknown = FalSubmission(
        request_id="gone",
        status_url=f"{fal.url}/fal-ai/hidream-e1-1/requests/gone/status",
        response_url=f"{fal.url}/fal-ai/hidream-e1-1/requests/gone",
        submitted_at=time.time(),
    )
    with pytest.raises(FalRequestEnded):
        client(fal).collect(unknown, time.monotonic() + 5)


def test_given_a_runner_failure_then_collecting_says_it_ended_so_it_may_be_submitted_anew(
    fal: FalEmulator,
) -> None:
    fal.reset()
    fal.inject(Fault("submit", kind="failed"))
    with pytest.raises(FalRequestEnded) as caught:
        run(client(fal), payload())
    assert caught.value.status == 502


@pytest.mark.parametrize(
    "header",
    [{"retry-after": "soon"}, {"retry-after": "nan"}, {"retry-after-ms": "inf"}, {"retry-after": ""}],
)
def test_given_an_unreadable_retry_after_then_the_backoff_is_used(
    fal: FalEmulator, header: dict[str, str]
) -> None:
    fal.reset()
    fal.inject(Fault("submit", status_code=429, headers=header))
    assert run(client(fal), payload()).images
    assert fal.calls["submit"] == 2


def test_given_a_server_error_on_submit_then_a_502(fal: FalEmulator) -> None:
    fal.reset()
    fal.inject(Fault("submit", status_code=500))
    with pytest.raises(UpstreamError) as caught:
        run(client(fal), payload())
    assert caught.value.status == 502


# --- learning of completion: fal's status stream, and polling when it fails -------------------


def slow_poller(fal: FalEmulator, **options: float) -> FalClient:
    """A client whose polls are 5 s apart: one that polls cannot finish a short edit quickly."""
    return FalClient(fal.url, lambda: fal.key, poll_interval=5.0, **options)  # type: ignore[arg-type]


def test_given_fal_streams_the_status_then_the_client_learns_of_completion_at_once_without_polling(
    fal: FalEmulator,
) -> None:
    fal.reset()
    fal.latency = 0.5
    fal_client = slow_poller(fal)
    try:
        submission = fal_client.submit(ENDPOINT, payload(), time.monotonic() + 10)
        output = fal_client.collect(submission, time.monotonic() + 10)
    finally:
        fal.latency = 0.0
    assert output.images
    assert fal.calls["stream"] == 1
    assert fal.calls["status"] == 0  # told when fal finished: no poll, so no poll interval waited


@pytest.mark.parametrize(
    "broken",
    [
        Fault("stream", kind="drop"),  # its events, then the connection closed before COMPLETED
        Fault("stream", status_code=405),
        Fault("stream", status_code=500),
        Fault("stream", status_code=404, from_runner=True),
        Fault("stream", kind="malformed"),  # JSON, not an event stream
    ],
    ids=["broken mid-way", "refused 405", "refused 500", "refused 404", "not an event stream"],
)
def test_given_the_status_stream_breaks_or_is_refused_then_the_client_polls_and_still_completes(
    fal: FalEmulator, broken: Fault
) -> None:
    fal.reset()
    fal.latency = 0.3
    fal.inject(broken)
    try:
        output = run(client(fal), payload())
    finally:
        fal.latency = 0.0
    assert output.images
    assert fal.calls["stream"] == 1
    assert fal.calls["status"] >= 1
    assert fal.calls["submit"] == 1


def test_given_a_status_stream_that_stays_silent_then_the_client_polls_once_fals_keep_alive_is_overdue(
    fal: FalEmulator,
) -> None:
    fal.reset()
    fal.inject(Fault("stream", kind="slow", delay=3))
    fal_client = FalClient(fal.url, lambda: fal.key, poll_interval=0.01, stream_idle_seconds=0.2)
    output = run(fal_client, payload())
    assert output.images
    assert fal.calls["status"] >= 1  # the stream would have answered after 3 s: it was not waited for


@pytest.mark.parametrize(
    ("fault", "latency", "seconds"),
    [(Fault("stream", kind="slow", delay=6), 0.0, 0.5), (None, 6.0, 2.0)],
    ids=["no answer at all", "silent after its events"],  # the second: IN_QUEUE, IN_PROGRESS at 3 s
)
def test_given_the_status_stream_hangs_then_the_deadline_still_holds_and_a_later_collect_gets_it(
    fal: FalEmulator, fault: Fault | None, latency: float, seconds: float
) -> None:
    fal.reset()
    fal.latency = latency
    fal_client = client(fal)
    try:
        submission = fal_client.submit(ENDPOINT, payload(), time.monotonic() + 10)
        if fault is not None:
            fal.inject(fault)
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout) as caught:
            fal_client.collect(submission, started + seconds)
        waited = time.monotonic() - started
        output = fal_client.collect(submission, time.monotonic() + 10)
    finally:
        fal.latency = 0.0
    # Not a timing target: a client that waited on the stream would wait its full 6 s.
    assert seconds <= waited < seconds + 2.0
    assert caught.value.status == 504
    assert fal.calls["cancel"] == 0
    assert output.request_id == submission.request_id


def test_given_fal_cancels_a_streamed_request_then_the_stream_ends_and_the_result_says_it_ended(
    fal: FalEmulator,
) -> None:
    fal.reset()
    fal.latency = 5.0
    fal_client = slow_poller(fal)
    try:
        submission = fal_client.submit(ENDPOINT, payload(), time.monotonic() + 10)
        cancel_url = submission.status_url.removesuffix("/status") + "/cancel"
        canceller = threading.Timer(
            0.3, requests.put, (cancel_url,), {"headers": {"Authorization": f"Key {fal.key}"}}
        )
        canceller.start()
        started = time.monotonic()
        with pytest.raises(FalRequestEnded):
            fal_client.collect(submission, started + 10)
        waited = time.monotonic() - started
    finally:
        fal.latency = 0.0
    assert waited < 3.0  # not a timing target: a stream that missed the cancel runs its full 5 s
    assert fal.calls["status"] == 0


def test_given_the_emulators_status_stream_then_it_answers_as_fals_does(fal: FalEmulator) -> None:
    fal.reset()
    fal.latency = 0.2
    try:
        submission = client(fal).submit(ENDPOINT, payload(), time.monotonic() + 10)
        stream_url = f"{submission.status_url}/stream"
        auth = {"Authorization": f"Key {fal.key}"}
        events = requests.get(stream_url, headers=auth, timeout=5)
        unknown = requests.get(stream_url.replace(submission.request_id, "unknown"), headers=auth, timeout=5)
        without_key = requests.get(stream_url, timeout=5)
        posted = requests.post(stream_url, headers=auth, timeout=5)
    finally:
        fal.latency = 0.0
    assert events.status_code == 200
    assert events.headers["content-type"] == "text/event-stream"
    statuses = [json.loads(data)["status"] for data in event_data([events.content])]
    assert statuses == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    assert (unknown.status_code, without_key.status_code, posted.status_code) == (404, 401, 405)
    assert fal.calls["stream"] == 3  # the refused method is no call of the protocol


COMPLETED = b'data: {"status": "COMPLETED"}\n\n'


@pytest.mark.parametrize(
    "chunks",
    [
        [b'data: {"status": "IN_QUEUE"}\n\n', b': keep-alive\n\ndata: {"status": "COMPLETED"}\n\n'],
        [
            b'data: {"status": "IN_QUEUE"}\r',
            b"\n\r\n",
            b': keep-alive\r\n\r\ndata: {"status": "COMPLETED"}\r\n\r\n',
        ],
        [b'data:{"status": "IN_QUEUE"}\r\r: ping\r\rdata: {"status":\rdata:  "COMPLETED"}\r\r'],
        [bytes([byte]) for byte in b'event: status\nid: 1\ndata: {"status": "IN_QUEUE"}\n\n' + COMPLETED],
    ],
    ids=[
        "LF",
        "CRLF split across chunks",
        "CR, a field without its space, data on two lines",
        "byte by byte",
    ],
)
def test_given_any_of_the_event_stream_line_endings_then_each_events_data_is_read_whole(
    chunks: list[bytes],
) -> None:
    events = [json.loads(data)["status"] for data in event_data(chunks)]
    assert events == ["IN_QUEUE", "COMPLETED"]


# --- nothing kept at fal longer than needed ---------------------------------------------------


def test_given_retried_submits_then_every_submit_asks_fal_to_keep_no_payload_and_the_files_briefly(
    fal: FalEmulator,
) -> None:
    fal.reset()
    fal.inject(Fault("submit", status_code=503), Fault("submit", status_code=429))
    fal_client = FalClient(fal.url, lambda: fal.key, poll_interval=0.01, retention_seconds=900)
    assert run(fal_client, payload()).images
    assert len(fal.submit_headers) == 3
    for headers in fal.submit_headers:
        assert headers["x-fal-store-io"] == "0"
        assert json.loads(headers["x-fal-object-lifecycle-preference"]) == {
            "expiration_duration_seconds": 900
        }
