"""The official openai Python SDK against `editgate serve`'s stack: what a user sees."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import openai
import pytest
import requests

from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import LocalStack
from tests.conftest import open_image, sdk_client


def test_given_a_png_when_edited_then_one_presigned_url_serves_an_edited_png(
    client: openai.OpenAI, sample_png: Path
) -> None:
    with sample_png.open("rb") as image:
        answer = client.images.edit(model="hidream-e1-1", image=image, prompt="make it a winter scene")

    assert answer.data is not None
    assert len(answer.data) == 1
    url = answer.data[0].url
    assert url is not None
    assert "X-Amz-Signature=" in url
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200
    edited = open_image(fetched.content)
    assert edited.format == "PNG"
    assert edited.size == open_image(sample_png.read_bytes()).size  # auto: the input's own size
    assert fetched.content != sample_png.read_bytes()
    assert answer.size == "768x512"
    assert answer.output_format == "png"


def test_given_a_png_when_edited_then_the_answer_carries_request_id_cost_and_provider(
    client: openai.OpenAI, sample_png: Path
) -> None:
    with sample_png.open("rb") as image:
        raw = client.images.with_raw_response.edit(image=image, prompt="add a hat")
    answer = raw.parse()

    request_id = raw.headers["x-request-id"]
    assert request_id
    assert answer._request_id == request_id
    metadata = (answer.model_extra or {})["metadata"]
    assert metadata["request_id"] == request_id
    assert metadata["model"] == "hidream-e1-1"
    assert metadata["provider"] == "fal"
    assert metadata["cost"] == {"usd": 0.06, "images": 1}
    assert len(metadata["provider_request_ids"]) == 1


def test_given_a_list_of_one_file_when_edited_then_it_is_accepted_as_image_array(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=[image], prompt="make it night")

    assert answer.data is not None
    assert len(answer.data) == 1
    assert emulator.calls["submit"] == 1


def test_given_n_3_when_edited_then_three_distinct_images_from_one_provider_call(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=image, prompt="make it autumn", n=3)

    assert answer.data is not None
    urls = [item.url for item in answer.data]
    assert len(urls) == 3
    assert len(set(urls)) == 3
    digests = {hashlib.sha256(requests.get(u or "", timeout=10).content).hexdigest() for u in urls}
    assert len(digests) == 3
    assert emulator.calls["submit"] == 1
    assert emulator.payloads[0]["num_images"] == 3


def test_given_b64_json_when_edited_then_the_image_comes_inline(
    client: openai.OpenAI, sample_png: Path
) -> None:
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=image, prompt="add snow", response_format="b64_json")

    assert answer.data is not None
    assert answer.data[0].url is None
    decoded = open_image(base64.b64decode(answer.data[0].b64_json or ""))
    assert decoded.format == "PNG"
    assert decoded.size == (768, 512)


def test_given_no_prompt_when_edited_then_bad_request_names_prompt_and_fal_is_not_called(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    with sample_png.open("rb") as image, pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(image=image, prompt=openai.omit)  # type: ignore[call-overload]

    assert caught.value.status_code == 400
    assert caught.value.param == "prompt"
    assert caught.value.code == "missing_required_parameter"
    assert emulator.calls["submit"] == 0


def test_given_a_text_file_as_image_when_edited_then_bad_request_names_image(
    client: openai.OpenAI, tmp_path: Path, emulator: FalEmulator
) -> None:
    notes = tmp_path / "notes.png"  # the name lies; the bytes decide
    notes.write_text("this is not an image")
    with notes.open("rb") as image, pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(image=image, prompt="edit it")

    assert caught.value.param == "image"
    assert caught.value.code == "invalid_image_format"
    assert emulator.calls["submit"] == 0


def test_given_a_wrong_api_key_when_edited_then_authentication_error(
    stack: LocalStack, sample_png: Path
) -> None:
    client = sdk_client(f"{stack.base_url}/v1", "sk-wrong")
    with sample_png.open("rb") as image, pytest.raises(openai.AuthenticationError) as caught:
        client.images.edit(image=image, prompt="edit it")

    assert caught.value.status_code == 401
    assert "sk-wrong" not in str(caught.value.body)


def test_given_a_wrong_api_key_and_no_prompt_then_authentication_comes_first(
    stack: LocalStack, sample_png: Path
) -> None:
    client = sdk_client(f"{stack.base_url}/v1", "sk-wrong")
    with sample_png.open("rb") as image, pytest.raises(openai.AuthenticationError):
        client.images.edit(image=image, prompt=openai.omit)  # type: ignore[call-overload]


def test_given_a_second_configured_key_when_edited_then_it_is_accepted(
    stack: LocalStack, sample_png: Path
) -> None:
    client = sdk_client(f"{stack.base_url}/v1", "sk-second")
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=image, prompt="edit it")
    assert answer.data is not None
    assert len(answer.data) == 1


def test_given_base_url_without_v1_when_edited_then_images_edits_route_answers(
    stack: LocalStack, sample_png: Path
) -> None:
    client = sdk_client(stack.base_url)
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=image, prompt="edit it", response_format="b64_json")
    assert answer.data is not None
    assert answer.data[0].b64_json
    with sample_png.open("rb") as image, pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(image=image, prompt=openai.omit)  # type: ignore[call-overload]
    assert caught.value.param == "prompt"


def test_given_an_exact_size_when_edited_then_the_image_has_that_size(
    client: openai.OpenAI, sample_png: Path
) -> None:
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=image, prompt="widen", size="1024x576", output_format="jpeg")

    assert answer.size == "1024x576"
    assert answer.output_format == "jpeg"
    assert answer.data is not None
    edited = open_image(requests.get(answer.data[0].url or "", timeout=10).content)
    assert edited.format == "JPEG"
    assert edited.size == (1024, 576)


def test_given_an_unknown_model_when_edited_then_bad_request_names_model(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    with sample_png.open("rb") as image, pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(image=image, prompt="x", model="dall-e-2")
    assert caught.value.param == "model"
    assert caught.value.code == "model_not_found"
    assert emulator.calls["submit"] == 0


def test_given_a_mask_when_edited_then_bad_request_names_mask(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    with (
        sample_png.open("rb") as image,
        sample_png.open("rb") as mask,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        client.images.edit(image=image, mask=mask, prompt="x")
    assert caught.value.param == "mask"
    assert emulator.calls["submit"] == 0


def test_given_model_parameters_in_extra_body_then_the_provider_gets_them_typed_and_renamed(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    with sample_png.open("rb") as image:
        client.images.edit(
            image=image,
            prompt="x",
            extra_body={"cfg_scale": 7.5, "seed": 42, "enable_safety_checker": True, "lora": {"scale": 1}},
        )
    payload = emulator.payloads[0]
    assert payload["guidance_scale"] == 7.5
    assert "cfg_scale" not in payload
    assert payload["seed"] == 42
    assert payload["enable_safety_checker"] is True
    assert payload["lora"] == {"scale": "1"}  # unknown keys pass through as sent
    assert payload["image_url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"enable_safety_checker": False}, "enable_safety_checker"),
     ({"webhook_url": "http://169.254.169.254/latest/meta-data/"}, "webhook_url"),
     ({"reference_image_urls": ["http://10.0.0.1/x.png"]}, "reference_image_urls")],
)  # fmt: skip
def test_given_a_parameter_that_would_turn_fal_against_the_operator_then_bad_request_before_fal(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator, extra: dict[str, object], param: str
) -> None:
    with sample_png.open("rb") as image, pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(image=image, prompt="x", extra_body=extra)
    assert caught.value.param == param
    assert emulator.calls["submit"] == 0


def test_given_an_out_of_range_model_parameter_then_bad_request_before_fal(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    with sample_png.open("rb") as image, pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(image=image, prompt="x", extra_body={"num_inference_steps": 60})
    assert caught.value.param == "num_inference_steps"
    assert emulator.calls["submit"] == 0


def test_given_an_edit_too_big_to_finish_in_the_http_deadline_then_bad_request_points_to_batch_before_fal(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    with sample_png.open("rb") as image, pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(image=image, prompt="x", n=10, size="4096x4096")
    assert caught.value.param == "n"
    assert "batch edit" in caught.value.message
    assert emulator.calls["submit"] == 0
