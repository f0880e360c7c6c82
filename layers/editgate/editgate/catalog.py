"""The model catalog: what each model takes and can do, as data.

A new fal model is a new entry here, not new branches elsewhere.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from editgate.settings import Settings

ParamKind = Literal["int", "float", "bool", "str"]
Behaviour = Literal["passthrough", "renamed"]


class ParamSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # the name a client sends
    field: str  # the provider's field name
    kind: ParamKind
    ge: float | None = None
    le: float | None = None
    max_length: int | None = None

    @property
    def behaviour(self) -> Behaviour:
        return "passthrough" if self.name == self.field else "renamed"


ASPECT_RATIOS = (
    "1:1", "5:4", "4:5", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16",
    "2:1", "1:2", "21:9", "9:21", "4:1", "1:4", "8:1", "1:8",
)  # fmt: skip


class ModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    endpoint_id: str
    provider: str = "fal"
    prompt_field: str = "prompt"
    image_field: str = "image_url"
    num_images_field: str = "num_images"
    max_images_per_call: int = 4
    output_format_field: str = "output_format"
    native_output_formats: tuple[str, ...] = ("png", "jpeg")
    # The model works at about this many pixels, sides multiples of size_multiple.
    working_area: int = 1024 * 1024
    size_multiple: int = 16
    prompt_max_length: int = 1000
    # Shapes and scales a client may ask for (the nearest is used; see normalize).
    aspect_ratios: tuple[str, ...] = ASPECT_RATIOS
    resolution_tiers: tuple[str, ...] = ("0.5K", "1K", "2K", "4K")
    price_per_image_usd: float
    params: tuple[ParamSpec, ...] = ()

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)

    def client_name(self, provider_field: str) -> str:
        """The name a client knows a provider field by (for errors fal reports)."""
        if provider_field == self.prompt_field:
            return "prompt"
        if provider_field == self.image_field:
            return "image"
        if provider_field == self.num_images_field:
            return "n"
        return next((p.name for p in self.params if p.field == provider_field), provider_field)


# Parameters a client may send that no HiDream model has: accepted, ignored, and listed as
# ignored in the answer's metadata.
IGNORED_PARAMS = ("quality", "background", "style", "user", "input_fidelity", "partial_images")

_HIDREAM_E1_PARAMS = (
    ParamSpec(name="negative_prompt", field="negative_prompt", kind="str", max_length=1000),
    ParamSpec(name="seed", field="seed", kind="int", ge=0, le=2**32 - 1),
    ParamSpec(name="cfg_scale", field="guidance_scale", kind="float", ge=0, le=20),
    ParamSpec(name="image_guidance_scale", field="image_guidance_scale", kind="float", ge=0, le=20),
    ParamSpec(name="num_inference_steps", field="num_inference_steps", kind="int", ge=1, le=50),
    ParamSpec(name="enable_safety_checker", field="enable_safety_checker", kind="bool"),
    ParamSpec(name="sync_mode", field="sync_mode", kind="bool"),
    ParamSpec(name="target_image_description", field="target_image_description", kind="str", max_length=1000),
)

DEFAULT_MODEL = "hidream-e1-1"


def build_catalog(settings: Settings) -> dict[str, ModelSpec]:
    models = [
        ModelSpec(
            id="hidream-e1-1",
            endpoint_id=settings.fal_endpoint_hidream_e1_1,
            price_per_image_usd=0.06,
            params=_HIDREAM_E1_PARAMS,
        ),
        ModelSpec(
            id="hidream-e1-full",
            endpoint_id=settings.fal_endpoint_hidream_e1_full,
            price_per_image_usd=0.06,
            params=_HIDREAM_E1_PARAMS,
        ),
    ]
    return {m.id: m for m in models}
