"""Per catalog entry, the provider payload for every parameter behaviour (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from editgate.domain.catalog import MODELS, ModelSpec
from editgate.domain.errors import InvalidRequest
from editgate.domain.images import Size
from editgate.domain.models import EditRequest
from editgate.domain.normalize import plan
from editgate.wiring import build_catalog
from editgate_local.fal_emulator import SCHEMAS
from tests.conftest import make_settings

SETTINGS = make_settings()
CATALOG = build_catalog(SETTINGS)
INPUT = Size(1200, 800)


def payload_for(spec: ModelSpec, **fields: Any) -> dict[str, Any]:
    request = EditRequest.model_validate({"prompt": "edit it", "model": spec.id, **fields})
    # The operator's switch is on here: the catalog's own typing of the flag is what is tested.
    result = plan(request, spec, INPUT, allow_safety_checker_off=True)
    return result.payloads("data:image/png;base64,AAAA")[0]


@pytest.mark.parametrize("spec", CATALOG.values(), ids=lambda s: s.id)
def test_given_each_model_then_every_parameter_behaves_as_its_catalog_entry_says(spec: ModelSpec) -> None:
    # passthrough and renamed: typed from strings, under the provider's field name
    for param in spec.params:
        value = {"int": "7", "float": "2.5", "bool": "false", "str": "text"}[param.kind]
        expected = {"int": 7, "float": 2.5, "bool": False, "str": "text"}[param.kind]
        payload = payload_for(spec, options={param.name: value})
        assert payload[param.field] == expected, param.name
        if param.behaviour == "renamed":
            assert param.name not in payload
    # the prompt and the image under the provider's names
    payload = payload_for(spec)
    assert payload[spec.prompt_field] == "edit it"
    image = payload[spec.image_field]
    assert image == (
        ["data:image/png;base64,AAAA"] if spec.image_field_is_list else "data:image/png;base64,AAAA"
    )
    # converted: the size the provider works at (a field where the model has one)
    payload = payload_for(spec, size="1920x1080")
    if spec.size_field:
        width, height = payload[spec.size_field]["width"], payload[spec.size_field]["height"]
        assert width * height <= spec.working_area
        assert width % 16 == 0
        assert height % 16 == 0
    else:
        assert "image_size" not in payload
    # emulated: n beyond one call, and formats the provider lacks
    calls = plan(EditRequest(prompt="p", model=spec.id, n=6), spec, INPUT).calls
    assert [c.payload[spec.num_images_field] for c in calls] == [4, 2]
    assert payload_for(spec, output_format="avif")[spec.output_format_field] == "png"
    assert payload_for(spec, output_format="jpeg")[spec.output_format_field] == "jpeg"
    # ignored, unknown and refused keys
    ignored = plan(EditRequest(prompt="p", model=spec.id, options={"quality": "high"}), spec, INPUT)
    assert ignored.ignored == ("quality",)
    assert "quality" not in ignored.calls[0].payload
    assert payload_for(spec, options={"lora_scale": "0.5"})["lora_scale"] == "0.5"
    with pytest.raises(InvalidRequest) as caught:
        payload_for(spec, options={"mask": True})
    assert caught.value.param == "mask"


def test_given_a_provider_field_in_a_fal_error_then_the_client_name_is_reported() -> None:
    assert CATALOG["hidream-e1-1"].client_name("guidance_scale") == "cfg_scale"
    assert CATALOG["hidream-e1-1"].client_name("image_url") == "image"
    assert CATALOG["hidream-o1-image-edit"].client_name("reference_image_urls") == "image"
    assert CATALOG["hidream-o1-image-edit"].client_name("image_size") == "size"
    assert CATALOG["hidream-e1-1"].client_name("num_images") == "n"


def test_every_catalog_endpoint_is_served_by_the_emulator_with_its_own_schema() -> None:
    assert {spec.endpoint_id for spec in MODELS} <= set(SCHEMAS)
    assert SCHEMAS["fal-ai/hidream-o1-image/edit"] is not SCHEMAS["fal-ai/hidream-e1-1"]


def test_given_an_endpoint_override_then_the_model_uses_it() -> None:
    settings = make_settings(fal_endpoints={"hidream-e1-1": "fal-ai/hidream-e1-2"})
    assert build_catalog(settings)["hidream-e1-1"].endpoint_id == "fal-ai/hidream-e1-2"
    assert build_catalog(settings)["hidream-e1-full"].endpoint_id == "fal-ai/hidream-e1-full"


def test_given_a_model_priced_per_megapixel_then_the_cost_follows_the_provider_size() -> None:
    spec = CATALOG["hidream-o1-image-edit"]
    result = plan(EditRequest(prompt="p", model=spec.id, size="2048x2048", n=2), spec, INPUT)
    assert result.cost_usd == pytest.approx(2 * 0.01 * 2048 * 2048 / 1_000_000)
    assert plan(EditRequest(prompt="p", n=3), CATALOG["hidream-e1-1"], INPUT).cost_usd == pytest.approx(0.18)
