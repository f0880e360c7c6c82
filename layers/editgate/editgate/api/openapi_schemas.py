"""The OpenAPI document's schemas: the edit's fields, and the answers (ImagesResponse,
ErrorResponse, the dry run, the models) as the gateway writes them."""

from __future__ import annotations

from typing import Any, get_args

from editgate.domain.catalog import ASPECT_RATIOS, IGNORED_PARAMS, TIERS, ModelSpec, ParamKind
from editgate.domain.images import OUTPUT_FORMATS
from editgate.domain.models import MAX_COMPRESSION, MAX_N, EditRequest, Fit, ResponseFormat
from editgate.domain.normalize import MAX_SIDE, MIN_SIDE

PASSTHROUGH_PARAMS = {
    "type": "array",
    "items": {"type": "string"},
    "description": "Fields this gateway does not know, sent to fal unchanged: a misspelt name shows here.",
}


# What `resolution` may be (normalize.py's tiers and megapixels): a number, then K, MP or nothing.
RESOLUTION_PATTERN = r"^\s*\d{1,6}(\.\d{1,20})?\s*([kK]|[mM][pP])?\s*$"

_JSON_TYPES: dict[ParamKind, str] = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}


def edit_fields(specs: list[ModelSpec], model_ids: list[str]) -> dict[str, Any]:
    """The edit's parameters besides its images: OpenAI's, the gateway's, and every model's own."""
    defaults = {name: field.default for name, field in EditRequest.model_fields.items()}
    fields: dict[str, Any] = {
        "prompt": {"type": "string", "minLength": 1, "description": "What to change."},
        "model": {"type": "string", "enum": model_ids, "default": defaults["model"]},
        "n": {"type": "integer", "minimum": 1, "maximum": MAX_N, "default": defaults["n"]},
        "size": {
            "type": "string",
            "description": f"`WxH` ({MIN_SIDE}-{MAX_SIDE} a side), `W:H`, or `auto` (the input's size).",
            "examples": ["1024x1024", "16:9", "auto"],
        },
        "aspect_ratio": {"type": "string", "enum": list(ASPECT_RATIOS)},
        "resolution": {
            "type": "string",
            # normalize reads a tier ("1K", any number of K) or megapixels ("3", "0.25MP"): the
            # nearest of the model's tiers is used.
            "pattern": RESOLUTION_PATTERN,
            "description": (
                f"A tier ({', '.join(TIERS)}) or megapixels (e.g. `1`, `3`, `0.25MP`), above zero; the "
                "model's nearest tier is used."
            ),
            "examples": [*TIERS, "3", "0.25MP"],
        },
        "fit": {"type": "string", "enum": list(get_args(Fit)), "default": defaults["fit"]},
        "response_format": {
            "type": "string",
            "enum": list(get_args(ResponseFormat)),
            "default": defaults["response_format"],
        },
        "output_format": {
            "type": "string",
            "enum": list(OUTPUT_FORMATS),
            "default": defaults["output_format"],
        },
        "output_compression": {"type": "integer", "minimum": 0, "maximum": MAX_COMPRESSION},
        # Typed only in the JSON body (openapi.py): a multipart field is text, `true` or `false`.
        "stream": {
            "description": (
                "`true`: answer `text/event-stream`, one `image_edit.completed` event per image, its "
                "image as `b64_json` (so not with `response_format=url`). API Gateway sends the body "
                "whole: the events arrive together when the edit is done. No partial images."
            ),
        },
    }
    for spec in specs:
        for param in spec.params:
            bounds = {"minimum": param.ge, "maximum": param.le, "maxLength": param.max_length}
            fields.setdefault(
                param.name,
                {
                    "type": _JSON_TYPES[param.kind],
                    **{k: v for k, v in bounds.items() if v is not None},
                    "description": f"Sent to fal as `{param.field}` by the models that take it.",
                },
            )
    for name in IGNORED_PARAMS:
        fields[name] = {"description": "Accepted and ignored (listed in `metadata.ignored_params`)."}
    return fields


