"""Issue 15's parameter findings as a user meets them on the local stack: numbers that are not
finite, misspelt field names, and passthrough fields that name or hold a URL, over HTTP (the
official SDK and raw requests), in batch manifests and in a single upload's metadata. Every
refusal is a 400 (or a failed item record) naming the field, and fal is never called for it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from editgate.domain.images import to_data_uri
from editgate_local.batch_driver import QueueDriver
from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import BATCH_BUCKET, LocalStack
from tests.conftest import AUTH, post_edit
from tests.integration.conftest import batch_driver
from tests.integration.test_batch import drop_batch, finished, records, tiny_png, until

EDITS = "/v1/images/edits"


def _json_edit(stack: LocalStack, sample_png: Path, extra: bytes, *, query: str = "") -> requests.Response:
    """A JSON edit with ``extra`` written into the body as raw JSON text (``"foo": 1e999``), as
    no JSON encoder would write it."""
    image = json.dumps([{"image_url": to_data_uri(sample_png.read_bytes(), "image/png")}])
    body = b'{"prompt": "edit", "images": ' + image.encode() + b", " + extra + b"}"
    return requests.post(
        f"{stack.base_url}{EDITS}{query}",
        auth=AUTH,
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


def strict_json(text: str) -> Any:
    """``text`` read as JSON proper: Python's ``NaN`` and ``Infinity`` are not JSON."""

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


# --- numbers are finite ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [(b'"foo": 1e999', "foo"), (b'"foo": 2e308', "foo"), (b'"x": {"y": 1e309}', "x.y"),
     (b'"foo": [1, -1e999]', "foo[1]"), (b'"foo": NaN', "foo"), (b'"foo": Infinity', "foo")],
)  # fmt: skip
def test_a_passthrough_number_that_overflows_to_infinity_is_a_400_naming_the_field_not_a_502_to_retry(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator, extra: bytes, param: str
) -> None:
    answer = _json_edit(stack, sample_png, extra)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_value"
    assert answer.json()["error"]["param"] == param
    assert answer.headers["x-should-retry"] == "false"
    assert emulator.calls["submit"] == 0


def test_a_dry_run_with_a_number_that_overflows_answers_a_400_not_a_200_holding_infinity(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator
) -> None:
    answer = _json_edit(stack, sample_png, b'"x": {"y": 1e999}', query="?dry_run=true")
    assert answer.status_code == 400, answer.text
    assert strict_json(answer.text)["error"]["param"] == "x.y"
    assert emulator.calls["submit"] == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("cfg_scale", "1e999"), ("cfg_scale", "inf"), ("image_guidance_scale", "-Infinity"),
     ("cfg_scale", "NaN"), ("seed", "1e999"), ("n", "1e999"), ("output_compression", "nan")],
)  # fmt: skip
def test_given_a_multipart_field_the_gateway_reads_as_a_number_that_is_not_finite_then_a_400_naming_it(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator, field: str, value: str
) -> None:
    answer = post_edit(stack.base_url, sample_png.read_bytes(), "edit", fields={field: value})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == field
    assert emulator.calls["submit"] == 0


# --- typos are caught ------------------------------------------------------------------------


