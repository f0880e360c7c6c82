"""From a client's request to the plan of provider calls: validation, shape and scale, counts,
formats and parameters, by the rules in the README ("Normalization rules"). Pure: no I/O."""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from editgate import bodies
from editgate.catalog import IGNORED_PARAMS, MODELS, ModelSpec, ParamSpec
from editgate.errors import InvalidRequest
from editgate.images import Size
from editgate.models import EditRequest, Plan, ProviderCall

MIN_SIDE, MAX_SIDE = 64, 4096
TIER_AREAS = {"0.5K": 512 * 512, "1K": 1024 * 1024, "2K": 2048 * 2048, "4K": 4096 * 4096}
_SEED_RANGE = 2**32
# Lambda's synchronous response limit, which a b64_json answer must fit.
LAMBDA_RESPONSE_LIMIT = 6_291_456
# The most bytes a pixel can take in each format (incompressible RGBA for the lossless ones), so
# that a b64_json answer that might not fit is refused before anything is paid for. Checked
# against encoded noise by tests/unit/test_images.py.
WORST_BYTES_PER_PIXEL = {"png": 4.1, "webp": 4.1, "avif": 3.6, "jpeg": 3.0, "gif": 1.5}


def plan(
    request: EditRequest, spec: ModelSpec, input_size: Size, *, allow_safety_checker_off: bool = False
) -> Plan:
    """``allow_safety_checker_off``: the operator's choice (``ALLOW_SAFETY_CHECKER_OFF``) whether
    a client may send ``enable_safety_checker=false``."""
    _check_prompt(request.prompt, spec)
    target = target_size(request, spec, input_size)
    if request.response_format == "b64_json":
        _check_answer_fits(request, target)
    provider_size = _provider_size(target, spec)
    base, ignored, passthrough = _provider_fields(request.options, spec)
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


