"""Shared fixtures: one embedded local stack (moto server, fal emulator, API front) per session."""

from __future__ import annotations

import os

# As in Lambda, the service name is set before any module makes its logger: a core module first
# imported by a unit test would otherwise log as "service_undefined" for the whole session.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "editgate")

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from PIL import Image

from editgate.adapters.queue import WorkQueue
from editgate.settings import Settings
from editgate_local.events import seed_batch_objects
from editgate_local.fal_emulator import FalEmulator
from editgate_local.front import UsagePlan
from editgate_local.sample import SAMPLE_IMAGE
from editgate_local.stack import LocalStack

API_KEY = "sk-local"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    # environ={}: a developer's own FAL_KEY must never send test traffic to real fal.
    # A short deadline and retry base keep timeouts and retry exhaustion quick to test.
    fast = {"REQUEST_DEADLINE_SECONDS": "4", "FAL_RETRY_BASE_SECONDS": "0.01",
            # Jobs are admitted with the batch function's longest timeout (the template allows 900 s;
            # tests/integration/test_jobs.py gives its batch function as long), and their callbacks
            # retried after 1 s, not 30.
            "JOBS_RUN_TIMEOUT_SECONDS": "900", "CALLBACK_RETRY_SECONDS": "1"}  # fmt: skip
    # A usage plan no test run reaches: tests of throttling make their own front with a tight one.
    roomy = UsagePlan(rate=1e6, burst=10**6, daily_quota=10**9)
    with LocalStack(
        api_keys=(API_KEY, "sk-second"), environ={}, settings_env=fast, usage_plan=roomy
    ) as local:
        yield local


@pytest.fixture
def batch_event_objects(stack: LocalStack) -> Iterator[None]:
    """The batch bucket objects the ready batch events name; afterwards, none of the messages
    they queued is left for the next test's batch driver."""
    seed_batch_objects()
    yield
    queue_url = stack.batch_env["BATCH_QUEUE_URL"]
    list(WorkQueue(queue_url).drain(queue_url))


# A short batch function timeout: SQS redelivers (6 x the timeout) within a test.
SHORT_BATCH_TIMEOUT = 3.0


@pytest.fixture
def short_batch_timeout(stack: LocalStack) -> Iterator[float]:
    stack.set_batch_timeout(SHORT_BATCH_TIMEOUT)
    yield SHORT_BATCH_TIMEOUT
    stack.set_batch_timeout(60.0)


@pytest.fixture
def emulator(stack: LocalStack) -> Iterator[FalEmulator]:
    assert stack.emulator is not None
    stack.emulator.reset()
    yield stack.emulator
    stack.emulator.reset()


def _distinct(request: Any) -> None:
    request.headers.setdefault("Idempotency-Key", uuid.uuid4().hex)


class ApiKey(requests.auth.AuthBase):
    """Bearer auth for raw requests, each marked distinct like the ``client`` fixture's."""

    def __init__(self, key: str = API_KEY) -> None:
        self.key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.key}"
        _distinct(request)
        return request


AUTH = ApiKey()


def post_edit(
    base_url: str,
    image: bytes,
    prompt: str,
    *,
    auth: requests.auth.AuthBase | None = AUTH,
    headers: dict[str, str] | None = None,
    fields: dict[str, str] | None = None,
) -> requests.Response:
    """A raw multipart edit, as curl or any non-SDK client sends it."""
    return requests.post(
        f"{base_url}/v1/images/edits",
        auth=auth,
        headers=headers,
        files={"image": ("image.png", image, "image/png")},
        data={"prompt": prompt, **(fields or {})},
        timeout=60,
    )


def sdk_client(base_url: str, api_key: str = API_KEY, *, distinct: bool = True) -> openai.OpenAI:
    """The official SDK without retries, so a test sees exactly the calls it makes. ``distinct``:
    each request carries its own Idempotency-Key, so tests that repeat a request get a new edit
    rather than the gateway's replay of the first (tests of deduplication turn it off)."""
    hooks = {"request": [_distinct]} if distinct else {}
    http_client = openai.DefaultHttpxClient(event_hooks=hooks)
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, http_client=http_client)


@pytest.fixture
def client(stack: LocalStack, emulator: FalEmulator) -> openai.OpenAI:
    return sdk_client(f"{stack.base_url}/v1")


@pytest.fixture
def sample_png() -> Path:
    return SAMPLE_IMAGE


def make_settings(**overrides: Any) -> Settings:
    """Settings with the required values filled in, for tests of the core without a stack."""
    required = {"results_bucket": "bucket", "fal_key_secret_name": "fal",
                "idempotency_table": "idempotency"}  # fmt: skip
    return Settings.model_validate({**required, **overrides})


def png_bytes(
    size: tuple[int, int] = (320, 200), color: tuple[int, ...] = (200, 40, 40), mode: str = "RGB"
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, format="PNG")
    return out.getvalue()


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
