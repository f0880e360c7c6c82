"""Every image fal billed is deliverable: an answer missing images for a reason a retry can fix
(a download past the deadline) is not the edit's record, so the same request again collects the
missing images from the journal, at no new fal cost, and answers all of them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from aws_lambda_powertools import Metrics

from editgate_local.fal_emulator import FalEmulator, Fault
from editgate_local.stack import LocalStack
from tests.conftest import sdk_client


def _one_download_stalls(emulator: FalEmulator) -> None:
    """The stack's deadline is 4 s: one download slower than that is not in the first answer."""
    emulator.inject(Fault("file", kind="slow", delay=6, times=1))


@dataclass(frozen=True)
class Answer:
    urls: list[str | None]
    metadata: dict[str, Any]


def _edit(client: openai.OpenAI, image: Path, prompt: str, key: str | None = None) -> Answer:
    headers = {"Idempotency-Key": key} if key else {}
    with image.open("rb") as file:
        answer = client.images.edit(image=file, prompt=prompt, n=5, extra_headers=headers)
    return Answer([d.url for d in answer.data or []], (answer.model_extra or {})["metadata"])


def test_given_n5_and_one_download_stalled_past_the_deadline_then_the_retry_with_the_same_idempotency_key_delivers_the_5th_image_without_a_second_charge(  # noqa: E501
    stack: LocalStack, emulator: FalEmulator, sample_png: Path
) -> None:
    client = sdk_client(f"{stack.base_url}/v1", distinct=False)
    _one_download_stalls(emulator)

    first = _edit(client, sample_png, "partial, keyed", key="partial-answer-keyed")
    submits = emulator.calls["submit"]
    retry = _edit(client, sample_png, "partial, keyed", key="partial-answer-keyed")

    first_meta, retry_meta = first.metadata, retry.metadata
    assert len(first.urls) == 4
    assert first_meta["cost"]["images"] == 5
    assert len(retry.urls) == 5
    assert retry_meta["failures"] == []
    assert retry_meta["replayed"] is False  # collected again, not the stored partial answer
    assert retry_meta["cost"] == {"usd": pytest.approx(0.30), "images": 5}
    assert emulator.calls["submit"] == submits  # nothing submitted, so nothing paid, again
    assert retry_meta["provider_request_ids"] == first_meta["provider_request_ids"]
    # The first answer told the client what a retry would do.
    assert [(f["images"], f["code"], f["retryable"]) for f in first_meta["failures"]] == [
        (1, "upstream_timeout", True)
    ]


def test_given_a_partial_answer_then_the_sdks_retry_of_the_same_content_collects_every_image(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path
) -> None:
    # No Idempotency-Key: the gateway's fingerprint of the content names the edit.
    client = sdk_client(f"{stack.base_url}/v1", distinct=False)
    _one_download_stalls(emulator)

    first = _edit(client, sample_png, "partial, fingerprinted")
    submits = emulator.calls["submit"]
    retry = _edit(client, sample_png, "partial, fingerprinted")
    again = _edit(client, sample_png, "partial, fingerprinted")

    assert len(first.urls) == 4
    assert len(retry.urls) == 5
    assert emulator.calls["submit"] == submits
    # Once every image is delivered the answer is final: a third send is its replay.
    assert again.urls == retry.urls
    assert again.metadata["replayed"] is True


def test_given_a_partial_answer_and_its_retry_then_the_cost_metric_counts_each_billed_image_once(
    stack: LocalStack,
    emulator: FalEmulator,
    sample_png: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    Metrics().clear_metrics()  # the one metric set of the process: drop what earlier tests left
    capfd.readouterr()
    client = sdk_client(f"{stack.base_url}/v1", distinct=False)
    _one_download_stalls(emulator)

    _edit(client, sample_png, "partial, counted", key="partial-answer-metric")
    _edit(client, sample_png, "partial, counted", key="partial-answer-metric")

    emf = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert sum(value for record in emf for value in record.get("CostUSD", [])) == pytest.approx(0.30)
