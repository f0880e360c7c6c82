"""Everything before the paid call: the input image read, the plan made, the provider's input
encoded. A dry run stops here."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from editgate.app import timing
from editgate.app.services import InputImage, Services
from editgate.domain import images, normalize
from editgate.domain.catalog import ModelSpec
from editgate.domain.errors import InvalidRequest
from editgate.domain.images import CONTENT_TYPES
from editgate.domain.models import EditRequest, Plan


@dataclass(frozen=True)
class Prepared:
    """An edit ready for the provider: its model, plan and input image (and the input's
    transparency, which the answer gets back)."""

    spec: ModelSpec
    plan: Plan
    image_uri: str
    alpha: Image.Image | None


def prepare(
    request: EditRequest, inputs: Sequence[InputImage], services: Services, deadline: float
) -> Prepared:
    """Validation, the plan, the provider's input image; refuses before anything is paid."""
    spec = services.model(request.model)
    data = _the_one_input(inputs, spec, services, deadline)
    limits = services.limits
    with timing.phase("decode"):  # the header: format, size, orientation
        upload = images.UploadedImage(data, param="image", max_pixels=limits.max_input_pixels)
    plan = normalize.plan(
        request, spec, upload.size, allow_safety_checker_off=limits.allow_safety_checker_off
    )
    plan.check_finish_fits(deadline - time.monotonic())
    if upload.sendable_as_is(plan.provider_size):  # nothing to change: fal gets the upload itself
        return Prepared(spec, plan, images.to_data_uri(data, f"image/{upload.format}"), None)
    with timing.phase("decode"):
        source = upload.decoded()
    with timing.phase("fit"):
        fitted = images.fit(images.flatten_on_white(source), plan.provider_size, plan.fit)
    with timing.phase("encode-input"):
        image_uri = images.to_data_uri(images.encode(fitted, "png"), CONTENT_TYPES["png"])
    return Prepared(spec, plan, image_uri, images.alpha_at(source, plan.target, plan.fit))


def _the_one_input(
    inputs: Sequence[InputImage], spec: ModelSpec, services: Services, deadline: float
) -> bytes:
    if not inputs:
        raise InvalidRequest(
            "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
        )
    if len(inputs) > 1:
        raise InvalidRequest(
            f"{spec.id} edits one image at a time; {len(inputs)} were sent.",
            param="image",
            code="too_many_images",
        )
    if isinstance(inputs[0], bytes):
        return inputs[0]
    with timing.phase("fetch"):
        return services.fetcher.fetch(inputs[0], deadline)
