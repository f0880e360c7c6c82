"""Resilience as a client sees it: transient fal faults absorbed, retries that are not second
charges, size limits named before paying, no secrets in logs, and metrics that tell the story."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from aws_lambda_powertools import Metrics

from editgate_local.fal_emulator import FalEmulator, Fault
from editgate_local.stack import LocalStack
from tests.conftest import API_KEY, ApiKey, post_edit, sdk_client


def test_given_20_percent_transient_faults_then_200_sdk_edits_nearly_all_succeed(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path
) -> None:
    emulator.random_faults(0.2, seed=2026)
    # The SDK as users run it: its own retries on, no per-request key (the gateway's fingerprint
    # makes a retried edit a replay, not a second charge).
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=API_KEY)
    image = sample_png.read_bytes()

    def one(index: int) -> str:
        try:
            answer = client.images.edit(image=("s.png", image), prompt=f"transient faults {index}")
        except openai.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            shaped = set(body) == {"message", "type", "param", "code"} or set(body.get("error", {})) == {
                "message", "type", "param", "code",
            }  # fmt: skip
            return f"error {exc.status_code} {exc.code}" if shaped else "not-openai-shaped"
        except openai.APIConnectionError:
            return "not-openai-shaped"
        return "ok" if answer.data and answer.data[0].url else "not-openai-shaped"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(one, range(200)))

    faults_hit = sum(emulator.calls.values())
    errors = sorted(o for o in outcomes if o.startswith("error"))
    print(f"200 edits under 20% faults: {outcomes.count('ok')} ok, errors {errors}, {faults_hit} fal calls")
    assert outcomes.count("not-openai-shaped") == 0
    assert outcomes.count("ok") >= 198  # >= 99 %


def test_given_the_same_idempotency_key_then_one_fal_call_and_the_same_urls(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path
) -> None:
    client = sdk_client(f"{stack.base_url}/v1", distinct=False)
    headers = {"Idempotency-Key": "order-1234-hero-image"}
    answers = []
    for _ in range(2):
        with sample_png.open("rb") as image:
            raw = client.images.with_raw_response.edit(
                image=image, prompt="keyed edit", n=2, extra_headers=headers
            )
            answers.append((raw.parse(), raw.headers["x-request-id"]))

    (first, first_id), (second, second_id) = answers
    assert emulator.calls["submit"] == 1
    assert [d.url for d in first.data or []] == [d.url for d in second.data or []]
    assert first_id != second_id
    assert (second.model_extra or {})["metadata"]["replayed"] is True
    assert (second.model_extra or {})["metadata"]["request_id"] == first_id


def test_given_an_idempotency_key_reused_for_another_request_then_409_not_retryable(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path
) -> None:
    keyed = ApiKey()
    headers = {"Idempotency-Key": "reused-key"}
    first = post_edit(stack.base_url, sample_png.read_bytes(), "first body", auth=keyed, headers=headers)
    second = post_edit(stack.base_url, sample_png.read_bytes(), "second body", auth=keyed, headers=headers)
    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_key_reused"
    assert second.headers["x-should-retry"] == "false"
    assert emulator.calls["submit"] == 1


def test_given_an_sdk_retry_without_a_key_then_the_fingerprint_replays_the_first_answer(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path
) -> None:
    client = sdk_client(f"{stack.base_url}/v1", distinct=False)
    urls = []
    for _ in range(
        2
    ):  # what an SDK retry after a lost answer sends: the same content, a new multipart boundary
        with sample_png.open("rb") as image:
            answer = client.images.edit(image=image, prompt="fingerprinted edit")
        urls.append(answer.data[0].url if answer.data else None)
    assert emulator.calls["submit"] == 1
    assert urls[0] == urls[1]


def test_given_the_same_request_in_flight_then_409_in_progress_with_retry_after(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path
) -> None:
    emulator.latency = 1.5
    image, headers = sample_png.read_bytes(), {"Idempotency-Key": "in-flight"}
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            first = pool.submit(post_edit, stack.base_url, image, "slow edit", headers=headers)
            while emulator.calls["submit"] == 0 and not first.done():
                threading.Event().wait(0.01)  # until the first request has reached fal: in flight
            second = post_edit(stack.base_url, image, "slow edit", headers=headers)
            first_answer = first.result()
        finally:
            emulator.latency = 0.0
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "request_in_progress"
    assert second.headers["x-should-retry"] == "true"
    assert int(second.headers["retry-after"]) >= 1
    assert first_answer.status_code == 200


def test_given_a_b64_answer_that_cannot_fit_6_mb_then_400_before_fal(
    client: openai.OpenAI, emulator: FalEmulator, sample_png: Path
) -> None:
    with sample_png.open("rb") as image, pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(image=image, prompt="big", n=4, size="1024x1024", response_format="b64_json")
    assert caught.value.code == "response_too_large"
    assert caught.value.param == "response_format"
    assert "6,291,456" in caught.value.message
    assert emulator.calls["submit"] == 0


def test_given_an_upload_over_lambdas_6_mb_then_413_naming_the_limit(
    stack: LocalStack, emulator: FalEmulator
) -> None:
    response = post_edit(stack.base_url, b"\x89PNG" + b"0" * 5_000_000, "too big")
    assert response.status_code == 413
    assert "6,291,456" in response.json()["error"]["message"]
    assert emulator.calls["submit"] == 0


@pytest.fixture
def service_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """The function's own log lines at DEBUG, formatted as Lambda would print them, and every
    other logger at INFO (in caplog)."""
    caplog.set_level(logging.INFO)
    service = logging.getLogger("editgate")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(service.handlers[0].formatter)
    # Powertools' child loggers (editgate.editgate.fal, …) carry levels of their own, and are
    # named after the service set when their module was first imported.
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if "editgate" in n]
    levels = [logger.level for logger in loggers]
    service.addHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield buffer
    service.removeHandler(handler)
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def test_given_any_outcome_then_no_key_is_ever_logged_or_answered(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path, service_logs: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    secrets_ = [API_KEY, "sk-second", emulator.key]
    image = sample_png.read_bytes()
    answers = [
        post_edit(stack.base_url, image, "ok"),
        post_edit(stack.base_url, image, "wrong key", auth=ApiKey("sk-second-x")),
    ]
    emulator.inject(Fault("submit", status_code=401))
    answers.append(post_edit(stack.base_url, image, "fal refuses the key"))
    answers.append(post_edit(stack.base_url, image, "bad", fields={"n": "99"}))

    logs = service_logs.getvalue() + caplog.text
    assert [a.status_code for a in answers] == [200, 401, 502, 400]
    assert "fal request submitted" in logs  # the logs are there, and verbose
    assert '"correlation_id"' in logs
    for secret in secrets_:
        assert secret not in logs
        assert all(secret not in a.text and secret not in str(a.headers) for a in answers)


def test_given_an_edit_then_metrics_record_images_cost_latencies_and_retries(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    Metrics().clear_metrics()  # the one metric set of the process: drop what earlier tests left
    emulator.inject(Fault("submit", status_code=503))
    events = json.loads((Path(__file__).parents[2] / "events/edit_api/edit.json").read_text())
    events["multiValueHeaders"]["Idempotency-Key"] = events["headers"]["Idempotency-Key"] = "metrics-test"
    assert stack.front is not None
    answer = stack.front.call(events)
    assert answer["statusCode"] == 200
    emf = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    names = {m["Name"] for record in emf for d in record["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"Requests", "ImagesEdited", "CostUSD", "FalLatency", "GatewayLatency", "FalRetries"} <= names
    values = {
        k: v for record in emf for k, v in record.items() if k in ("FalRetries", "ImagesEdited", "CostUSD")
    }
    assert values["FalRetries"] == [1.0]
    assert values["ImagesEdited"] == [1.0]
    assert values["CostUSD"] == [0.06]


def test_given_a_504_after_fal_accepted_the_edit_then_the_sdks_own_retry_collects_the_same_request(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path
) -> None:
    # fal takes longer than the stack's 4 s deadline: the first attempt answers 504 after the
    # submit; the SDK, as users run it (its retries on, no Idempotency-Key), tries again.
    emulator.latency = 5.0
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=API_KEY, max_retries=2)
    try:
        with sample_png.open("rb") as image:
            answer = client.images.edit(image=image, prompt="resumed after a 504")
    finally:
        emulator.latency = 0.0
    assert answer.data
    assert answer.data[0].url
    assert emulator.calls["submit"] == 1
    assert emulator.calls["cancel"] == 0
    assert len(emulator.payloads) == 1
    assert (answer.model_extra or {})["metadata"]["provider_request_ids"] == [emulator.request_ids[0]]


def test_given_downloads_that_end_past_the_deadline_then_every_billed_image_is_in_the_cost(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    # Four of the eight downloads take longer than the stack's 4 s deadline: fal made (and
    # bills) all eight, and the answer says so even though it carries four.
    emulator.inject(Fault("file", kind="slow", delay=6, times=4))
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=image, prompt="x", n=8)
    metadata = (answer.model_extra or {})["metadata"]
    assert len(answer.data or []) == 4
    assert metadata["cost"] == {"usd": pytest.approx(0.48), "images": 8}
    assert sum(f["images"] for f in metadata["failures"]) == 4
    assert emulator.calls["submit"] == 2
