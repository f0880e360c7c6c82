"""From a client's request to the plan of provider calls: validation, shape and scale, counts,
formats and parameters, by the rules in the README ("Normalization rules"). Pure: no I/O."""

from __future__ import annotations

import math
import re
from typing import Any

from editgate.domain import envelope, parameters
from editgate.domain.catalog import ModelSpec
from editgate.domain.errors import InvalidRequest
from editgate.domain.images import Size
from editgate.domain.models import EditRequest, Plan, ProviderCall

MIN_SIDE, MAX_SIDE = 64, 4096
TIER_AREAS = {"0.5K": 512 * 512, "1K": 1024 * 1024, "2K": 2048 * 2048, "4K": 4096 * 4096}
_SEED_RANGE = 2**32


def plan(
    request: EditRequest, spec: ModelSpec, input_size: Size, *, allow_safety_checker_off: bool = False
) -> Plan:
    """``allow_safety_checker_off``: the operator's choice (``ALLOW_SAFETY_CHECKER_OFF``) whether
    a client may send ``enable_safety_checker=false``."""
    _check_prompt(request.prompt, spec)
    target = target_size(request, spec, input_size)
    if request.response_format == "b64_json":
        envelope.check_answer_fits(request.n, target.area, request.output_format, str(target))
    provider_size = _provider_size(target, spec)
    base, ignored, passthrough = parameters.provider_fields(request.options, spec)
    if base.get("enable_safety_checker") is False and not allow_safety_checker_off:
        raise InvalidRequest(
            "Invalid value for 'enable_safety_checker': this gateway's operator does not allow "
            "turning the provider's safety checker off.",
            param="enable_safety_checker",
            code="unsupported_parameter",
        )
    base[spec.prompt_field] = request.prompt
    if spec.size_field:
        base[spec.size_field] = {"width": provider_size.width, "height": provider_size.height}
    # A format the model cannot make is asked for lossless and converted.
    native = request.output_format in spec.native_output_formats
    base[spec.output_format_field] = request.output_format if native else "png"
    return Plan(
        model=spec,
        calls=_split_calls(base, request.n, spec),
        target=target,
        provider_size=provider_size,
        fit=request.fit,
        output_format=request.output_format,
        output_compression=request.output_compression,
        response_format=request.response_format,
        ignored=tuple(ignored),
        passthrough=tuple(passthrough),
        cost_usd=spec.price_usd(request.n, provider_size.width, provider_size.height),
    )


def _check_prompt(prompt: str, spec: ModelSpec) -> None:
    if len(prompt) > spec.prompt_max_length:
        raise InvalidRequest(
            f"Invalid value for 'prompt': at most {spec.prompt_max_length} characters are accepted, "
            f"got {len(prompt)}.",
            param="prompt",
            code="string_above_max_length",
        )


def _split_calls(base: dict[str, Any], n: int, spec: ModelSpec) -> tuple[ProviderCall, ...]:
    """``n`` images as provider calls of at most ``max_images_per_call`` each."""
    calls = []
    per_call = spec.max_images_per_call
    seed = base.get("seed")
    for k, start in enumerate(range(0, n, per_call)):
        payload = {**base, spec.num_images_field: min(per_call, n - start)}
        if seed is not None:
            # Every image differs and the set is reproducible; wrapped to stay a seed fal accepts
            # (the catalog's own bound, 0 to 2^32 - 1).
            payload["seed"] = (seed + k * per_call) % _SEED_RANGE
        calls.append(ProviderCall(payload=payload, num_images=payload[spec.num_images_field]))
    return tuple(calls)


# --- shape and scale -------------------------------------------------------------------------

# Numbers of at most 6 digits (and 20 decimals): nothing longer is a size, and Python refuses to
# read integers past 4,300 digits.
_NUMBER = r"(\d{1,6}(?:\.\d{1,20})?)"
_WXH = re.compile(r"^\s*(\d{1,6})\s*[xX\u00d7]\s*(\d{1,6})\s*$")
_RATIO = re.compile(rf"^\s*{_NUMBER}\s*:\s*{_NUMBER}\s*$")
_TIER = re.compile(rf"^\s*{_NUMBER}\s*[kK]\s*$")
_MEGAPIXELS = re.compile(rf"^\s*{_NUMBER}\s*(?:[mM][pP])?\s*$")


