"""Request bodies as a careless client or an attacker may write them: multipart/form-data (read
with python-multipart, the streaming parser Starlette relies on) and JSON, each within limits.
Every body that cannot be read is an ``InvalidRequest`` (400) saying what was wrong, never an
exception from deep inside a parser. And JSON as the gateway writes it (``json_text``): JSON
only, never Python's NaN or Infinity."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from editgate.errors import InvalidRequest

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# The parser logs a warning for every malformed body: a client's mistake, answered and logged
# as a 400 already, and at an attacker's pace, not worth a log line each.
logging.getLogger("python_multipart").setLevel(logging.ERROR)

MAX_PARTS = 64
# The longest text field a request needs is the prompt: a few thousand characters.
MAX_FIELD_BYTES = 64 * 1024
MAX_NAME_LENGTH = 128
MAX_PART_HEADERS = 8
MAX_PART_HEADER_BYTES = 4096
# How deep ``a[b][c]`` field names and JSON values may nest: parameters are at most two deep.
MAX_DEPTH = 8
# Digits in one JSON number (a seed has 10): Python refuses ints past 4,300 digits with an error.
MAX_NUMBER_DIGITS = 64


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart body."""

    filename: str
    content_type: str
    content: bytes


@dataclass
class Form:
    """A multipart body: text fields (a repeated name gives a list) and file parts by name."""

    fields: dict[str, str | list[str]] = field(default_factory=dict)
    files: dict[str, list[Upload]] = field(default_factory=dict)


def boundary_of(content_type: str) -> bytes:
    invalid = InvalidRequest(
        "The multipart body has no valid boundary in its Content-Type header.", code="invalid_body"
    )
    try:  # HTTP header values are ISO-8859-1 at most
        _, options = parse_options_header(content_type.encode("latin-1"))
    except UnicodeEncodeError:
        raise invalid from None
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 70 or boundary.strip(b'"') != boundary:
        raise invalid
    return boundary


def parse_multipart(body: bytes, content_type: str) -> Form:
    """The parts of a multipart/form-data body, or a 400 naming what is wrong with it."""
    reader = _PartReader()
    parser = MultipartParser(
        boundary_of(content_type),
        reader.callbacks(),
        max_header_count=MAX_PART_HEADERS,
        max_header_size=MAX_PART_HEADER_BYTES,
    )
    try:
        parser.write(body)
    except MultipartParseError as exc:
        raise InvalidRequest(f"The multipart body is malformed: {exc}.", code="invalid_body") from None
    if not reader.ended:
        raise InvalidRequest(
            "The multipart body ends before its closing boundary (truncated?).", code="invalid_body"
        )
    return reader.form


class _PartReader:
    """python-multipart's callbacks, collecting parts into a ``Form`` within the limits."""

    def __init__(self) -> None:
        self.form = Form()
        self.ended = False
        self._parts = 0
        self._headers: dict[bytes, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._data = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidRequest(f"The multipart body has more than {MAX_PARTS} parts.", code="invalid_body")
        self._headers.clear()
        self._data.clear()

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).strip().lower()] = bytes(self._header_value).strip()
        self._header_name.clear()
        self._header_value.clear()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data.extend(data[start:end])
        if not self._is_file() and len(self._data) > MAX_FIELD_BYTES:
            raise InvalidRequest(
                f"Invalid value for '{self._name()}': text fields are limited to {MAX_FIELD_BYTES:,} bytes.",
                param=self._name(),
                code="string_above_max_length",
            )

    def _part_end(self) -> None:
        name = self._name()
        if self._is_file():
            _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
            content_type = self._headers.get(b"content-type", b"application/octet-stream")
            upload = Upload(
                filename=options.get(b"filename", b"upload").decode("utf-8", "replace"),
                content_type=content_type.decode("latin-1"),
                content=bytes(self._data),
            )
            self.form.files.setdefault(name, []).append(upload)
            return
        try:
            value = self._data.decode("utf-8")
        except UnicodeDecodeError:
            message = f"Invalid value for '{name}': the field is not UTF-8 text."
            raise InvalidRequest(message, param=name, code="invalid_encoding") from None
        known = self.form.fields.get(name)
        if known is None:
            self.form.fields[name] = value
        else:
            self.form.fields[name] = [*known, value] if isinstance(known, list) else [known, value]

    def _end(self) -> None:
        self.ended = True

    def _disposition(self) -> tuple[bytes, dict[bytes, bytes]]:
        disposition = self._headers.get(b"content-disposition")
        if disposition is None:
            raise InvalidRequest("A multipart part has no Content-Disposition header.", code="invalid_body")
        return parse_options_header(disposition)

    def _name(self) -> str:
        kind, options = self._disposition()
        raw = options.get(b"name")
        if kind != b"form-data" or not raw:
            raise InvalidRequest("A multipart part is not a named form-data field.", code="invalid_body")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            message = "A multipart field name is not UTF-8 text."
            raise InvalidRequest(message, code="invalid_encoding") from None
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidRequest(
                f"A multipart field name is longer than {MAX_NAME_LENGTH} characters.", code="invalid_body"
            )
        return name

    def _is_file(self) -> bool:
        # ``filename*=`` (RFC 5987) marks a file too; the parser reads only the plain ``filename``.
        _, options = self._disposition()
        return b"filename" in options or b"filename*=" in self._headers.get(b"content-disposition", b"")


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
