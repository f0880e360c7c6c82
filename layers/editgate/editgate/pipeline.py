"""The one function that does an edit, whatever the transport: ``edit``."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from editgate import images, normalize
from editgate.catalog import ModelSpec, build_catalog
from editgate.errors import InvalidRequest, UpstreamError
from editgate.fal import FalClient, FalOutput, ProviderRejected
from editgate.images import CONTENT_TYPES, OutputFormat, Size
from editgate.normalize import EditRequest, Plan
from editgate.settings import Settings
from editgate.storage import ResultStore

logger = Logger(child=True)


@dataclass
class Services:
    """What an edit needs, built once per cold start."""

    settings: Settings
    fal: FalClient
    store: ResultStore
    catalog: dict[str, ModelSpec] = field(default_factory=dict)

    def model(self, model_id: str) -> ModelSpec:
        spec = self.catalog.get(model_id)
        if spec is None:
            known = ", ".join(sorted(self.catalog))
            raise InvalidRequest(
                f"Invalid value for 'model': '{model_id}' is not a model of this gateway (known: {known}).",
                param="model",
                code="model_not_found",
            )
        return spec

    @classmethod
    def create(cls, settings: Settings, fal: FalClient, store: ResultStore) -> Services:
        return cls(settings=settings, fal=fal, store=store, catalog=build_catalog(settings))


class EditedImage(BaseModel):
    url: str | None = None
    b64_json: str | None = None


class EditResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    created: int
    request_id: str
    model: str
    provider: str
    images: tuple[EditedImage, ...]
    size: Size
    output_format: OutputFormat
    cost_usd: float
    provider_request_ids: tuple[str, ...]
    ignored_params: tuple[str, ...]
    resampled_from: Size | None  # the provider's size, when the answer's was reached by resampling
    upscaled: bool


def edit(
    request: EditRequest, inputs: list[bytes], services: Services, *, request_id: str, deadline: float
) -> EditResult:
    """Validate, plan, run on the provider, finish and deliver one edit. Raises ``EditgateError``s."""
    spec = services.model(request.model)
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
    source = images.decode_input(inputs[0], param="image", max_pixels=services.settings.max_input_pixels)
    plan = normalize.plan(request, spec, Size(*source.size))
    provider_input = images.encode(
        images.fit(images.flatten_on_white(source), plan.provider_size, plan.fit), "png"
    )
    image_uri = images.to_data_uri(provider_input, CONTENT_TYPES["png"])

    def run(payload: dict[str, object]) -> FalOutput:
        try:
            return services.fal.run(spec.endpoint_id, {**payload, spec.image_field: image_uri}, deadline)
        except ProviderRejected as exc:
            name = spec.client_name(exc.param) if exc.param else None
            raise InvalidRequest(exc.message.replace(f"'{exc.param}'", f"'{name}'"), param=name) from None

    with ThreadPoolExecutor(max_workers=len(plan.calls)) as pool:
        outputs = list(pool.map(run, [call.payload for call in plan.calls]))
        urls = [image.url for output in outputs for image in output.images]
        finished = list(pool.map(lambda url: _finish(services.fal.fetch(url, deadline), plan), urls))
    delivered = [
        _deliver(data, index, plan, services.store, request_id) for index, data in enumerate(finished)
    ]
    return EditResult(
        created=int(time.time()),
        request_id=request_id,
        model=spec.id,
        provider=spec.provider,
        images=tuple(delivered),
        size=plan.target,
        output_format=plan.output_format,
        cost_usd=round(len(delivered) * spec.price_per_image_usd, 6),
        provider_request_ids=tuple(o.request_id for o in outputs),
        ignored_params=plan.ignored,
        resampled_from=plan.provider_size if plan.provider_size != plan.target else None,
        upscaled=plan.upscaled,
    )


def _finish(data: bytes, plan: Plan) -> bytes:
    try:
        return images.finish(data, plan.target, plan.output_format, compression=plan.output_compression)
    except ValueError:
        raise UpstreamError("The provider returned an unreadable image.") from None


def _deliver(data: bytes, index: int, plan: Plan, store: ResultStore, request_id: str) -> EditedImage:
    if plan.response_format == "b64_json":
        return EditedImage(b64_json=base64.b64encode(data).decode("ascii"))
    key = store.key_for(request_id, index, plan.output_format)
    store.put(key, data, CONTENT_TYPES[plan.output_format])
    return EditedImage(url=store.presign(key))
