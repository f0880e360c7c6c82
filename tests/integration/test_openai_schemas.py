"""Every kind of answer validates against OpenAI's own published schemas (tests/schemas/: extracted
unmodified from openai/openai-openapi), as clients that validate answers (LiteLLM's image_edit,
typed SDKs in other languages) check them. Only the `size` and `output_format` enums are relaxed:
they list gpt-image's values, and the gateway's sizes and formats are a documented extension."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator, FormatChecker

from editgate_local.fal_emulator import FalEmulator, Fault
from editgate_local.front import ApiFront, UsagePlan, load_handler
from editgate_local.stack import EDIT_API, LocalStack
from tests.conftest import AUTH, post_edit
from tests.integration.test_stream import sse_events

SCHEMAS = json.loads((Path(__file__).parents[1] / "schemas" / "openai-images-schemas.json").read_text())[
    "schemas"
]
RELAXED = {("ImagesResponse", "size"), ("ImagesResponse", "output_format"),
           ("ImageEditCompletedEvent", "size"), ("ImageEditCompletedEvent", "output_format")}  # fmt: skip


def validator(name: str) -> Draft202012Validator:
    schemas = json.loads(json.dumps(SCHEMAS))
    for schema, prop in RELAXED:
        del schemas[schema]["properties"][prop]["enum"]
    root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}}
    return Draft202012Validator(root, format_checker=FormatChecker())


def problems(name: str, answer: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(answer)
    ]


def test_given_the_schemas_then_an_answer_breaking_them_is_caught() -> None:
    # The validator must be able to fail: usage without input_tokens_details, as answers once were.
    answer = {"created": 1, "data": [{"url": "https://x/y.png"}],
              "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}}  # fmt: skip
    assert problems("ImagesResponse", answer) != []
    assert problems("ErrorResponse", {"error": {"message": "m", "type": "t", "param": None}}) != []


@pytest.mark.parametrize("response_format", ["url", "b64_json"])
@pytest.mark.parametrize("fields", [{}, {"n": "2", "size": "512x384", "output_format": "webp"}])
def test_given_an_edit_then_its_answer_is_an_openai_images_response(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path, response_format: str, fields: dict[str, str]
) -> None:
    answer = post_edit(stack.base_url, sample_png.read_bytes(), "edit",
                       fields={"response_format": response_format, **fields})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert problems("ImagesResponse", answer.json()) == []
    assert set(answer.json()["usage"]["input_tokens_details"]) == {"text_tokens", "image_tokens"}


def test_given_a_streamed_edit_then_each_event_is_an_openai_image_edit_completed_event(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path
) -> None:
    """Given stream=true with n=2 as webp, then every event validates against OpenAI's
    ImageEditCompletedEvent (its ImagesUsage included)."""
    answer = post_edit(stack.base_url, sample_png.read_bytes(), "edit",
                       fields={"stream": "true", "n": "2", "output_format": "webp"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    events = [data for _, data in sse_events(answer.text)]
    assert len(events) == 2
    assert [problems("ImageEditCompletedEvent", event) for event in events] == [[], []]


def test_given_the_models_routes_then_their_answers_are_openai_models(stack: LocalStack) -> None:
    listed = requests.get(f"{stack.base_url}/v1/models", auth=AUTH, timeout=30)
    assert problems("ListModelsResponse", listed.json()) == []
    one = requests.get(f"{stack.base_url}/v1/models/hidream-e1-1", auth=AUTH, timeout=30)
    assert problems("Model", one.json()) == []


def error_answers(stack: LocalStack, emulator: FalEmulator, image: bytes) -> dict[int, requests.Response]:
    """One answer of each error status a client can meet."""
    base = stack.base_url
    key = {"Idempotency-Key": uuid.uuid4().hex}
    post_edit(base, image, "edit", headers=key)
    answers = {
        400: post_edit(base, image, "edit", fields={"n": "11"}),
        401: post_edit(base, image, "edit", auth=None),
        404: requests.get(f"{base}/v1/models/no-such-model", auth=AUTH, timeout=30),
        409: post_edit(base, image, "another edit", headers=key),
        413: post_edit(base, b"\x89PNG" + b"0" * 7_000_000, "edit"),
    }
    emulator.inject(Fault("submit", status_code=401))
    answers[502] = post_edit(base, image, "edit")
    emulator.inject(Fault("submit", status_code=504, headers={"X-Fal-Request-Timeout-Type": "user"}))
    answers[504] = post_edit(base, image, "edit")
    tight = ApiFront([load_handler(EDIT_API, environment=92)], gate=stack.gate(UsagePlan(daily_quota=0)))
    tight.start()
    try:
        answers[429] = requests.get(f"{tight.url}/v1/models", auth=AUTH, timeout=30)
    finally:
        tight.stop()
    return answers


def test_given_each_error_status_then_its_answer_is_an_openai_error_response(
    stack: LocalStack, emulator: FalEmulator, sample_png: Path
) -> None:
    answers = error_answers(stack, emulator, sample_png.read_bytes())
    for status, answer in answers.items():
        assert answer.status_code == status, (status, answer.text)
        assert problems("ErrorResponse", answer.json()) == [], status
