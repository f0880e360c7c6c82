"""The fal client against the emulator's queue protocol."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from editgate.errors import UpstreamError, UpstreamTimeout
from editgate.fal import FalClient, ProviderRejected
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


def test_given_a_valid_payload_then_images_come_back_and_download(fal: FalEmulator) -> None:
    fal.reset()
    output = client(fal).run(ENDPOINT, payload(num_images=2, seed=3), time.monotonic() + 10)
    assert len(output.images) == 2
    assert output.seed == 3
    assert output.request_id
    assert client(fal).fetch(output.images[0].url, time.monotonic() + 5)[:4] == b"\xff\xd8\xff\xe0"


def test_given_sync_mode_then_data_uris_are_decoded(fal: FalEmulator) -> None:
    output = client(fal).run(ENDPOINT, payload(sync_mode=True, output_format="png"), time.monotonic() + 10)
    assert output.images[0].url.startswith("data:image/png;base64,")
    assert client(fal).fetch(output.images[0].url, time.monotonic() + 5).startswith(b"\x89PNG")


def test_given_a_value_fal_rejects_then_its_422_names_the_provider_field(fal: FalEmulator) -> None:
    with pytest.raises(ProviderRejected) as caught:
        client(fal).run(ENDPOINT, payload(num_inference_steps=60), time.monotonic() + 10)
    assert caught.value.param == "num_inference_steps"
    assert caught.value.status == 400


def test_given_a_wrong_fal_key_then_a_502_that_does_not_show_the_key(fal: FalEmulator) -> None:
    with pytest.raises(UpstreamError) as caught:
        client(fal, key="fal-secret-123").run(ENDPOINT, payload(), time.monotonic() + 10)
    assert caught.value.status == 502
    assert caught.value.code == "upstream_auth_failed"
    assert "fal-secret-123" not in str(caught.value.body())


def test_given_the_deadline_passes_then_the_request_is_cancelled_and_a_504_raised(fal: FalEmulator) -> None:
    fal.reset()
    fal.latency = 5.0
    try:
        with pytest.raises(UpstreamTimeout) as caught:
            client(fal).run(ENDPOINT, payload(), time.monotonic() + 0.3)
    finally:
        fal.latency = 0.0
    assert caught.value.status == 504
    assert fal.calls["cancel"] == 1


def test_given_a_server_error_on_submit_then_a_502(fal: FalEmulator) -> None:
    fal.reset()
    fal.inject(Fault("submit", status_code=500))
    with pytest.raises(UpstreamError) as caught:
        client(fal).run(ENDPOINT, payload(), time.monotonic() + 10)
    assert caught.value.status == 502
