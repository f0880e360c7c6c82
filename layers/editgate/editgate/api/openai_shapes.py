"""The OpenAI Images API surface: requests in, answers and errors out. No HTTP framework here:
handlers pass in what they parsed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, get_args

from editgate.api.bodies import Form
from editgate.app.edit_service import EditOutcome
from editgate.app.preparing import Prepared
from editgate.domain import parameters
from editgate.domain.catalog import IGNORED_PARAMS, ModelSpec, ParamSpec
from editgate.domain.errors import InvalidRequest, NotFound
from editgate.domain.images import OUTPUT_FORMATS
from editgate.domain.json_values import MAX_DEPTH, json_text
from editgate.domain.models import MAX_COMPRESSION, MAX_N, EditRequest, EditResult, Fit, ResponseFormat

MAX_JSON_IMAGES = 16


# The multipart names that carry files; every other part is a text field.
_FILE_FIELDS = ("image", "image[]", "mask")


def request_from_form(form: Form) -> tuple[EditRequest, list[bytes]]:
    """An edit from a multipart body: the image files (``image`` or repeated ``image[]``) and
    every text field as sent (strings; ``a[b]`` and ``a[]`` names nest)."""
    for name in _FILE_FIELDS:
        if name in form.fields:
            param = "image" if name == "image[]" else name
            raise InvalidRequest(
                f"Invalid type for '{param}': expected a file, but got a string instead.",
                param=param,
                code="invalid_type",
            )
    for name in form.files:
        if name not in _FILE_FIELDS:
            raise InvalidRequest(
                f"Invalid type for '{name}': expected a string, but got a file instead.",
                param=name,
                code="invalid_type",
            )
    uploads = [*form.files.get("image", []), *form.files.get("image[]", [])]
    values = nest_fields(form.fields)
    if "mask" in form.files:
        values["mask"] = True
    return EditRequest.from_values(values), [upload.content for upload in uploads]


def request_from_json(body: object) -> tuple[EditRequest, list[str]]:
    """An edit from the JSON variant: ``{"images": [{"image_url": "https://…" | "data:…"}], "prompt": …}``."""
    if not isinstance(body, dict):
        raise InvalidRequest("The JSON body must be an object.", code="invalid_body")
    images = body.get("images")
    if not isinstance(images, list) or not 1 <= len(images) <= MAX_JSON_IMAGES:
        raise InvalidRequest(
            f"Invalid value for 'images': expected a list of 1 to {MAX_JSON_IMAGES} images.",
            param="images",
            code="missing_required_parameter" if images is None else "invalid_value",
        )
    urls = [_image_url(item, index) for index, item in enumerate(images)]
    return EditRequest.from_values({k: v for k, v in body.items() if k != "images"}), urls


def _image_url(item: object, index: int) -> str:
    if isinstance(item, dict) and "file_id" in item and "image_url" not in item:
        raise InvalidRequest(
            "Invalid value for 'images': file_id is not supported (this gateway has no Files API); "
            "send image_url.",
            param="images",
            code="unsupported_parameter",
        )
    url = item.get("image_url") if isinstance(item, dict) else None
    if not isinstance(url, str) or not url:
        raise InvalidRequest(
            f"Invalid value for 'images': images[{index}] must be an object with an 'image_url'.",
            param="images",
        )
    # No length check of its own: OpenAI allows 20 MB, and Lambda's 6 MB event is the bound here.
    return url


def streamed(request: EditRequest) -> tuple[EditRequest, bool]:
    """The edit without ``stream``, and whether its answer is a stream of events. A stream carries
    the images as base64 (OpenAI's events have ``b64_json`` only), so it is a ``b64_json`` edit,
    within the same 6 MB, and asking for URLs with it is a contradiction."""
    if "stream" not in request.options:
        return request, False
    options, stream = parameters.take_stream(request.options)
    if not stream:
        return request.model_copy(update={"options": options}), False
    if "response_format" in request.model_fields_set and request.response_format == "url":
        raise InvalidRequest(
            "A stream carries its images as b64_json: send stream=true without response_format=url, "
            "or ask for URLs without stream.",
            param="response_format",
            code="unsupported_parameter",
        )
    return request.model_copy(update={"options": options, "response_format": "b64_json"}), True


def model_object(spec: ModelSpec) -> dict[str, Any]:
    """OpenAI's model object, with the model's capabilities under ``editgate``."""
    return {
        "id": spec.id,
        "object": "model",
        "created": spec.created,
        "owned_by": spec.provider,
        "editgate": _capabilities(spec),
    }


def _capabilities(spec: ModelSpec) -> dict[str, Any]:
    """What ``GET /v1/models/{id}`` shows under ``editgate``: every rule a client can rely on."""
    return {
        "provider": spec.provider,
        "endpoint_id": spec.endpoint_id,
        "description": spec.description,
        "price": {
            "usd_per_image": spec.price_per_image_usd,
            "usd_per_megapixel": spec.price_per_megapixel_usd,
        },
        "max_n": MAX_N,
        "images_per_provider_call": spec.max_images_per_call,
        "native_size": {
            "field": spec.size_field,
            "max_area": spec.working_area,
            "multiple_of": spec.size_multiple,
        },
        "aspect_ratios": list(spec.aspect_ratios),
        "resolution_tiers": list(spec.resolution_tiers),
        "output_formats": {"native": list(spec.native_output_formats), "all": list(OUTPUT_FORMATS)},
        "parameters": {
            **_gateway_parameters(spec),
            **{p.name: _model_parameter(p) for p in spec.params},
            **{name: {"behaviour": "ignored"} for name in IGNORED_PARAMS},
            "mask": {"behaviour": "refused"},
        },
    }


def _gateway_parameters(spec: ModelSpec) -> dict[str, dict[str, Any]]:
    """OpenAI's parameters and the gateway's own, what becomes of each at the provider, and the
    value a request that leaves one out gets."""
    prompt_behaviour = "passthrough" if spec.prompt_field == "prompt" else "renamed"
    defaults = {name: field.default for name, field in EditRequest.model_fields.items()}
    return {
        "prompt": {
            "behaviour": prompt_behaviour,
            "field": spec.prompt_field,
            "max_length": spec.prompt_max_length,
            "required": True,
        },
        "image": {"behaviour": "converted", "field": spec.image_field, "max_images": 1},
        "size": {"behaviour": "converted", "field": spec.size_field},
        "aspect_ratio": {"behaviour": "converted"},
        "resolution": {"behaviour": "converted"},
        "fit": {"behaviour": "emulated", "values": list(get_args(Fit)), "default": defaults["fit"]},
        "n": {
            "behaviour": "emulated",
            "field": spec.num_images_field,
            "max_per_call": spec.max_images_per_call,
            "default": defaults["n"],
        },
        "response_format": {
            "behaviour": "emulated",
            "values": list(get_args(ResponseFormat)),
            "default": defaults["response_format"],
        },
        "output_format": {
            "behaviour": "converted",
            "field": spec.output_format_field,
            "default": defaults["output_format"],
        },
        "output_compression": {"behaviour": "emulated", "ge": 0, "le": MAX_COMPRESSION},
    }


def _model_parameter(param: ParamSpec) -> dict[str, Any]:
    bounds = {"ge": param.ge, "le": param.le, "max_length": param.max_length}
    return {
        "behaviour": param.behaviour,
        "field": param.field,
        "type": param.kind,
        **{k: v for k, v in bounds.items() if v is not None},
    }


def model_list(specs: Iterable[ModelSpec]) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(spec) for spec in specs]}


def model_answer(catalog: Mapping[str, ModelSpec], model_id: str) -> dict[str, Any]:
    """``GET /v1/models/{id}``: the model object, or OpenAI's 404 for a model it does not know."""
    spec = catalog.get(model_id)
    if spec is None:
        raise NotFound(f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
    return model_object(spec)


def generations_refused() -> InvalidRequest:
    """``POST /v1/images/generations``: these models edit, they do not generate."""
    return InvalidRequest(
        "The models of this gateway edit images and do not generate them from text: "
        "send the image and prompt to /v1/images/edits.",
        code="unsupported_operation",
    )


def nest_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``a[b]=1`` → ``{"a": {"b": "1"}}``, repeated ``a[]`` → ``{"a": [...]}``, as SDKs encode
    ``extra_body`` in multipart."""
    nested: dict[str, Any] = {}
    for name, value in fields.items():
        head, _, rest = name.partition("[")
        keys = [head, *rest.rstrip("]").split("][")] if rest and head else [name]
        if len(keys) > MAX_DEPTH:
            raise InvalidRequest(
                f"Invalid parameter name '{name[:64]}': names nest at most {MAX_DEPTH} levels deep.",
                code="invalid_body",
            )
        appends = keys[-1] == "" and len(keys) > 1
        path, last = (keys[:-2], keys[-2]) if appends else (keys[:-1], keys[-1])
        node = nested
        for key in path:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise _conflict(name, key)
        if last in node:
            raise _conflict(name, last)
        node[last] = (value if isinstance(value, list) else [value]) if appends else value
    return nested


def _conflict(name: str, key: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid parameter name '{name[:64]}': '{key}' is sent both as a value and as nested fields.",
        param=key,
        code="invalid_body",
    )


def edit_answer(outcome: EditOutcome | Prepared) -> dict[str, Any]:
    """The answer to ``POST /v1/images/edits``: the images, or what a dry run would do."""
    if isinstance(outcome, Prepared):
        return dry_run_answer(outcome)
    return images_response(outcome.result, replayed=outcome.replayed)


def dry_run_answer(prepared: Prepared) -> dict[str, Any]:
    """What the edit would send and cost, without calling the provider or storing anything."""
    plan, spec = prepared.plan, prepared.spec
    placeholder = f"<{len(prepared.image_uri):,}-character data:image/png;base64 URI, {plan.provider_size}>"
    return {
        "object": "edit.dry_run",
        "model": spec.id,
        "provider": spec.provider,
        "endpoint_id": spec.endpoint_id,
        "provider_requests": plan.payloads(placeholder),
        "size": str(plan.target),
        "provider_size": str(plan.provider_size),
        "resampled": plan.provider_size != plan.target,
        "upscaled": plan.upscaled,
        "output_format": plan.output_format,
        "response_format": plan.response_format,
        "ignored_params": list(plan.ignored),
        "passthrough_params": list(plan.passthrough),
        "cost": {"usd": plan.cost_usd, "images": sum(c.num_images for c in plan.calls)},
    }


def images_response(result: EditResult, *, replayed: bool = False) -> dict[str, Any]:
    """OpenAI's ImagesResponse, with the gateway's own facts under ``metadata``."""
    return {
        "created": result.created,
        "data": [
            # No revised_prompt: OpenAI's schema types it as a string, and these models rewrite nothing.
            {"url": image.url} if image.b64_json is None else {"b64_json": image.b64_json}
            for image in result.images
        ],
        "size": str(result.size),
        "output_format": result.output_format,
        "usage": _USAGE,
        "metadata": _metadata(result, replayed),
    }


def edit_events(outcome: EditOutcome) -> str:
    """The answer to ``stream=true``: one ``image_edit.completed`` event per image in OpenAI's
    shape, ``event:`` and ``data:`` lines as OpenAI streams them, each with the gateway's
    ``metadata``. HiDream makes no partial images: no ``image_edit.partial_image`` events (and
    ``partial_images`` is listed in ``metadata.ignored_params``)."""
    result = outcome.result
    metadata = _metadata(result, outcome.replayed)
    events = []
    for image in result.images:
        event = {
            "type": "image_edit.completed",
            "b64_json": image.b64_json,
            "created_at": result.created,
            "size": str(result.size),
            # These models take neither (they are ignored parameters): the model decides.
            "quality": "auto",
            "background": "auto",
            "output_format": result.output_format,
            "usage": _USAGE,
            "metadata": metadata,
        }
        events.append(f"event: image_edit.completed\ndata: {json_text(event)}\n\n")
    return "".join(events)


# OpenAI's ImageGenUsage, complete (clients that validate answers need every part): fal bills by
# image, not by token, so every count is 0; the price is in metadata.cost.
_USAGE = {
    "input_tokens": 0,
    "input_tokens_details": {"text_tokens": 0, "image_tokens": 0},
    "output_tokens": 0,
    "total_tokens": 0,
}


def _metadata(result: EditResult, replayed: bool) -> dict[str, Any]:
    return {
        "request_id": result.request_id,
        "model": result.model,
        "provider": result.provider,
        "cost": {"usd": result.cost_usd, "images": result.billed_images},
        "provider_request_ids": list(result.provider_request_ids),
        "ignored_params": list(result.ignored_params),
        "passthrough_params": list(result.passthrough_params),
        "resampled_from": str(result.resampled_from) if result.resampled_from else None,
        "upscaled": result.upscaled,
        "failures": [failure.model_dump() for failure in result.failures],
        "replayed": replayed,
    }
