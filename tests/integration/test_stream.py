"""``stream=true`` as OpenAI's streamed image edits are used: the official SDK's
``client.images.edit(..., stream=True)`` and raw HTTP reading the event framing. API Gateway REST
buffers the body, so the events all arrive when the edit is done; what matters is that apps
written for OpenAI's stream get their images."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from openai.types import ImageEditCompletedEvent

from editgate_local.fal_emulator import FalEmulator, Fault
from editgate_local.front import LAMBDA_MAX_ANSWER, ApiFront
from editgate_local.stack import LocalStack
from tests.conftest import AUTH, open_image, post_edit


def sse_events(body: str) -> list[tuple[str | None, dict[str, Any]]]:
    """The server-sent events of ``body``, read as the SSE format defines them: blank-line
    separated blocks of ``field: value`` lines (``event``, ``data``)."""
    events = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
        assert set(fields) <= {"event", "data"}, block[:200]
        events.append((fields.get("event", [None])[0], json.loads("\n".join(fields["data"]))))
    return events


def test_stream_true_is_refused_no_more_the_python_sdk_streams_and_gets_every_image(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    """Given an app written for OpenAI's streamed edits, when it edits with stream=True and n=2,
    then it iterates two image_edit.completed events, each a base64 image of the answer's size
    (the finding: it got a 400 instead of its images)."""
    with sample_png.open("rb") as image:
        stream = client.images.edit(image=image, prompt="make it a winter scene", n=2, stream=True)
        events = list(stream)

    assert [event.type for event in events] == ["image_edit.completed"] * 2
    images = [open_image(base64.b64decode(event.b64_json)) for event in events]
    assert [image.size for image in images] == [(768, 512)] * 2
    assert {event.size for event in events} == {"768x512"}
    assert {event.output_format for event in events} == {"png"}
    assert len({event.b64_json for event in events}) == 2  # two edits, not one image twice
    assert emulator.calls["submit"] == 1


def test_given_partial_images_when_streamed_then_only_completed_events_and_it_is_listed_as_ignored(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    """Given partial_images=2 (HiDream makes no partial images), when streamed, then no
    image_edit.partial_image event comes, and each event's metadata lists it as ignored."""
    with sample_png.open("rb") as image:
        events = list(
            client.images.edit(image=image, prompt="add snow", stream=True, partial_images=2, size="512x512")
        )

    assert [event.type for event in events] == ["image_edit.completed"]
    event = events[0]
    assert isinstance(event, ImageEditCompletedEvent)
    assert open_image(base64.b64decode(event.b64_json)).size == (512, 512)
    assert event.usage.total_tokens == 0
    metadata = (event.model_extra or {})["metadata"]
    assert metadata["ignored_params"] == ["partial_images"]
    assert metadata["cost"] == {"usd": 0.06, "images": 1}


def test_given_stream_true_over_raw_http_then_each_image_is_one_event_block_of_event_and_data_lines(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator
) -> None:
    """Given curl-style multipart with stream=true and n=2, then the answer is text/event-stream:
    an ``event: image_edit.completed`` line and one ``data:`` line of JSON per image, blocks
    separated by a blank line, every field of OpenAI's ImageEditCompletedEvent present."""
    response = post_edit(
        stack.base_url, sample_png.read_bytes(), "make it autumn", fields={"stream": "true", "n": "2"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"]
    assert response.text.endswith("\n\n")
    events = sse_events(response.text)
    assert [name for name, _ in events] == ["image_edit.completed"] * 2
    required = {"type", "b64_json", "created_at", "size", "quality", "background", "output_format", "usage"}
    for _, data in events:
        assert required <= set(data)
        assert data["type"] == "image_edit.completed"
        assert data["size"] == "768x512"
        assert isinstance(data["created_at"], int)
        assert data["metadata"]["request_id"] == response.headers["x-request-id"]
        assert open_image(base64.b64decode(data["b64_json"])).size == (768, 512)


def test_given_stream_true_in_a_json_edit_then_the_answer_is_the_same_event_stream(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator
) -> None:
    """Given the JSON variant with ``"stream": true``, then the images come as events too."""
    data_uri = "data:image/png;base64," + base64.b64encode(sample_png.read_bytes()).decode()
    body = {"images": [{"image_url": data_uri}], "prompt": "make it night", "stream": True}
    response = requests.post(f"{stack.base_url}/v1/images/edits", auth=AUTH, json=body, timeout=60)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert [name for name, _ in sse_events(response.text)] == ["image_edit.completed"]


def test_given_stream_false_then_the_answer_is_the_usual_json(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator
) -> None:
    """Given stream=false, then nothing changes: the JSON answer, with URLs by default."""
    response = post_edit(stack.base_url, sample_png.read_bytes(), "edit", fields={"stream": "false"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "url" in response.json()["data"][0]


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"stream": "true", "response_format": "url"}, "response_format"),
     ({"stream": "maybe"}, "stream"),
     ({"stream": "true", "model": "no-such-model"}, "model")],
)  # fmt: skip
def test_given_a_stream_that_cannot_start_then_a_json_error_with_its_status_and_fal_is_not_called(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator, fields: dict[str, str], param: str
) -> None:
    """Given stream=true with URLs asked for, a stream flag that is not a boolean, or an unknown
    model, then the answer is OpenAI's JSON error (400, naming the field), not an event stream,
    and nothing is paid."""
    response = post_edit(stack.base_url, sample_png.read_bytes(), "edit", fields=fields)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["param"] == param
    assert emulator.calls["submit"] == 0


def test_given_a_streamed_edit_that_fal_fails_then_the_sdk_raises_the_usual_error(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    """Given fal failing the edit, when streamed, then the SDK raises its status error before
    any event (the stream had not started): the same 502 a JSON edit gets."""
    emulator.inject(Fault("submit", kind="failed"))
    with sample_png.open("rb") as image, pytest.raises(openai.APIStatusError) as caught:
        list(client.images.edit(image=image, prompt="edit", stream=True))

    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_error"


def _through_front(content_type: str, body: str) -> requests.Response:
    """An edit over HTTP through a local front whose function answers ``body`` as ``content_type``."""
    answer = {"statusCode": 200, "headers": {"Content-Type": content_type}, "body": body}
    front = ApiFront([lambda event, context: answer]).start()
    try:
        return requests.post(f"{front.url}/v1/images/edits", data=b"x", timeout=10)
    finally:
        front.stop()


def test_given_a_function_answering_an_event_stream_then_the_local_front_passes_it_through_whole() -> None:
    """Given a function whose answer is text/event-stream, when asked over HTTP through the local
    front, then the client gets that content type and body byte for byte (as API Gateway REST
    sends a buffered body)."""
    body = 'event: image_edit.completed\ndata: {"type": "image_edit.completed", "b64_json": "AAAA"}\n\n'
    response = _through_front("text/event-stream; charset=utf-8", body)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.content == body.encode()


def test_given_a_function_answer_over_lambdas_6_mb_then_the_local_front_answers_api_gateways_502() -> None:
    """Given an answer Lambda would refuse (over 6,291,456 bytes as its JSON), then the front
    answers what API Gateway would: a 502 in the template's DEFAULT_5XX shape, not the body."""
    response = _through_front("text/event-stream", "data: " + "A" * LAMBDA_MAX_ANSWER + "\n\n")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "gateway_error"