def test_a_misspelt_field_sent_with_the_sdk_is_a_400_unknown_parameter_asking_did_you_mean(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    with sample_png.open("rb") as image, pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(image=image, prompt="x", extra_body={"negative_promt": "blurry"})
    assert caught.value.code == "unknown_parameter"
    assert caught.value.param == "negative_promt"
    assert "Unknown parameter 'negative_promt': did you mean 'negative_prompt'?" in caught.value.message
    assert emulator.calls["submit"] == 0


def test_a_misspelt_prompt_in_a_json_body_is_a_400_unknown_parameter_before_fal(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator
) -> None:
    answer = _json_edit(stack, sample_png, b'"promt": "a winter evening"')
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == {
        "message": "Unknown parameter 'promt': did you mean 'prompt'?",
        "type": "invalid_request_error",
        "param": "promt",
        "code": "unknown_parameter",
    }
    assert emulator.calls["submit"] == 0


def test_the_keys_passed_through_to_fal_are_listed_in_metadata_passthrough_params_and_in_the_dry_run(
    client: openai.OpenAI, stack: LocalStack, sample_png: Path, emulator: FalEmulator
) -> None:
    extra = {"lora": {"scale": 1}, "seed": 3, "user": "u", "strength": 0.5}
    with sample_png.open("rb") as image:
        answer = client.images.edit(image=image, prompt="x", extra_body=extra)
    metadata = (answer.model_extra or {})["metadata"]
    assert metadata["passthrough_params"] == ["lora", "strength"]
    assert metadata["ignored_params"] == ["user"]
    assert emulator.payloads[0]["lora"] == {"scale": "1"}

    dry = requests.post(
        f"{stack.base_url}{EDITS}?dry_run=true",
        auth=AUTH,
        files={"image": ("s.png", sample_png.read_bytes(), "image/png")},
        data={"prompt": "x", "lora[scale]": "1", "seed": "3"},
        timeout=30,
    )
    assert dry.json()["passthrough_params"] == ["lora"]


# --- passthrough names and values ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "param"),
    [("a[webhook_url]", "a.webhook_url"), ("x[b][callback]", "x.b.callback"),
     ("a[reference_image_urls][]", "a.reference_image_urls"), ("a[0][image_url]", "a.0.image_url")],
)  # fmt: skip
def test_a_nested_passthrough_name_that_names_a_url_or_webhook_is_refused_like_a_top_level_one(
    stack: LocalStack, sample_png: Path, emulator: FalEmulator, field: str, param: str
) -> None:
    value = "https://evil.example/hook" if "url" in field else "x"
    answer = post_edit(stack.base_url, sample_png.read_bytes(), "edit", fields={field: value})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "unsupported_parameter"
    assert answer.json()["error"]["param"] == param
    assert emulator.calls["submit"] == 0


@pytest.mark.parametrize(
    "value",
    ["https:evil.example/x.png", "//evil.example/x", "http:\\\\evil.example\\x.png", "file:/etc/passwd",
     "https\uff1a//evil.example/x.png", "\u200bdata:image/png;base64,AAAA"],
)  # fmt: skip
def test_a_url_like_passthrough_value_without_scheme_slash_slash_is_refused_before_fal(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator, value: str
) -> None:
    with sample_png.open("rb") as image, pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(image=image, prompt="x", extra_body={"style_ref": {"src": value}})
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.param == "style_ref.src"
    assert emulator.calls["submit"] == 0


def test_given_prose_with_a_word_and_a_colon_in_passthrough_and_model_fields_then_the_edit_is_made(
    client: openai.OpenAI, sample_png: Path, emulator: FalEmulator
) -> None:
    extra = {"negative_prompt": "no text: blurry", "caption": "style: watercolor, ratio 16:9"}
    with sample_png.open("rb") as image:
        client.images.edit(image=image, prompt="x", extra_body=extra)
    assert emulator.payloads[0]["negative_prompt"] == "no text: blurry"
    assert emulator.payloads[0]["caption"] == "style: watercolor, ratio 16:9"


# --- the same rules for batch manifests and single uploads -----------------------------------


driver = batch_driver(2)


