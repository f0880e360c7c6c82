"""The fal client against the emulator's queue protocol."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from editgate.errors import UpstreamError, UpstreamTimeout
from editgate.fal import FalClient, FalOutput, FalRequestEnded, FalSubmission, ProviderRejected
from editgate_local.fal_emulator import FalEmulator, Fault
from tests.conftest import png_bytes

ENDPOINT = "fal-ai/hidream-e1-1"


@pytest.fixture(scope="module")
def fal() -> Iterator[FalEmulator]:
    emulator = FalEmulator().start()
    yield emulator
    emulator.stop()


def payload(**extra: object) -> dict[str, object]:
    from editgate.images import to_data_uri

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
    assert client(fal).fetch(output.images[0].url, time.monotonic() + 5)[:4] == b"\xff\xd8\xff\xe0"


def test_given_sync_mode_then_data_uris_are_decoded(fal: FalEmulator) -> None:
    output = run(client(fal), payload(sync_mode=True, output_format="png"))
    assert output.images[0].url.startswith("data:image/png;base64,")
    assert client(fal).fetch(output.images[0].url, time.monotonic() + 5).startswith(b"\x89PNG")


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
