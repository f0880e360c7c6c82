"""The API's surface through the openai SDK and raw HTTP: shapes and scales, formats, counts,
models, dry runs, the JSON body and transparency."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import openai
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from editgate.domain.images import to_data_uri
from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import LocalStack
from tests.conftest import AUTH, open_image, png_bytes


def fetch_image(url: str | None) -> Image.Image:
    return open_image(requests.get(url or "", timeout=10).content)


def test_given_1920x1080_on_a_square_png_then_a_1920x1080_image(
    client: openai.OpenAI, tmp_path: Path
) -> None:
    square = tmp_path / "square.png"
    square.write_bytes(png_bytes((800, 800)))
    with square.open("rb") as image:
        answer = client.images.edit(image=image, prompt="widen the scene", size="1920x1080")
    assert answer.size == "1920x1080"
    assert answer.data is not None
    assert fetch_image(answer.data[0].url).size == (1920, 1080)
    metadata = (answer.model_extra or {})["metadata"]
    assert metadata["resampled_from"] == "1360x768"
    assert metadata["upscaled"] is True


def test_given_aspect_ratio_7_to_1_then_the_log_nearest_supported_ratio_8_to_1(
    client: openai.OpenAI, sample_png: Path
) -> None:
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=image, prompt="panorama", extra_body={"aspect_ratio": "7:1"})
    width, height = (int(side) for side in (answer.size or "").split("x"))
    assert abs(math.log(width / height) - math.log(8)) < 0.05
    assert answer.data is not None
    assert fetch_image(answer.data[0].url).size == (width, height)


@pytest.mark.parametrize(
    ("fmt", "pil_format"), [("webp", "WEBP"), ("avif", "AVIF"), ("gif", "GIF"), ("jpeg", "JPEG")]
)
def test_given_an_output_format_then_the_file_is_of_that_type(
    client: openai.OpenAI, sample_png: Path, fmt: str, pil_format: str
) -> None:
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=image, prompt="edit", extra_body={"output_format": fmt})
    assert answer.output_format == fmt
    assert answer.data is not None
    fetched = requests.get(answer.data[0].url or "", timeout=10)
    assert fetched.headers["content-type"] == f"image/{fmt}"
    assert open_image(fetched.content).format == pil_format


def test_given_n_10_then_10_distinct_images_from_3_provider_calls(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=image, prompt="variations", n=10, extra_body={"seed": 1000})
    assert answer.data is not None
    assert len(answer.data) == 10
    assert emulator.calls["submit"] == 3
    assert sorted(p["num_images"] for p in emulator.payloads) == [2, 4, 4]
    assert sorted(p["seed"] for p in emulator.payloads) == [1000, 1004, 1008]
    assert len({requests.get(d.url or "", timeout=10).content for d in answer.data}) == 10
    assert (answer.model_extra or {})["metadata"]["cost"] == {"usd": 0.6, "images": 10}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    width=st.integers(min_value=40, max_value=900),
    height=st.integers(min_value=40, max_value=900),
    shape=st.sampled_from(
        [{}, {"aspect_ratio": "16:9"}, {"resolution": "0.5K"}, {"size": "3:4"}, {"size": "333x777"}]
    ),
)
def test_given_any_input_and_shape_then_the_returned_image_has_exactly_the_reported_size(
    client: openai.OpenAI, width: int, height: int, shape: dict[str, str]
) -> None:
    answer = client.images.edit(
        image=("in.png", png_bytes((width, height))), prompt="p", response_format="b64_json", extra_body=shape
    )
    assert answer.data is not None
    returned = open_image(base64.b64decode(answer.data[0].b64_json or ""))
    assert f"{returned.width}x{returned.height}" == answer.size


@pytest.mark.parametrize("model", ["hidream-e1-1", "hidream-e1-full", "hidream-o1-image-edit"])
def test_given_each_catalog_model_then_it_runs_on_the_emulator_with_its_own_schema(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator, model: str
) -> None:
    with sample_png.open("rb") as image:
        answer = client.images.edit(model=model, image=image, prompt="edit", size="1024x576", n=2)
    assert answer.data is not None
    assert len(answer.data) == 2
    assert fetch_image(answer.data[1].url).size == (1024, 576)
    assert (answer.model_extra or {})["metadata"]["model"] == model


def test_given_litellms_fal_adapter_shape_then_the_emulators_synchronous_route_answers_the_result(
    emulator: FalEmulator, sample_png: Path
) -> None:
    # What LiteLLM's fal image-edit adapter sends (bench/peer.py runs LiteLLM against it).
    image_urls = [to_data_uri(sample_png.read_bytes(), "image/png")]
    payload = {"prompt": "edit", "image_urls": image_urls, "num_images": 2}
    answer = requests.post(f"{emulator.url}/run/fal-ai/hidream-e1-1/edit", json=payload, timeout=30,
                           headers={"Authorization": f"Key {emulator.key}"})  # fmt: skip
    assert answer.status_code == 200
    images = answer.json()["images"]
    assert len(images) == 2
    assert fetch_image(images[0]["url"]).size == Image.open(sample_png).size
    refused = requests.post(f"{emulator.url}/run/fal-ai/hidream-e1-1/edit", json=payload, timeout=30,
                            headers={"Authorization": "Key wrong"})  # fmt: skip
    assert refused.status_code == 401


def test_given_a_latency_sent_to_the_emulators_control_route_then_its_requests_take_that_long(
    emulator: FalEmulator,
) -> None:
    try:
        answer = requests.post(f"{emulator.url}/_emulator/latency", json={"seconds": 2.5}, timeout=30)
        assert answer.status_code == 200
        assert emulator.latency == 2.5
    finally:
        emulator.latency = 0.0


def test_given_the_o1_model_then_fal_gets_reference_images_and_a_native_size(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    with sample_png.open("rb") as image:
        client.images.edit(model="hidream-o1-image-edit", image=image, prompt="edit", size="2048x1152")
    payload = emulator.payloads[0]
    assert isinstance(payload["reference_image_urls"], list)
    assert "image_url" not in payload
    assert payload["image_size"] == {"width": 2048, "height": 1152}


def test_given_dry_run_then_it_shows_exactly_what_is_sent_and_calls_nothing(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator
) -> None:
    form = {"prompt": "edit", "n": "6", "seed": "5", "cfg_scale": "4", "size": "16:9", "user": "u"}
    files = {"image": ("s.png", sample_png.read_bytes(), "image/png")}
    dry = requests.post(
        f"{stack.base_url}/v1/images/edits?dry_run=true", auth=AUTH, files=files, data=form, timeout=30
    )
    assert dry.status_code == 200, dry.text
    assert emulator.calls["submit"] == 0
    shown = dry.json()
    assert shown["cost"] == {"usd": 0.36, "images": 6}
    assert shown["ignored_params"] == ["user"]

    real = requests.post(f"{stack.base_url}/v1/images/edits", auth=AUTH, files=files, data=form, timeout=30)
    assert real.status_code == 200
    sent = sorted(emulator.payloads, key=lambda p: p["seed"])
    assert len(sent) == len(shown["provider_requests"]) == 2
    for shown_payload, sent_payload in zip(shown["provider_requests"], sent, strict=True):
        assert {k: v for k, v in shown_payload.items() if k != "image_url"} == {
            k: v for k, v in sent_payload.items() if k != "image_url"
        }
        assert sent_payload["image_url"].startswith("data:image/png;base64,")
    assert real.json()["size"] == shown["size"]


@pytest.mark.parametrize(("flag", "status"), [("1", 200), ("False", None), ("maybe", 400)])
def test_given_a_dry_run_flag_then_it_is_read_as_true_or_false_or_refused_naming_it(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator, flag: str, status: int | None
) -> None:
    files = {"image": ("s.png", sample_png.read_bytes(), "image/png")}
    answer = requests.post(f"{stack.base_url}/v1/images/edits?dry_run={flag}", auth=AUTH, files=files,
                           data={"prompt": "edit"}, timeout=30)  # fmt: skip
    if status == 400:
        assert answer.status_code == 400
        assert answer.json()["error"]["param"] == "dry_run"
        assert emulator.calls["submit"] == 0
    elif status == 200:
        assert "provider_requests" in answer.json()
        assert emulator.calls["submit"] == 0
    else:  # false: the edit itself
        assert answer.status_code == 200
        assert "data" in answer.json()
        assert emulator.calls["submit"] == 1


def test_given_the_models_routes_then_every_catalog_model_with_capabilities(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"hidream-e1-1", "hidream-e1-full", "hidream-o1-image-edit"}
    one = client.models.retrieve("hidream-e1-1")
    capabilities = (one.model_extra or {})["editgate"]
    assert one.owned_by == "fal"
    assert capabilities["parameters"]["cfg_scale"] == {
        "behaviour": "renamed", "field": "guidance_scale", "type": "float", "ge": 0, "le": 20,
    }  # fmt: skip
    assert capabilities["parameters"]["mask"] == {"behaviour": "refused"}
    assert "8:1" in capabilities["aspect_ratios"]
    assert capabilities["price"]["usd_per_image"] == 0.06
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("dall-e-3")


def test_given_a_generation_request_then_a_clear_400_not_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(prompt="a cat", model="hidream-e1-1")
    assert caught.value.code == "unsupported_operation"
    assert "/v1/images/edits" in caught.value.message


def test_given_the_json_body_with_a_data_uri_then_the_edit_is_returned(
    stack: LocalStack, sample_png: Path
) -> None:
    body = {
        "images": [{"image_url": to_data_uri(sample_png.read_bytes(), "image/png")}],
        "prompt": "add snow",
        "n": 2,
        "size": "512x512",
        "seed": 9,
    }
    response = requests.post(f"{stack.base_url}/v1/images/edits", auth=AUTH, json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer["data"]) == 2
    assert answer["size"] == "512x512"


@pytest.mark.parametrize(
    ("images", "code"),
    [([{"image_url": "http://127.0.0.1:1/x.png"}], "invalid_image_url"),
     ([{"image_url": "http://169.254.169.254/latest/meta-data/"}], "invalid_image_url"),
     ([{"image_url": "file:///etc/passwd"}], "invalid_image_url"),
     ([{"file_id": "file-123"}], "unsupported_parameter"),
     ([], "invalid_value")],
)  # fmt: skip
def test_given_a_json_image_that_cannot_be_used_then_400_before_fal(
    stack: LocalStack, emulator: FalEmulator, images: list[dict[str, str]], code: str
) -> None:
    response = requests.post(
        f"{stack.base_url}/v1/images/edits", auth=AUTH, json={"images": images, "prompt": "x"}, timeout=30
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["param"] == "images"
    assert emulator.calls["submit"] == 0


def test_given_a_transparent_png_then_png_keeps_the_transparency_and_jpeg_flattens_it(
    client: openai.OpenAI,
) -> None:
    rgba = Image.new("RGBA", (200, 100), (200, 30, 30, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 100, 100))  # left half transparent
    out = io.BytesIO()
    rgba.save(out, format="PNG")
    for fmt, expect_alpha in (("png", True), ("webp", True), ("jpeg", False)):
        answer = client.images.edit(
            image=("t.png", out.getvalue()),
            prompt="p",
            response_format="b64_json",
            extra_body={"output_format": fmt},
        )
        assert answer.data is not None
        result = open_image(base64.b64decode(answer.data[0].b64_json or ""))
        if expect_alpha:
            assert result.mode == "RGBA", fmt
            assert result.getpixel((20, 50))[3] == 0, fmt  # type: ignore[index]
            assert result.getpixel((180, 50))[3] == 255, fmt  # type: ignore[index]
        else:
            assert result.mode == "RGB"


def test_given_an_upload_fal_can_take_as_it_is_then_it_is_sent_untouched_and_timed_by_phase(
    client: openai.OpenAI, emulator: FalEmulator
) -> None:
    upload = png_bytes((512, 512), (30, 90, 160))
    raw = client.images.with_raw_response.edit(image=("in.png", upload), prompt="x")
    assert emulator.payloads[0]["image_url"] == "data:image/png;base64," + base64.b64encode(upload).decode()
    phases = {part.split(";")[0].strip() for part in raw.headers["server-timing"].split(",")}
    assert {"parse", "decode", "fal-submit", "fal-wait", "download", "store", "presign", "dedupe"} <= phases
    assert "encode-input" not in phases  # no re-encode


def test_given_an_upload_that_must_change_then_fal_gets_it_fitted_as_png(
    client: openai.OpenAI, emulator: FalEmulator
) -> None:
    raw = client.images.with_raw_response.edit(image=("in.png", png_bytes((500, 500))), prompt="x")
    sent = emulator.payloads[0]["image_url"]
    assert sent.startswith("data:image/png;base64,")
    assert open_image(base64.b64decode(sent.split(",", 1)[1])).size == (496, 496)  # multiples of 16
    assert "encode-input;dur=" in raw.headers["server-timing"]