def _check_answer_fits(request: EditRequest, target: Size) -> None:
    """A b64_json answer that might not fit Lambda's response is refused before anything is paid."""
    worst = request.n * target.area * WORST_BYTES_PER_PIXEL[request.output_format] * 4 / 3
    if worst > LAMBDA_RESPONSE_LIMIT:
        raise InvalidRequest(
            f"{request.n} image(s) of {target} as {request.output_format} in base64 may exceed Lambda's "
            f"{LAMBDA_RESPONSE_LIMIT:,}-byte response limit: use response_format=url "
            "(or a smaller n or size).",
            param="response_format",
            code="response_too_large",
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
                    f"got '{shown(request.size)}'.",
                    param="size",
                )
            return Size(width, height)  # size fixes shape and scale
        if not _RATIO.match(request.size):
            raise InvalidRequest(
                f"Invalid value for 'size': expected 'WxH' (e.g. 1024x1024), 'W:H' or 'auto', "
                f"got '{shown(request.size)}'.",
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


def shown(value: str, limit: int = 64) -> str:
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
            f"got '{shown(text)}'.",
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
            f"(0.25, 1, 4, 16), got '{shown(text)}'.",
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


# --- parameters ------------------------------------------------------------------------------

_REFUSED = {
    "mask": "this model has no mask input; describe the region to change in the prompt",
}
# Every model's image field: sent under any model, it would skip the gateway's own checks of the
# input (the URL guard, size caps, one image).
_IMAGE_FIELDS = frozenset(m.image_field for m in MODELS)
# Words that name a URL inside a key (image_urls, webhookTarget); "uri" only as a word of its own
# (image_uri, sourceUri), since it is inside ordinary words (security, during, curious).
_URL_WORDS = ("url", "webhook", "callback")
_URI_WORDS = frozenset({"uri", "uris"})
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# Schemes a URL reader follows with no "//" after the colon (https:host/x.png, http:\\host\x,
# file:/etc/passwd). Only these, only at the start of a text, and only with something right after
# the colon or the two slashes: prose such as "no text: blurry", "data: a table" or "// TODO" has
# a word and a colon, or slashes, too.
_URL_SCHEMES = ("http", "https", "ftp", "ftps", "sftp", "tftp", "file", "data", "blob", "ws", "wss",
                "s3", "gs", "smb", "gopher", "dict", "ldap", "jar", "javascript")  # fmt: skip
_URL_START = re.compile(rf"(?:(?:{'|'.join(_URL_SCHEMES)}):|[/\\]{{2}})(?=\S)")
# Characters that show nothing (zero-width spaces and joiners, word joiner, BOM, soft hyphen,
# direction marks) and the tabs and newlines URL parsers drop: a provider reading a text as a
# URL does not see them, so neither does the URL check.
_UNSEEN = dict.fromkeys(
    map(
        ord,
        "\t\n\r\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c"
        "\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff",
    )
)
_LEADING_BLANKS = re.compile(r"^[\x00-\x20\s]+")


def _as_read(text: str) -> str:
    """A text as a URL reader may take it: NFKC (a fullwidth colon is a colon), without the
    characters that show nothing, without leading blanks and controls, in lower case."""
    folded = unicodedata.normalize("NFKC", text).translate(_UNSEEN)
    return _LEADING_BLANKS.sub("", folded).lower()


def _is_url(text: str) -> bool:
    read = _as_read(text)
    return "://" in read or _URL_START.match(read) is not None


def _names_a_url(name: str) -> bool:
    read = _as_read(name)
    if read in _IMAGE_FIELDS or any(word in read for word in _URL_WORDS):
        return True
    words = _WORDS.findall(unicodedata.normalize("NFKC", name).translate(_UNSEEN))
    return any(word.lower() in _URI_WORDS for word in words)


def _refuse_unsafe_passthrough(name: str, value: Any) -> None:
    """An unknown key goes to the provider as sent, unless it could make the provider fetch or
    call something for the caller: a name, at any depth (``a[webhook_url]``), that names a URL,
    a webhook or an image, or a text anywhere inside it, name or value, that is a URL."""
    for path, node in bodies.walk({name: value}):
        key = path[-1] if path else None
        if isinstance(key, str) and _names_a_url(key):
            reason = "it names an image, a URL or a webhook, which only the gateway sends"
        elif any(isinstance(text, str) and _is_url(text) for text in (key, node)):
            reason = "it holds a URL, which only the gateway sends to the provider"
        else:
            continue
        where = bodies.path_text(path)
        raise InvalidRequest(
            f"'{where}' cannot be sent: {reason}.", param=where, code="unsupported_parameter"
        )


# The names a client may send that the gateway itself knows (OpenAI's, the gateway's own, the
# ones it ignores); with a model's own parameters, what a misspelt key is compared with.
_GATEWAY_NAMES = frozenset(
    {*EditRequest.model_fields, "image", "mask", "stream", *IGNORED_PARAMS} - {"options"}
)
# Names shorter than this are a letter or two from too many others (n, fit) to guess at.
_MIN_GUESSED_LENGTH = 4


def _refuse_typo(name: str, spec: ModelSpec) -> None:
    """A key the model does not know, an edit or two from a name it does, is a typo: sent on,
    the provider would ignore it and the edit would run without what it meant ("promt")."""
    known = _GATEWAY_NAMES | {param.name for param in spec.params}
    if name in known:
        return
    meant = _typo_of(name, known)
    if meant is not None:
        raise InvalidRequest(
            f"Unknown parameter '{name}': did you mean '{meant}'?", param=name, code="unknown_parameter"
        )


def _typo_of(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` is a misspelling of, if any: at most one edit (a character added,
    dropped, changed, or two neighbours swapped) from a name of up to 7 characters, two from a
    longer one; letter case and "-" for "_" do not count. Edits, not a similarity ratio: a
    swap ("prmopt") is one edit, and a short name that differs in two places ("foo" and "fit")
    is another name. A known name with a word more (``prompt_2``, ``user_id``) is another name
    too, and so is any name the model itself knows (it is never compared)."""
    typed = name.casefold().replace("-", "_")
    guesses = []
    for candidate in known:
        allowed = 1 if len(candidate) <= 7 else 2
        if (
            len(candidate) < _MIN_GUESSED_LENGTH
            or abs(len(typed) - len(candidate)) > allowed
            or typed.startswith(f"{candidate}_")
            or typed.endswith(f"_{candidate}")
        ):
            continue
        distance = _edit_distance(typed, candidate)
        if distance <= allowed:
            guesses.append((distance, candidate))
    return min(guesses)[1] if guesses else None


def _edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): insertions, deletions,
    substitutions and swaps of two neighbours, one edit each."""
    before, previous = [0] * (len(b) + 1), list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
        before, previous = previous, current
    return previous[-1]


def _provider_fields(options: dict[str, Any], spec: ModelSpec) -> tuple[dict[str, Any], list[str], list[str]]:
    """The provider payload for the model's own parameters and unknown keys, the names ignored,
    and the names passed through (unknown keys, sent as they are)."""
    payload: dict[str, Any] = {}
    ignored: list[str] = []
    passthrough: list[str] = []
    for name, value in options.items():
        param = spec.param(name)
        if param is not None:
            payload[param.field] = _coerce(param, value)
        elif name in IGNORED_PARAMS:
            ignored.append(name)
        elif name == "stream":
            if _coerce(_STREAM, value):  # stream=false is what the gateway does anyway
                raise InvalidRequest(
                    "Streaming is not supported: send the request without 'stream'.",
                    param="stream",
                    code="unsupported_parameter",
                )
        else:
            _refuse_gateway_field(name, spec)
            _refuse_typo(name, spec)
            _refuse_unsafe_passthrough(name, value)
            payload[name] = value  # other unknown keys go to the provider unchanged
            passthrough.append(name)
    return payload, ignored, passthrough


_STREAM = ParamSpec(name="stream", field="stream", kind="bool")


def _refuse_gateway_field(name: str, spec: ModelSpec) -> None:
    """A provider field the gateway sets itself, or that a client sends under another name."""
    managed = {spec.prompt_field, spec.image_field, spec.num_images_field, spec.output_format_field}
    renamed = {p.field: p.name for p in spec.params if p.behaviour == "renamed"}
    if name in _REFUSED:
        message = f"'{name}' is not supported by {spec.id}: {_REFUSED[name]}."
    elif name in renamed:
        message = f"'{name}' is set through '{renamed[name]}'."
    elif name in managed or name == spec.size_field:
        message = f"'{name}' is set by the gateway and cannot be sent."
    else:
        return
    raise InvalidRequest(message, param=name, code="unsupported_parameter")


_KIND_TYPES: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}


@functools.cache
def _adapter(param: ParamSpec) -> TypeAdapter[Any]:
    limits: dict[str, Any] = {"ge": param.ge, "le": param.le, "max_length": param.max_length}
    if param.kind == "float":
        limits["allow_inf_nan"] = False
    constraints = Field(**{k: v for k, v in limits.items() if v is not None})
    return TypeAdapter(Annotated[_KIND_TYPES[param.kind], constraints])


def _coerce(param: ParamSpec, value: Any) -> Any:
    """The value as the catalog types it ("7" → 7, "true" → True), within its bounds."""
    try:
        return _adapter(param).validate_python(value)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"]
        raise InvalidRequest(f"Invalid value for '{param.name}': {message}.", param=param.name) from None
