"""Issue 17, as a user of the gateway sees it: the gateway learns that fal has finished when fal
says so (its status stream), not at the next poll; and fal is asked to keep nothing longer than
the gateway needs it."""

from __future__ import annotations

import json
from pathlib import Path

import openai

from editgate.settings import Settings
from editgate_local.fal_emulator import FalEmulator, Fault

FAL_SECONDS = 1.2  # long enough that a polling client would poll several times


def test_given_fal_takes_seconds_then_the_gateway_learns_it_has_finished_at_once_not_a_poll_later(
    client: openai.OpenAI, emulator: FalEmulator, sample_png: Path
) -> None:
    emulator.latency = FAL_SECONDS
    try:
        with sample_png.open("rb") as image:
            answer = client.images.edit(image=image, prompt="told, not waiting")
    finally:
        emulator.latency = 0.0
    assert answer.data
    # Told by fal's status stream, so no poll interval is waited (bench/overhead.py measures it).
    assert emulator.calls["stream"] == 1
    assert emulator.calls["status"] == 0


def test_given_edits_whose_submits_are_retried_then_fal_is_asked_to_keep_nothing_longer_than_needed(
    client: openai.OpenAI, emulator: FalEmulator, sample_png: Path
) -> None:
    emulator.inject(Fault("submit", status_code=503), Fault("submit", status_code=429))
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=image, prompt="kept briefly", n=6)  # two fal calls
    assert len(answer.data or []) == 6
    assert len(emulator.submit_headers) == 4  # two refused, then one accepted for each call
    for headers in emulator.submit_headers:
        assert headers["x-fal-store-io"] == "0"
        lifecycle = json.loads(headers["x-fal-object-lifecycle-preference"])
        assert lifecycle == {
            "expiration_duration_seconds": Settings.model_fields["provider_retention_seconds"].default
        }
