"""Raw multipart over HTTP, as curl and other non-SDK clients send it."""

from __future__ import annotations

import base64
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from PIL import Image

from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import LocalStack
from tests.conftest import API_KEY, AUTH, open_image


def _encoded(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 200), (30, 140, 90)).save(out, format=fmt)
    return out.getvalue()


def _assert_openai_error(response: requests.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Traceback" not in response.text
    return dict(error)


def test_given_curl_with_an_image_file_when_posted_then_the_edit_is_returned(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator
) -> None:
    completed = subprocess.run(
        ["curl", "-sS", f"{stack.base_url}/v1/images/edits", "-H", f"Authorization: Bearer {API_KEY}",
         "-F", f"image=@{sample_png}", "-F", "prompt=make it snow", "-F", "response_format=b64_json"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    answer = json.loads(completed.stdout)
    assert len(answer["data"]) == 1
    assert answer["size"] == "768x512"
    assert emulator.calls["submit"] == 1


def test_given_a_chunked_upload_then_it_is_assembled_as_api_gateway_does(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator
) -> None:
    completed = subprocess.run(
        ["curl", "-sS", f"{stack.base_url}/v1/images/edits", "-H", f"Authorization: Bearer {API_KEY}",
         "-H", "Transfer-Encoding: chunked", "-F", f"image=@{sample_png}", "-F", "prompt=chunked upload",
         "-F", "response_format=b64_json"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    answer = json.loads(completed.stdout)
    assert answer["size"] == "768x512", answer
    assert emulator.calls["submit"] == 1


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_given_an_octet_stream_part_named_unknown_file_then_the_type_is_read_from_its_bytes(
    stack: LocalStack, fmt: str
) -> None:
    response = requests.post(
        f"{stack.base_url}/v1/images/edits",
        auth=AUTH,
        files={"image": ("unknown_file", _encoded(fmt), "application/octet-stream")},
        data={"prompt": "edit", "response_format": "b64_json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["size"] == "300x200"


def test_given_several_image_array_parts_then_bad_request_says_one_image(
    stack: LocalStack, emulator: FalEmulator
) -> None:
    png = _encoded("PNG")
    response = requests.post(
        f"{stack.base_url}/v1/images/edits",
        auth=AUTH,
        files=[("image[]", ("a.png", png, "image/png")), ("image[]", ("b.png", png, "image/png"))],
        data={"prompt": "edit"},
        timeout=30,
    )
    error = _assert_openai_error(response, 400)
    assert error["param"] == "image"
    assert error["code"] == "too_many_images"
    assert emulator.calls["submit"] == 0


def test_given_image_sent_as_a_text_field_then_bad_request_says_expected_a_file(stack: LocalStack) -> None:
    response = requests.post(
        f"{stack.base_url}/v1/images/edits",
        auth=AUTH,
        files={"image": (None, "https://example.com/cat.png"), "prompt": (None, "edit")},
        timeout=30,
    )
    error = _assert_openai_error(response, 400)
    assert error["param"] == "image"
    assert error["message"] == "Invalid type for 'image': expected a file, but got a string instead."


@pytest.mark.parametrize(
    ("field", "value"),
    [("n", "11"), ("n", "two"), ("size", "10x10"), ("size", "big"), ("response_format", "gif"),
     ("output_format", "bmp"), ("output_compression", "101"), ("cfg_scale", "nan"), ("seed", "-1")],
)  # fmt: skip
def test_given_an_invalid_value_then_bad_request_names_the_field(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator, field: str, value: str
) -> None:
    response = requests.post(
        f"{stack.base_url}/v1/images/edits",
        auth=AUTH,
        files={"image": ("s.png", sample_png.read_bytes(), "image/png")},
        data={"prompt": "edit", field: value},
        timeout=30,
    )
    error = _assert_openai_error(response, 400)
    assert error["param"] == field
    assert error["type"] == "invalid_request_error"
    assert emulator.calls["submit"] == 0


def test_given_an_unknown_route_then_not_found_in_openai_shape(stack: LocalStack) -> None:
    response = requests.get(f"{stack.base_url}/v1/images/nothing", auth=AUTH, timeout=10)
    assert _assert_openai_error(response, 404)["code"] == "not_found"


def test_given_a_body_that_is_not_multipart_then_bad_request(stack: LocalStack) -> None:
    response = requests.post(
        f"{stack.base_url}/v1/images/edits",
        auth=AUTH,
        headers={"Content-Type": "text/plain"},
        data="prompt=x",
        timeout=10,
    )
    _assert_openai_error(response, 400)


def test_given_no_authorization_header_then_unauthorized(stack: LocalStack, sample_png: Path) -> None:
    response = requests.post(
        f"{stack.base_url}/v1/images/edits",
        files={"image": ("s.png", sample_png.read_bytes(), "image/png")},
        data={"prompt": "edit"},
        timeout=10,
    )
    error = _assert_openai_error(response, 401)
    assert error["code"] == "invalid_api_key"
    assert response.headers["x-should-retry"] == "false"


def test_given_the_python_sdk_and_a_list_of_files_then_it_sends_image_array_parts(
    stack: LocalStack, sample_png: Path
) -> None:
    sent: list[bytes] = []

    def record(request: Any) -> None:
        sent.append(request.read())

    # The SDK's own HTTP client class (httpx or its successor, by SDK version), with a hook.
    http_client = openai.DefaultHttpxClient(event_hooks={"request": [record]})
    client = openai.OpenAI(
        base_url=f"{stack.base_url}/v1", api_key=API_KEY, max_retries=0, http_client=http_client
    )
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=[image], prompt="edit", response_format="b64_json")

    assert b'name="image[]"' in sent[0]
    assert b'name="image"' not in sent[0]
    assert answer.data is not None
    assert open_image(base64.b64decode(answer.data[0].b64_json or ""))