def target_size(request: EditRequest, spec: ModelSpec, input_size: Size) -> Size:
    """The WxH the answer's images will have."""
    aspect_ratio = request.aspect_ratio
    if request.size is not None and request.size.strip().lower() != "auto":
        wxh = _WXH.match(request.size)
        if wxh:
            width, height = int(wxh.group(1)), int(wxh.group(2))
            if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
                raise InvalidRequest(
                    f"Invalid value for 'size': each side must be {MIN_SIDE}-{MAX_SIDE} pixels, "
                    f"got '{clipped(request.size)}'.",
                    param="size",
                )
            return Size(width, height)  # size fixes shape and scale
        if not _RATIO.match(request.size):
            raise InvalidRequest(
                f"Invalid value for 'size': expected 'WxH' (e.g. 1024x1024), 'W:H' or 'auto', "
                f"got '{clipped(request.size)}'.",
                param="size",
            )
        aspect_ratio = request.size  # "W:H" is an aspect ratio
        param = "size"
    else:
        param = "aspect_ratio"

    largest_tier = max(TIER_AREAS[t] for t in spec.resolution_tiers)
    if aspect_ratio is None and request.resolution is None:
        if input_size.area <= largest_tier:
            return input_size  # the model's own behaviour: the input's size
        return _bounded(input_size.width / input_size.height, largest_tier, spec.size_multiple)
    ratio = (
        nearest_ratio(_parse_ratio(aspect_ratio, param), spec.aspect_ratios)
        if aspect_ratio is not None
        else input_size.width / input_size.height
    )
    area = (
        nearest_tier_area(_parse_resolution(request.resolution), spec.resolution_tiers)
        if request.resolution is not None
        else min(input_size.area, largest_tier)
    )
    return _bounded(ratio, area, spec.size_multiple)


def clipped(value: str, limit: int = 64) -> str:
    """A client's value as an error message quotes it: never more than ``limit`` characters."""
    return value if len(value) <= limit else f"{value[:limit]}…"


def _ratio_value(text: str) -> float:
    width, height = text.split(":")
    return float(width) / float(height)


def _parse_ratio(text: str, param: str) -> float:
    match = _RATIO.match(text)
    if not match or float(match.group(1)) <= 0 or float(match.group(2)) <= 0:
        raise InvalidRequest(
            f"Invalid value for '{param}': expected an aspect ratio 'W:H' of positive numbers, "
            f"got '{clipped(text)}'.",
            param=param,
        )
    return float(match.group(1)) / float(match.group(2))


def _parse_resolution(text: str) -> float:
    """A tier ("1K") or megapixels ("1", "0.25") as an area in pixels."""
    tier, megapixels = _TIER.match(text), _MEGAPIXELS.match(text)
    value = float(tier.group(1)) if tier else float(megapixels.group(1)) if megapixels else 0.0
    if value <= 0:
        raise InvalidRequest(
            f"Invalid value for 'resolution': expected a tier (0.5K, 1K, 2K, 4K) or megapixels "
            f"(0.25, 1, 4, 16), got '{clipped(text)}'.",
            param="resolution",
        )
    return (value * 1024) ** 2 if tier else value * 1024 * 1024


def nearest_ratio(ratio: float, supported: tuple[str, ...]) -> float:
    """The supported ratio nearest in log space; on a tie, the squarer one."""
    return min(
        (_ratio_value(s) for s in supported),
        key=lambda r: (round(abs(math.log(ratio) - math.log(r)), 12), abs(math.log(r))),
    )


def nearest_tier_area(area: float, tiers: tuple[str, ...]) -> int:
    """The tier area nearest in log space; on a tie, the smaller one."""
    return min(
        (TIER_AREAS[t] for t in tiers), key=lambda a: (round(abs(math.log(area) - math.log(a)), 12), a)
    )


def _bounded(ratio: float, area: float, multiple: int) -> Size:
    """Sides for ``ratio`` and ``area``, multiples of ``multiple``, the longer at most MAX_SIDE."""
    width, height = math.sqrt(area * ratio), math.sqrt(area / ratio)
    scale = min(1.0, MAX_SIDE / max(width, height))
    return Size(_round_to(width * scale, multiple), _round_to(height * scale, multiple))


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, min(MAX_SIDE, round(value / multiple) * multiple))


def _provider_size(target: Size, spec: ModelSpec) -> Size:
    """The fitted input's size: the target's shape at the model's working scale or below."""
    ratio = target.width / target.height
    area = min(target.area, spec.working_area)
    width = max(
        spec.size_multiple, math.floor(math.sqrt(area * ratio) / spec.size_multiple) * spec.size_multiple
    )
    height = max(
        spec.size_multiple, math.floor(math.sqrt(area / ratio) / spec.size_multiple) * spec.size_multiple
    )
    return Size(width, height)
