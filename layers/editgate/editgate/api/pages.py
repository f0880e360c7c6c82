"""The gateway's two pages: Swagger UI over the OpenAPI document, and the playground. Both are
whole HTML files with nothing fetched from elsewhere (Swagger UI's assets are the ones Powertools
ships), so they work where no CDN can be reached.

Each page comes with its Content-Security-Policy: its inline scripts and styles by their SHA-256
(no other script runs, injected markup included), requests only to this API, images only from
the page itself, ``data:``/``blob:`` URLs and where the results are (the presigned URLs' origin),
and no framing (the playground is where users paste their key)."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib import resources
from typing import Any

# What both pages' <head> holds besides their own: phones lay them out at their width, and the
# icon is in the page (a browser asks for /favicon.ico without a key otherwise, and logs the 401).
_ICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E%3Crect width='32' "
    "height='32' rx='7' fill='%232458d6'/%3E%3Cpath d='M9 23l3.5-1 9-9-2.5-2.5-9 9zM20.5 9.5l2.5 2.5 "
    "1.5-1.5-2.5-2.5z' fill='%23fff'/%3E%3C/svg%3E"
)
_HEAD = (
    f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<link rel="icon" href="{_ICON}">'
)

# Swagger UI on a phone: no "Links" column (this API has none), and anything still wider than
# the screen (a schema, a long example) scrolls inside its operation instead of widening the page.
_SWAGGER_NARROW = (
    "<style>@media (max-width: 600px) { .swagger-ui .wrapper { padding: 0 8px; } "
    ".swagger-ui .response-col_links { display: none; } "
    ".swagger-ui .opblock-body, .swagger-ui section.models { overflow-x: auto; } }</style>"
)


@dataclass(frozen=True)
class Page:
    html: str
    content_security_policy: str


def swagger_page(document: dict[str, Any]) -> Page:
    # Imported here: the module brings Powertools' OpenAPI models, ~85 ms no edit should pay at
    # cold start.
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    # "</" escaped: the document sits inside a <script> element.
    spec = json.dumps(document).replace("</", "<\\/")
    script, style = _swagger_assets()
    html = generate_swagger_html(spec, script, style, "", None, persist_authorization=True)
    html = html.replace("<head>", f"<head>\n{_HEAD}\n{_SWAGGER_NARROW}", 1)
    return Page(html, _policy(html, images_from=("data:",)))


@functools.cache
def playground_page(results_origin: str) -> Page:
    """``results_origin``: where the presigned result URLs point (the images it shows)."""
    static = resources.files("editgate.api") / "static"
    # Its script and style are files of their own (linted and read as what they are), put in the
    # page when it is served: they run under the page's policy by their hashes, with no route more.
    html = (
        (static / "playground.html")
        .read_text("utf-8")
        .replace("<!--PAGE_HEAD-->", _HEAD)
        .replace("/*PLAYGROUND_CSS*/", (static / "playground.css").read_text("utf-8"))
        .replace("/*PLAYGROUND_JS*/", (static / "playground.js").read_text("utf-8"))
    )
    return Page(html, _policy(html, images_from=("data:", "blob:", results_origin)))


@functools.cache
def _swagger_assets() -> tuple[str, str]:
    assets = resources.files("aws_lambda_powertools.event_handler.openapi.swagger_ui")
    return (
        (assets / "swagger-ui-bundle.min.js").read_text("utf-8"),
        (assets / "swagger-ui.min.css").read_text("utf-8"),
    )


def _policy(html: str, *, images_from: Sequence[str]) -> str:
    inline = _InlineCode.of(html)
    directives = {
        "default-src": ["'none'"],
        "script-src": [_hash(text) for text in inline.scripts],
        "style-src": [_hash(text) for text in inline.styles],
        "img-src": ["'self'", *images_from],
        "connect-src": ["'self'"],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


class _InlineCode(HTMLParser):
    """The text of each inline ``<script>`` and ``<style>`` element, as the browser hashes it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._open: str | None = None
        self._text: list[str] = []

    @classmethod
    def of(cls, html: str) -> _InlineCode:
        parser = cls()
        parser.feed(html)
        parser.close()
        return parser

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._open, self._text = tag, []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            (self.scripts if tag == "script" else self.styles).append("".join(self._text))
            self._open = None
