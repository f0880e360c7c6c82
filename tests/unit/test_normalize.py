"""The shape, scale, count and parameter rules, without I/O."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from editgate.domain.catalog import MODELS
from editgate.domain.errors import InvalidRequest
from editgate.domain.images import Size
from editgate.domain.models import EditRequest
from editgate.domain.normalize import MAX_SIDE, nearest_ratio, plan, target_size
from editgate.wiring import build_catalog
from tests.conftest import make_settings

SETTINGS = make_settings()
SPEC = build_catalog(SETTINGS)["hidream-e1-1"]
SQUARE = Size(1000, 1000)


def request(**fields: Any) -> EditRequest:
    return EditRequest.model_validate({"prompt": "edit", **fields})


def test_given_no_shape_or_scale_then_the_target_is_the_input_size() -> None:
    assert target_size(request(), SPEC, Size(768, 513)) == Size(768, 513)
    assert target_size(request(size="auto"), SPEC, Size(768, 513)) == Size(768, 513)


def test_given_size_wxh_then_it_wins_over_aspect_ratio_and_resolution() -> None:
    got = target_size(request(size="1920x1080", aspect_ratio="1:1", resolution="0.5K"), SPEC, SQUARE)
    assert got == Size(1920, 1080)


@pytest.mark.parametrize("size", ["63x100", "100x4097", "0x0"])
def test_given_a_side_outside_64_to_4096_then_size_is_refused(size: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        target_size(request(size=size), SPEC, SQUARE)
    assert caught.value.param == "size"


def test_given_size_as_a_ratio_then_it_is_an_aspect_ratio() -> None:
    assert target_size(request(size="16:9"), SPEC, SQUARE) == target_size(
        request(aspect_ratio="16:9"), SPEC, SQUARE
    )


def test_given_7_to_1_then_the_log_nearest_supported_ratio_8_to_1_is_used() -> None:
    assert nearest_ratio(7.0, SPEC.aspect_ratios) == 8.0
    assert nearest_ratio(1 / 7, SPEC.aspect_ratios) == 1 / 8


def test_given_a_tie_between_ratios_then_the_squarer_one_wins() -> None:
    assert nearest_ratio(math.sqrt(2.0), ("1:1", "2:1")) == 1.0


def test_given_a_resolution_tier_then_the_area_is_that_tier() -> None:
    got = target_size(request(aspect_ratio="1:1", resolution="2K"), SPEC, SQUARE)
    assert got == Size(2048, 2048)
    assert target_size(request(aspect_ratio="1:1", resolution="4"), SPEC, SQUARE) == Size(2048, 2048)


@pytest.mark.parametrize(
    ("field", "value"), [("aspect_ratio", "wide"), ("aspect_ratio", "0:1"), ("resolution", "huge")]
)
def test_given_an_unreadable_shape_or_scale_then_the_field_is_named(field: str, value: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        target_size(request(**{field: value}), SPEC, SQUARE)
    assert caught.value.param == field


def _log_distance(a: float, b: float) -> float:
    return abs(math.log(a) - math.log(b))


@given(
    ratio=st.floats(min_value=0.05, max_value=20, allow_nan=False),
    resolution=st.sampled_from(["0.5K", "1K", "2K", "4K", "0.25", "1", "4", "16", "3"]),
)
def test_given_any_ratio_and_resolution_then_sides_are_multiples_of_16_within_bounds(
    ratio: float, resolution: str
) -> None:
    got = target_size(request(aspect_ratio=f"{ratio}:1", resolution=resolution), SPEC, SQUARE)
    assert got.width % 16 == 0
    assert got.height % 16 == 0
    assert 16 <= got.width <= MAX_SIDE
    assert 16 <= got.height <= MAX_SIDE


@given(ratio=st.floats(min_value=0.05, max_value=20, allow_nan=False))
def test_given_any_ratio_then_the_supported_ratio_chosen_is_the_log_nearest(ratio: float) -> None:
    supported = [int(w) / int(h) for w, h in (r.split(":") for r in SPEC.aspect_ratios)]
    best = min(_log_distance(ratio, s) for s in supported)
    chosen = nearest_ratio(ratio, SPEC.aspect_ratios)
    assert _log_distance(ratio, chosen) == pytest.approx(best)
    # and the image's own shape is that ratio, within what rounding sides to 16 px can move it
    got = target_size(request(aspect_ratio=f"{ratio}:1", resolution="1K"), SPEC, SQUARE)
    assert _log_distance(got.width / got.height, chosen) < math.log(1 + 16 / min(got.width, got.height))


def test_given_the_largest_seed_and_n_8_then_the_second_call_wraps_to_a_valid_seed() -> None:
    result = plan(request(n=8, options={"seed": str(2**32 - 1)}), SPEC, SQUARE)
    assert [c.payload["seed"] for c in result.calls] == [2**32 - 1, 3]


def test_given_n_10_then_three_calls_of_4_4_2_with_seeds_4_apart() -> None:
    result = plan(request(n=10, options={"seed": "100"}), SPEC, SQUARE)
    assert [c.num_images for c in result.calls] == [4, 4, 2]
    assert [c.payload["seed"] for c in result.calls] == [100, 104, 108]
    assert result.cost_usd == pytest.approx(0.6)


def test_given_model_parameters_then_they_are_typed_renamed_and_unknown_keys_pass_through() -> None:
    result = plan(
        request(
            options={"cfg_scale": "7", "enable_safety_checker": "false", "lora": {"scale": "1"}, "user": "u1"}
        ),
        SPEC,
        SQUARE,
        allow_safety_checker_off=True,
    )
    payload = result.calls[0].payload
    assert payload["guidance_scale"] == 7.0
    assert payload["enable_safety_checker"] is False
    assert payload["lora"] == {"scale": "1"}
    assert "user" not in payload
    assert result.ignored == ("user",)


def test_given_the_safety_checker_turned_off_when_the_operator_does_not_allow_it_then_bad_request() -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan(request(options={"enable_safety_checker": "false"}), SPEC, SQUARE)
    assert caught.value.param == "enable_safety_checker"
    assert (
        plan(request(options={"enable_safety_checker": "true"}), SPEC, SQUARE)
        .calls[0]
        .payload["enable_safety_checker"]
    )


def test_given_another_models_image_field_then_it_is_refused_under_every_model() -> None:
    o1 = next(m for m in MODELS if m.id == "hidream-o1-image-edit")
    for options, spec in (({"reference_image_urls": ["https://x"]}, SPEC), ({"image_url": "https://x"}, o1)):
        with pytest.raises(InvalidRequest):
            plan(request(options=options), spec, SQUARE)


@pytest.mark.parametrize(
    ("options", "param"),
    [({"mask": True}, "mask"), ({"stream": "true"}, "stream"), ({"guidance_scale": "3"}, "guidance_scale"),
     ({"image_url": "https://x"}, "image_url"), ({"num_inference_steps": "0"}, "num_inference_steps"),
     # passthrough keys that name or carry a URL, which only the gateway may send to fal
     ({"webhook_url": "http://169.254.169.254/"}, "webhook_url"),
     ({"reference_image_urls": ["http://10.0.0.1/a.png"]}, "reference_image_urls"),
     ({"image_urls": ["https://x/a.png"]}, "image_urls"), ({"callback": "x"}, "callback"),
     ({"loras": [{"path": "https://civitai.example/l.safetensors"}]}, "loras[0].path"),
     ({"extra": {"nested": "data:image/png;base64,AAAA"}}, "extra.nested")],
)  # fmt: skip
def test_given_a_parameter_the_model_cannot_take_then_it_is_refused_by_name(
    options: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan(request(options=options), SPEC, SQUARE)
    assert caught.value.param == param


def test_given_a_prompt_over_1000_characters_then_it_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan(request(prompt="x" * 1001), SPEC, SQUARE)
    assert caught.value.param == "prompt"


def test_given_webp_output_then_the_provider_is_asked_for_lossless_png() -> None:
    assert plan(request(output_format="webp"), SPEC, SQUARE).calls[0].payload["output_format"] == "png"
    assert plan(request(output_format="jpeg"), SPEC, SQUARE).calls[0].payload["output_format"] == "jpeg"


def test_given_a_target_above_the_working_scale_then_the_plan_says_it_is_upscaled() -> None:
    result = plan(request(size="2048x2048"), SPEC, SQUARE)
    assert result.provider_size == Size(1024, 1024)
    assert result.upscaled


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"n": 10, "size": "4096x4096"}, "n"), ({"n": 1, "size": "4096x4096", "output_format": "avif"}, "size"),
     ({"n": 10, "size": "2048x2048", "output_format": "avif"}, "n")],
)  # fmt: skip
def test_given_a_plan_whose_finishing_cannot_end_in_an_http_deadline_then_it_is_refused_naming_a_parameter(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan(request(**fields), SPEC, SQUARE).check_finish_fits(27.0)
    assert caught.value.param == param
    assert "batch" in caught.value.message


@pytest.mark.parametrize(
    "fields",
    [{"n": 1, "size": "4096x4096"}, {"n": 10}, {"n": 4, "size": "1024x1024", "output_format": "avif"},
     {"n": 10, "size": "2048x2048", "output_format": "jpeg"}, {"n": 10, "size": "2048x2048"}],
)  # fmt: skip
def test_given_a_plan_that_finishes_in_time_then_it_is_admitted(fields: dict[str, Any]) -> None:
    plan(request(**fields), SPEC, SQUARE).check_finish_fits(27.0)


def test_given_the_providers_own_bytes_are_the_answer_then_finishing_costs_nothing() -> None:
    assert plan(request(n=10), SPEC, Size(1024, 1024)).finish_seconds_per_image == 0.0


@pytest.mark.parametrize(
    ("fields", "memory_mb", "cpus", "slots"),
    [({"size": "4096x4096", "output_format": "avif"}, 1769, 2, 1),
     ({"size": "4096x4096", "output_format": "avif"}, 10240, 6, 6),
     ({"size": "1024x1024", "output_format": "avif"}, 1769, 2, 2),
     ({"size": "4096x4096", "output_format": "avif"}, 512, 2, 1)],
)  # fmt: skip
def test_given_a_plan_then_images_finish_side_by_side_as_far_as_vcpus_and_memory_allow(
    fields: dict[str, Any], memory_mb: int, cpus: int, slots: int
) -> None:
    assert plan(request(**fields), SPEC, SQUARE).finish_slots(memory_mb, cpus) == slots


# --- issue 15: typos, passthrough names at every depth, URL-like values ----------------------


@pytest.mark.parametrize(
    ("key", "meant"),
    [("promt", "prompt"), ("Prompt", "prompt"), ("prmopt", "prompt"), ("sed", "seed"), ("seeds", "seed"),
     ("negative_promt", "negative_prompt"), ("negative-prompt", "negative_prompt"),
     ("negativeprompt", "negative_prompt"), ("cfg_scal", "cfg_scale"), ("cfgscale", "cfg_scale"),
     ("num_infernce_steps", "num_inference_steps"), ("respone_format", "response_format"),
     ("output_fromat", "output_format"), ("aspectratio", "aspect_ratio"), ("resolutoin", "resolution"),
     ("sizes", "size"), ("mdoel", "model"), ("imgae", "image"), ("qaulity", "quality")],
)  # fmt: skip
def test_a_misspelt_field_is_a_400_unknown_parameter_saying_which_name_it_meant(key: str, meant: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan(request(options={key: "x"}), SPEC, SQUARE)
    assert caught.value.code == "unknown_parameter"
    assert caught.value.param == key
    assert caught.value.message == f"Unknown parameter '{key}': did you mean '{meant}'?"


@pytest.mark.parametrize(
    "key",
    ["foo", "lora", "loras", "extra", "strength", "acceleration", "steps", "guidance", "seed_offset",
     "image_prompt", "style_preset", "scheduler", "true_cfg", "safety_tolerance", "prompt_2",
     "negative_prompt_2", "resolution_mode", "image_size", "user_id", "a", "x", "fi", "nn"],
)  # fmt: skip
def test_given_a_passthrough_name_that_is_simply_different_then_it_is_sent_and_listed(key: str) -> None:
    result = plan(request(options={key: "1"}), SPEC, SQUARE)
    assert result.calls[0].payload[key] == "1"
    assert result.passthrough == (key,)


def test_given_a_name_the_model_knows_itself_then_it_is_never_taken_for_a_typo_of_another() -> None:
    o1 = next(m for m in MODELS if m.id == "hidream-o1-image-edit")
    # keep_original_aspect is o1's own: under hidream-e1-1 it passes through, under o1 it is typed.
    assert plan(request(options={"keep_original_aspect": "true"}), SPEC, SQUARE).passthrough == (
        "keep_original_aspect",
    )
    assert (
        plan(request(options={"keep_original_aspect": "true"}), o1, SQUARE)
        .calls[0]
        .payload["keep_original_aspect"]
        is True
    )
    with pytest.raises(InvalidRequest, match="did you mean 'keep_original_aspect'"):
        plan(request(options={"keep_orignal_aspect": "true"}), o1, SQUARE)


def test_given_known_ignored_and_unknown_keys_then_only_the_unknown_ones_are_listed_as_passthrough() -> None:
    result = plan(
        request(options={"seed": "1", "user": "u", "lora": {"scale": "1"}, "foo": "2"}), SPEC, SQUARE
    )
    assert result.passthrough == ("lora", "foo")
    assert result.ignored == ("user",)


@pytest.mark.parametrize(
    ("options", "param"),
    [({"a": {"webhook_url": "x"}}, "a.webhook_url"), ({"x": {"b": {"callback": "y"}}}, "x.b.callback"),
     ({"a": {"reference_image_urls": ["z"]}}, "a.reference_image_urls"),
     ({"a": [{"image_url": "z"}]}, "a[0].image_url"),
     ({"a": {"WEBHOOK\u200b_URL": "x"}}, "a.WEBHOOK\u200b_URL")],
)  # fmt: skip
def test_a_passthrough_name_that_names_a_url_is_refused_at_every_nesting_depth(
    options: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan(request(options=options), SPEC, SQUARE)
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.param == param


@pytest.mark.parametrize(
    "value",
    ["https:evil.example/x.png", "//evil.example/x", "http:\\\\evil.example\\x.png", "file:/etc/passwd",
     "https\uff1a//evil.example/x.png", "\u200bdata:image/png;base64,AAAA", "\ufeffhttps://evil.example/x",
     "  HTTPS:evil.example", "\\\\evil.example\\share", "ht\ntps://evil.example/x", "\x01file:/etc/passwd",
     "javascript:alert(1)", "see ftp://evil.example/a"],
)  # fmt: skip
def test_a_url_like_passthrough_value_without_a_plain_scheme_slash_slash_is_refused(value: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        plan(request(options={"note": {"deep": [value]}}), SPEC, SQUARE)
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.param == "note.deep[0]"


@pytest.mark.parametrize(
    "value",
    ["no text: blurry", "style: watercolor, soft light", "ratio 16:9", "a/b testing", "http", "files: none",
     "datum: 1", "café — crème brûlée", "", "https without a colon", "1:1"],
)  # fmt: skip
def test_given_prose_with_words_and_colons_then_the_passthrough_value_is_sent_as_it_is(value: str) -> None:
    result = plan(request(options={"note": value, "negative_prompt": "no text: blurry"}), SPEC, SQUARE)
    assert result.calls[0].payload["note"] == value
    assert result.calls[0].payload["negative_prompt"] == "no text: blurry"


@pytest.mark.parametrize(
    "value",
    ["data: a table of results", "File: report", "Data: sunny", "s3: bucket", "https: is secure", "// TODO"],
)
def test_given_prose_that_starts_with_a_scheme_word_and_a_colon_then_it_is_not_taken_for_a_url(
    value: str,
) -> None:
    result = plan(request(options={"caption": value}), SPEC, SQUARE)
    assert result.calls[0].payload["caption"] == value


@pytest.mark.parametrize("name", ["security", "during", "curious"])
def test_given_a_nested_passthrough_name_with_uri_inside_a_word_then_it_is_not_taken_for_a_url_name(
    name: str,
) -> None:
    result = plan(request(options={"meta": {name: "x"}}), SPEC, SQUARE)
    assert result.calls[0].payload["meta"] == {name: "x"}
