"""JSON values as the gateway reads and writes them, whatever carries them (a request body, a
manifest line, a record): nesting and number sizes bounded, every number finite. Pure."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from editgate.domain.errors import InvalidRequest

# How deep ``a[b][c]`` field names and JSON values may nest: parameters are at most two deep.
MAX_DEPTH = 8
# Digits in one JSON number (a seed has 10): Python refuses ints past 4,300 digits with an error.
MAX_NUMBER_DIGITS = 64


def parse_json(body: str | bytes) -> Any:
    """A JSON body, with nesting and number sizes bounded and every number finite, or a 400
    saying why it is not read."""
    value = read_json(body)
    check_value(value)
    return value


def read_json(body: str | bytes) -> Any:
    """JSON as read, its integers bounded, before ``check_value``: a reader that must know what
    a document is (a manifest's defaults line, an item's id) before refusing a value in it."""
    try:
        # NaN and Infinity are read as numbers so that check_value can name where they are.
        return json.loads(body, parse_int=_bounded_int, parse_constant=float)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = str(exc) if isinstance(exc, _BodyLimit) else "it is not valid JSON"
        raise InvalidRequest(f"The request body could not be read: {reason}.", code="invalid_body") from None


def json_text(value: Any, *, indent: int | None = None) -> str:
    """The one way the gateway writes JSON (answers, records, journal entries, messages): strict,
    so that a number that is not finite fails here instead of being written as ``Infinity``,
    which is not JSON and which no other JSON reader takes."""
    return json.dumps(value, allow_nan=False, indent=indent)


ValuePath = tuple[str | int, ...]


def path_text(path: ValuePath) -> str:
    """Where a value sits in a body, as errors name it: ``x.y``, ``a[0].b``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def check_value(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse values nested deeper than ``limit`` (without recursion, whatever the depth) and
    numbers that are not finite (NaN, Infinity, or too large for a float, as ``1e999``): no
    provider takes them, and JSON cannot carry them on."""
    for path, node in walk(value, limit):
        if isinstance(node, float) and not math.isfinite(node):
            where = path_text(path)
            raise InvalidRequest(
                f"Invalid value{f' for {where!r}' if where else ''}: numbers must be finite "
                "(NaN, Infinity and numbers beyond ±1.8e308 are not JSON).",
                param=where or None,
            )


def walk(value: Any, limit: int = MAX_DEPTH) -> Iterator[tuple[ValuePath, Any]]:
    """Every value inside ``value`` (itself included) with its path: object keys and list
    indices. Refuses values nested deeper than ``limit``."""
    stack: list[tuple[ValuePath, Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        if len(path) > limit:
            raise InvalidRequest(
                f"The request body could not be read: values nest more than {limit} levels deep.",
                code="invalid_body",
            )
        yield path, node
        if isinstance(node, dict):
            stack.extend(((*path, key), child) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, index), child) for index, child in enumerate(node))


class _BodyLimit(ValueError):
    pass


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _BodyLimit(f"a number has more than {MAX_NUMBER_DIGITS} digits")
    return int(text)
