"""The model catalog: what each model takes and can do, as data.

A new fal model is a new entry here (and, if its endpoint moves, a ``FAL_ENDPOINTS`` setting),
not new branches elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

ParamKind = Literal["int", "float", "bool", "str"]


class ParamSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # the name a client sends
    field: str  # the provider's field name
    kind: ParamKind
    ge: float | None = None
    le: float | None = None
    max_length: int | None = None

    @property
    def behaviour(self) -> Literal["passthrough", "renamed"]:
        return "passthrough" if self.name == self.field else "renamed"


ASPECT_RATIOS = (
    "1:1", "5:4", "4:5", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16",
    "2:1", "1:2", "21:9", "9:21", "4:1", "1:4", "8:1", "1:8",
)  # fmt: skip
TIERS = ("0.5K", "1K", "2K", "4K")
# Parameters a client may send that no HiDream model has: accepted, ignored, and listed as
# ignored in the answer's metadata.
IGNORED_PARAMS = ("quality", "background", "style", "user", "input_fidelity", "partial_images")


class ModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    endpoint_id: str
    description: str
    provider: str = "fal"
    created: int  # when the model came out, as OpenAI's model objects carry it
    # How the provider takes the edit: its field names and native abilities.
    prompt_field: str = "prompt"
    image_field: str = "image_url"
    image_field_is_list: bool = False
    num_images_field: str = "num_images"
    max_images_per_call: int = 4
    output_format_field: str = "output_format"
    native_output_formats: tuple[str, ...] = ("png", "jpeg")
    # A field that takes the output's {width, height}; None: the output follows the input.
    size_field: str | None = None
    # The model works at most at this many pixels, sides multiples of size_multiple.
    working_area: int = 1024 * 1024
    size_multiple: int = 16
    prompt_max_length: int = 1000
    # Shapes and scales a client may ask for (the nearest is used; see normalize).
    aspect_ratios: tuple[str, ...] = ASPECT_RATIOS
    resolution_tiers: tuple[str, ...] = TIERS
    price_per_image_usd: float | None = None
    price_per_megapixel_usd: float | None = None
    params: tuple[ParamSpec, ...] = ()

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)

    def client_name(self, provider_field: str) -> str:
        """The name a client knows a provider field by (for errors fal reports)."""
        names = {self.prompt_field: "prompt", self.image_field: "image", self.num_images_field: "n"}
        if self.size_field:
            names[self.size_field] = "size"
        names.update({p.field: p.name for p in self.params})
        return names.get(provider_field, provider_field)

    def price_usd(self, images: int, width: int, height: int) -> float:
        if self.price_per_megapixel_usd is not None:
            return round(images * self.price_per_megapixel_usd * width * height / 1_000_000, 6)
        return round(images * (self.price_per_image_usd or 0.0), 6)


_SAFETY_AND_DELIVERY = (
    ParamSpec(name="enable_safety_checker", field="enable_safety_checker", kind="bool"),
    ParamSpec(name="sync_mode", field="sync_mode", kind="bool"),
)
_SEED = ParamSpec(name="seed", field="seed", kind="int", ge=0, le=2**32 - 1)
_CFG = ParamSpec(name="cfg_scale", field="guidance_scale", kind="float", ge=0, le=20)
_STEPS = ParamSpec(name="num_inference_steps", field="num_inference_steps", kind="int", ge=1, le=50)
_HIDREAM_E1_PARAMS = (
    ParamSpec(name="negative_prompt", field="negative_prompt", kind="str", max_length=1000),
    _SEED,
    _CFG,
    ParamSpec(name="image_guidance_scale", field="image_guidance_scale", kind="float", ge=0, le=20),
    _STEPS,
    *_SAFETY_AND_DELIVERY,
    ParamSpec(name="target_image_description", field="target_image_description", kind="str", max_length=1000),
)

DEFAULT_MODEL = "hidream-e1-1"
_HIDREAM_E1_1 = ModelSpec(
    id="hidream-e1-1",
    endpoint_id="fal-ai/hidream-e1-1",
    description="HiDream-E1.1 instruction-based editing, about 1 MP",
    created=1752624000,
    price_per_image_usd=0.06,
    params=_HIDREAM_E1_PARAMS,
)
MODELS = (
    _HIDREAM_E1_1,
    _HIDREAM_E1_1.model_copy(
        update={
            "id": "hidream-e1-full",
            "endpoint_id": "fal-ai/hidream-e1-full",
            "description": "HiDream-E1 Full (deprecated by fal), the same input as hidream-e1-1",
            "created": 1745366400,
        }
    ),
    ModelSpec(
        id="hidream-o1-image-edit",
        endpoint_id="fal-ai/hidream-o1-image/edit",
        description="HiDream-O1-Image editing, native output size up to about 2048x2048",
        created=1777593600,
        image_field="reference_image_urls",
        image_field_is_list=True,
        native_output_formats=("png", "jpeg", "webp"),
        size_field="image_size",
        working_area=2048 * 2048,
        price_per_megapixel_usd=0.01,
        params=(
            _SEED,
            _CFG,
            _STEPS,
            ParamSpec(name="keep_original_aspect", field="keep_original_aspect", kind="bool"),
            *_SAFETY_AND_DELIVERY,
        ),
    ),
)


def with_endpoints(endpoints: Mapping[str, str]) -> dict[str, ModelSpec]:
    """The catalog by model id, with the fal endpoint ids a deployment overrides (model id →
    endpoint id: ``FAL_ENDPOINTS``)."""
    return {m.id: m.model_copy(update={"endpoint_id": endpoints.get(m.id, m.endpoint_id)}) for m in MODELS}