def test_a_manifest_line_with_a_number_that_overflows_fails_alone_naming_the_field_without_a_fal_call(
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    batch_id = f"overflow-{uuid.uuid4().hex[:8]}"
    lines = [
        {"id": "ok", "image": "a.png", "prompt": "snow"},
        '{"id": "big", "image": "a.png", "prompt": "snow", "x": {"y": 1e999}}',
    ]
    drop_batch(s3, batch_id, {"a.png": tiny_png(1)}, lines)
    done = finished(s3, batch_id, timeout=60)
    assert done["counts"] == {"succeeded": 1, "failed": 1, "pending": 0}
    (failed,) = [record for record in records(s3, batch_id).values() if record["state"] == "failed"]
    assert failed["line"] == 2
    assert "Invalid value for 'x.y': numbers must be finite" in failed["error"]["message"]
    assert emulator.calls["submit"] == 1  # the line that is an edit, alone


def test_a_manifest_whose_only_line_holds_a_non_finite_number_fails_that_line_by_its_own_id_with_invalid_value_not_as_not_json(  # noqa: E501
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    batch_id = f"overflow-only-{uuid.uuid4().hex[:8]}"
    lines = [
        '{"id": "big", "image": "a.png", "prompt": "p", "x": [1, -1e999]}',
        {"id": "line-1", "image": "a.png"},
    ]
    drop_batch(s3, batch_id, {"a.png": tiny_png(1)}, lines)
    done = finished(s3, batch_id, timeout=60)
    items = records(s3, batch_id)
    assert done["error"] is None
    assert done["items"] == 2
    assert items["big"]["error"]["code"] == "invalid_value"
    assert items["big"]["error"]["param"] == "x[1]"
    assert items["line-1"]["error"]["code"] == "missing_required_parameter"  # its own fault, not a duplicate
    assert emulator.calls["submit"] == 0


def test_a_defaults_line_with_a_non_finite_number_stops_the_manifest_instead_of_editing_its_lines_without_their_defaults(  # noqa: E501
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    batch_id = f"overflow-defaults-{uuid.uuid4().hex[:8]}"
    lines = [
        '{"defaults": {"prompt": "studio", "size": "256x256", "x": Infinity}}',
        {"id": "a", "image": "a.png"},
        {"id": "b", "image": "a.png", "prompt": "own prompt"},
    ]
    drop_batch(s3, batch_id, {"a.png": tiny_png(1)}, lines)
    done = finished(s3, batch_id, timeout=60)
    assert done["error"]["code"] == "invalid_manifest"
    assert "'x'" in done["error"]["message"]
    assert done["counts"]["succeeded"] == 0
    assert emulator.calls["submit"] == 0


def test_a_misspelt_field_in_a_manifest_line_fails_the_item_with_unknown_parameter_instead_of_editing_with_the_defaults(  # noqa: E501
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    batch_id = f"typo-{uuid.uuid4().hex[:8]}"
    lines = [
        {"defaults": {"prompt": "studio light"}},
        {"id": "ok", "image": "a.png", "lora": {"scale": 1}},
        {"id": "typo", "image": "a.png", "promt": "on a beach"},
    ]
    drop_batch(s3, batch_id, {"a.png": tiny_png(2)}, lines)
    done = finished(s3, batch_id, timeout=60)
    items = records(s3, batch_id)
    assert done["counts"] == {"succeeded": 1, "failed": 1, "pending": 0}
    assert items["typo"]["error"]["code"] == "unknown_parameter"
    assert items["typo"]["error"]["param"] == "promt"
    assert "did you mean 'prompt'?" in items["typo"]["error"]["message"]
    assert items["ok"]["passthrough_params"] == ["lora"]  # sent to fal unchanged, for the author to check
    assert emulator.calls["submit"] == 1


@pytest.mark.parametrize(
    ("metadata", "param", "code"),
    [({"promt": "on a beach"}, "promt", "unknown_parameter"),
     ({"cfg_scale": "1e999"}, "cfg_scale", "invalid_value"), ({"seed": "nan"}, "seed", "invalid_value"),
     ({"cfg-scale": "4"}, "cfg-scale", "unknown_parameter")],
)  # fmt: skip
def test_a_single_upload_whose_metadata_holds_a_typo_or_a_non_finite_number_fails_naming_it_before_fal(
    emulator: FalEmulator, driver: QueueDriver, s3: Any, metadata: dict[str, str], param: str, code: str
) -> None:
    name = f"meta-{uuid.uuid4().hex[:8]}"
    s3.put_object(
        Bucket=BATCH_BUCKET,
        Key=f"incoming/single/{name}.png",
        Body=tiny_png(3),
        Metadata={"prompt": "studio light", **metadata},
    )

    def record() -> dict[str, Any] | None:
        found = [r for r in records(s3, "single").values() if r["id"].startswith(f"{name}-")]
        return found[0] if found else None

    until(lambda: record() is not None, timeout=60)
    failed = record() or {}
    assert failed["state"] == "failed"
    assert (failed["error"]["param"], failed["error"]["code"]) == (param, code)
    assert emulator.calls["submit"] == 0
