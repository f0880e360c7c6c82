"""How each fal failure reaches the client: status, error code and param, how many fal calls
were made, and that no fal request is cancelled (a retry collects it). Against the emulator's
scripted faults."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from editgate_local.fal_emulator import FalEmulator, Fault
from editgate_local.stack import LocalStack
from tests.conftest import post_edit

INGRESS_502 = Fault("submit", status_code=502)


def no_stream() -> Fault:
    """fal refuses the status stream: the client polls (a new fault each time: faults are used up)."""
    return Fault("stream", status_code=405)


SCHEMA_422 = {"detail": [{"loc": ["body", "guidance_scale"], "msg": "Input should be less than or equal to 20",
                          "type": "less_than_equal", "ctx": {"le": 20}, "input": 25}]}  # fmt: skip


@dataclass
class Scenario:
    name: str
    faults: list[Fault]
    status: int
    code: str | None = None
    param: str | None = None
    calls: dict[str, int] = field(default_factory=dict)  # exact count per protocol stage
    form: dict[str, str] = field(default_factory=dict)
    latency: float = 0.0
    images: int | None = None  # for a 200: how many images come back
    retry_after: bool = False  # whether the answer carries retry-after

    def __str__(self) -> str:
        return self.name


SCENARIOS = [
    Scenario("clean run", [], 200, calls={"submit": 1, "stream": 1, "status": 0, "result": 1, "file": 1}, images=1),
    Scenario("ingress 502 on submit is retried", [INGRESS_502], 200, calls={"submit": 2, "result": 1}, images=1),
    Scenario("ingress 503 twice on submit is retried", [Fault("submit", status_code=503, times=2)], 200,
             calls={"submit": 3}),
    Scenario("queue 429 on submit is retried", [Fault("submit", status_code=429)], 200, calls={"submit": 2}),
    Scenario("408 and 409 on submit are retried",
             [Fault("submit", status_code=408), Fault("submit", status_code=409)], 200, calls={"submit": 3}),
    Scenario("queue 429 that never ends is a 429 with retry-after", [Fault("submit", status_code=429, times=99, headers={"retry-after-ms": "20"})],
             429, "rate_limit_exceeded", calls={"submit": 10, "result": 0}, retry_after=True),
    Scenario("a runner's 502 on submit is not retried", [Fault("submit", status_code=502, from_runner=True)], 502,
             "upstream_error", calls={"submit": 1}),
    Scenario("fal's own start deadline is not retried",
             [Fault("submit", status_code=504, headers={"X-Fal-Request-Timeout-Type": "user"})], 504,
             "upstream_timeout", calls={"submit": 1}, retry_after=True),
    Scenario("401 from fal is a 502 that blames the gateway's key", [Fault("submit", status_code=401)], 502,
             "upstream_auth_failed", calls={"submit": 1}),
    Scenario("403 from fal likewise", [Fault("submit", status_code=403)], 502, "upstream_auth_failed",
             calls={"submit": 1}),
    Scenario("fal's 422 on submit names the client's parameter",
             [Fault("submit", status_code=422, body=SCHEMA_422, from_runner=True)], 400, "invalid_value", "cfg_scale",
             calls={"submit": 1}),
    Scenario("a dropped submit is not sent again (it may have reached fal)", [Fault("submit", kind="drop")], 502,
             "upstream_error", calls={"submit": 1}),
    Scenario("400 from fal is our fault, not retried", [Fault("submit", status_code=400, from_runner=True)], 502,
             "upstream_error", calls={"submit": 1}),
    Scenario("a status stream broken mid-way: the client polls", [Fault("stream", kind="drop")], 200,
             calls={"submit": 1, "stream": 1, "status": 1, "result": 1}, images=1),
    Scenario("a status stream refused (405): the client polls", [no_stream()], 200,
             calls={"stream": 1, "status": 1, "result": 1}),
    Scenario("a status stream refused (503): the client polls", [Fault("stream", status_code=503)], 200,
             calls={"stream": 1, "status": 1, "result": 1}),
    Scenario("a status stream that is not an event stream: the client polls", [Fault("stream", kind="malformed")],
             200, calls={"stream": 1, "status": 1, "result": 1}),
    Scenario("a status stream that hangs past the deadline: a 504; the request goes on for the retry",
             [Fault("stream", kind="slow", delay=6)], 504, "upstream_timeout", calls={"submit": 1, "result": 0},
             retry_after=True),
    Scenario("a status poll's 500 is retried", [no_stream(), Fault("status", status_code=500)], 200,
             calls={"submit": 1, "status": 2, "result": 1}),
    Scenario("a dropped status poll is retried", [no_stream(), Fault("status", kind="drop")], 200,
             calls={"submit": 1, "status": 2}),
    Scenario("ingress 503 on status polls is retried", [no_stream(), Fault("status", status_code=503, times=3)],
             200, calls={"submit": 1, "status": 4}),
    Scenario("a slow status poll still completes", [no_stream(), Fault("status", kind="slow", delay=0.5)], 200,
             calls={"submit": 1, "result": 1}),
    Scenario("malformed JSON from a status poll is a 502; the request is kept for the retry",
             [no_stream(), Fault("status", kind="malformed")], 502, "upstream_error",
             calls={"submit": 1, "result": 0}),
    Scenario("an ingress 502 on the result is retried", [Fault("result", status_code=502)], 200,
             calls={"result": 2}),
    Scenario("a dropped result is retried", [Fault("result", kind="drop")], 200, calls={"result": 2}),
    Scenario("COMPLETED with an error is the result's 500: a 502", [Fault("submit", kind="failed")], 502,
             "upstream_error", calls={"submit": 1, "result": 1}),
    Scenario("fal's 422 on the result names the client's parameter",
             [Fault("result", status_code=422, body=SCHEMA_422, from_runner=True)], 400, "invalid_value", "cfg_scale",
             calls={"result": 1}),
    Scenario("malformed JSON as the result is a 502", [Fault("result", kind="malformed")], 502, "upstream_error",
             calls={"result": 1}),
    Scenario("a flagged image is a content policy violation", [Fault("result", kind="nsfw")], 400,
             "content_policy_violation", "prompt", calls={"submit": 1, "result": 1}),
    Scenario("an ingress 503 on the image download is retried", [Fault("file", status_code=503)], 200,
             calls={"file": 2}, images=1),
    Scenario("a dropped image download is retried", [Fault("file", kind="drop")], 200, calls={"file": 2}),
    Scenario("a missing result image is a 502", [Fault("file", status_code=404)], 502, "upstream_error",
             calls={"file": 1}),
    Scenario("past the deadline: a 504 with retry-after; the request goes on for the retry", [], 504,
             "upstream_timeout", calls={"submit": 1, "result": 0}, latency=30.0, retry_after=True),
    Scenario("n=6, one call fails: the other's images come back", [Fault("submit", status_code=400, from_runner=True)], 200,
             form={"n": "6"}, calls={"submit": 2}),
    Scenario("n=6, both calls fail: the error", [Fault("submit", status_code=400, times=2, from_runner=True)], 502,
             "upstream_error", form={"n": "6"}, calls={"submit": 2}),
    Scenario("n=6, one call flagged: the rest come back", [Fault("result", kind="nsfw")], 200, form={"n": "6"},
             calls={"submit": 2, "result": 2}),
]  # fmt: skip


@pytest.fixture
def faulty(emulator: FalEmulator) -> Iterator[FalEmulator]:
    yield emulator
    emulator.latency = 0.0


def test_the_matrix_has_at_least_20_scenarios() -> None:
    assert len(SCENARIOS) >= 20


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_given_a_fal_fault_then_the_client_gets_exactly_the_expected_answer(
    stack: LocalStack, faulty: FalEmulator, sample_png: Path, scenario: Scenario
) -> None:
    faulty.inject(*scenario.faults)
    faulty.latency = scenario.latency
    response = post_edit(
        stack.base_url, sample_png.read_bytes(), f"fault matrix: {scenario.name}", fields=scenario.form
    )

    assert response.status_code == scenario.status, response.text
    assert response.headers["x-request-id"]
    body = response.json()
    if scenario.status == 200:
        data = body["data"]
        if scenario.images is not None:
            assert len(data) == scenario.images
        failures = body["metadata"]["failures"]
        if scenario.form.get("n") == "6":
            assert 0 < len(data) < 6
            assert len(data) + sum(f["images"] for f in failures) == 6
        else:
            assert failures == []
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["code"] == scenario.code
        assert body["error"]["param"] == scenario.param
        assert response.headers["x-should-retry"] in ("true", "false")
        assert ("retry-after" in response.headers) == scenario.retry_after
        assert faulty.key not in response.text
    for stage, count in scenario.calls.items():
        assert faulty.calls[stage] == count, (stage, dict(faulty.calls))
    assert faulty.calls["cancel"] == 0, dict(faulty.calls)


def test_given_fal_refuses_the_key_then_the_client_is_told_not_to_retry(
    stack: LocalStack, faulty: FalEmulator, sample_png: Path
) -> None:
    faulty.inject(Fault("submit", status_code=401))
    response = post_edit(stack.base_url, sample_png.read_bytes(), "key check")
    assert response.status_code == 502
    assert response.headers["x-should-retry"] == "false"


def test_given_faults_over_the_control_endpoint_then_they_apply(
    stack: LocalStack, faulty: FalEmulator, sample_png: Path
) -> None:
    control = requests.post(
        f"{faulty.url}/_emulator/faults", json=[{"stage": "submit", "status_code": 503}], timeout=5
    )
    assert control.status_code == 200
    response = post_edit(stack.base_url, sample_png.read_bytes(), "control endpoint")
    assert response.status_code == 200
    assert faulty.calls["submit"] == 2