def schemas(specs: list[ModelSpec], model_ids: list[str]) -> dict[str, Any]:
    nullable_string = {"type": ["string", "null"]}
    failures = {
        "type": "array",
        "description": "What the answer is missing and why. A retryable failure makes the answer not final: "
        "the same request again collects the missing images without a second charge.",
        "items": {
            "type": "object",
            "properties": {
                "images": {"type": "integer"},
                "code": nullable_string,
                "message": {"type": "string"},
                "retryable": {"type": "boolean"},
            },
            "required": ["images", "code", "message", "retryable"],
        },
    }
    cost = {
        "type": "object",
        "properties": {"usd": {"type": "number"}, "images": {"type": "integer"}},
        "required": ["usd", "images"],
    }
    usage = {
        "type": "object",
        "description": "OpenAI's ImageGenUsage: fal bills by image, so every count is 0.",
        "properties": {
            "input_tokens": {"type": "integer"},
            "input_tokens_details": {
                "type": "object",
                "properties": {"text_tokens": {"type": "integer"}, "image_tokens": {"type": "integer"}},
                "required": ["text_tokens", "image_tokens"],
            },
            "output_tokens": {"type": "integer"},
            "total_tokens": {"type": "integer"},
        },
        "required": ["input_tokens", "input_tokens_details", "output_tokens", "total_tokens"],
    }
    metadata = {
        "type": "object",
        "description": "The gateway's facts about the edit (an extension of OpenAI's answer).",
        "properties": {
            "request_id": {"type": "string"},
            "model": {"type": "string", "enum": model_ids},
            "provider": {"type": "string"},
            "cost": cost,
            "provider_request_ids": {"type": "array", "items": {"type": "string"}},
            "ignored_params": {"type": "array", "items": {"type": "string"}},
            "passthrough_params": PASSTHROUGH_PARAMS,
            "resampled_from": nullable_string,
            "upscaled": {"type": "boolean"},
            "failures": failures,
            "replayed": {"type": "boolean"},
        },
        "required": ["request_id", "model", "cost", "replayed"],
    }
    return {
        "Health": {
            "type": "object",
            "properties": {
                "status": {"const": "ok"},
                "version": {"type": "string"},
                "fal_key_readable": {"type": "boolean", "description": "Whether fal's key is readable."},
            },
            "required": ["status", "version", "fal_key_readable"],
            "additionalProperties": False,
        },
        "ErrorResponse": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "param": nullable_string,
                        "code": nullable_string,
                    },
                    "required": ["message", "type", "param", "code"],
                }
            },
            "required": ["error"],
        },
        "ImagesResponse": {
            "type": "object",
            "properties": {
                "created": {"type": "integer"},
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "url": {"type": "string", "description": "A presigned S3 URL."},
                            "b64_json": {"type": "string"},
                        },
                        "minProperties": 1,
                    },
                },
                "size": {"type": "string"},
                "output_format": {"type": "string", "enum": list(OUTPUT_FORMATS)},
                "usage": usage,
                "metadata": metadata,
            },
            "required": ["created", "data"],
        },
        "ImageEditCompletedEvent": {
            "type": "object",
            "description": "One event of a `stream=true` answer (`event: image_edit.completed`, then this as "
            "`data:`), one per image.",
            "properties": {
                "type": {"const": "image_edit.completed"},
                "b64_json": {"type": "string"},
                "created_at": {"type": "integer"},
                "size": {"type": "string"},
                "quality": {"const": "auto"},
                "background": {"const": "auto"},
                "output_format": {"type": "string", "enum": list(OUTPUT_FORMATS)},
                "usage": usage,
                "metadata": metadata,
            },
            "required": [
                "type",
                "b64_json",
                "created_at",
                "size",
                "quality",
                "background",
                "output_format",
                "usage",
            ],
        },
        "EditDryRun": {
            "type": "object",
            "properties": {
                "object": {"const": "edit.dry_run"},
                "model": {"type": "string", "enum": model_ids},
                "provider": {"type": "string"},
                "endpoint_id": {"type": "string"},
                "provider_requests": {"type": "array", "items": {"type": "object"}},
                "size": {"type": "string"},
                "provider_size": {"type": "string"},
                "resampled": {"type": "boolean"},
                "upscaled": {"type": "boolean"},
                "output_format": {"type": "string"},
                "response_format": {"type": "string"},
                "ignored_params": {"type": "array", "items": {"type": "string"}},
                "passthrough_params": PASSTHROUGH_PARAMS,
                "cost": cost,
            },
            "required": ["object", "model", "provider_requests", "size", "cost"],
        },
        "Model": {
            "type": "object",
            "properties": {
                "id": {"type": "string", "enum": model_ids},
                "object": {"const": "model"},
                "created": {"type": "integer"},
                "owned_by": {"type": "string"},
                "editgate": {
                    "type": "object",
                    "description": "What the model takes, how each parameter is treated, and its price.",
                },
            },
            "required": ["id", "object", "created", "owned_by"],
        },
        "ModelList": {
            "type": "object",
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
            },
            "required": ["object", "data"],
        },
    }


# A 64x64 PNG (sky over grass), so that the document's example edit is one a client can send as it is.
