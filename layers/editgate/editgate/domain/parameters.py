"""The model's own parameters, the ones the gateway ignores and the unknown keys a client sends
through to the provider: coerced to the catalog's types, misspellings and unsafe keys refused
(README, "Normalization rules"). Pure."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from editgate.domain import json_values
from editgate.domain.catalog import IGNORED_PARAMS, MODELS, ModelSpec, ParamSpec
from editgate.domain.errors import InvalidRequest
from editgate.domain.models import EditRequest


def provider_fields(options: dict[str, Any], spec: ModelSpec) -> tuple[dict[str, Any], list[str], list[str]]:
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
            # The HTTPS edit takes ``stream`` out first (``take_stream``); it reaches here from
            # the doors that cannot stream (a batch line), where stream=false is what they do.
            if _coerce(_STREAM, value):
                raise InvalidRequest(
                    "Only POST /v1/images/edits answers a stream: send this edit without 'stream'.",
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
    for path, node in json_values.walk({name: value}):
        key = path[-1] if path else None
        if isinstance(key, str) and _names_a_url(key):
            reason = "it names an image, a URL or a webhook, which only the gateway sends"
        elif any(isinstance(text, str) and _is_url(text) for text in (key, node)):
            reason = "it holds a URL, which only the gateway sends to the provider"
        else:
            continue
        where = json_values.path_text(path)
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


_STREAM = ParamSpec(name="stream", field="stream", kind="bool")


def take_stream(options: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The options without ``stream``, and whether it asks for the answer as a stream of events
    (typed like a model's own flag: "true", "1")."""
    rest = dict(options)
    return rest, bool(_coerce(_STREAM, rest.pop("stream", False)))


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
