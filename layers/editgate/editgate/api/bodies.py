"""Request bodies as a careless client or an attacker may write them: multipart/form-data (read
with python-multipart, the streaming parser Starlette relies on) and JSON, each within limits.
Every body that cannot be read is an ``InvalidRequest`` (400) saying what was wrong, never an
exception from deep inside a parser. JSON bodies are read by ``editgate.domain.json_values``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from editgate.domain.errors import InvalidRequest

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
