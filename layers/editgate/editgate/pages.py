"""The gateway's two pages: Swagger UI over the OpenAPI document, and the playground. Both are
whole HTML files with nothing fetched from elsewhere (Swagger UI's assets are the ones Powertools
ships), so they work where no CDN can be reached."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any


def swagger_page(document: dict[str, Any]) -> str:
    # Imported here: the module brings Powertools' OpenAPI models, ~85 ms no edit should pay at
    # cold start.
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    # "</" escaped: the document sits inside a <script> element.
    spec = json.dumps(document).replace("</", "<\\/")
    script, style = _swagger_assets()
    return generate_swagger_html(spec, script, style, "", None, persist_authorization=True)


@functools.cache
def playground_page() -> str:
    return (resources.files("editgate") / "static" / "playground.html").read_text("utf-8")


@functools.cache
def _swagger_assets() -> tuple[str, str]:
    assets = resources.files("aws_lambda_powertools.event_handler.openapi.swagger_ui")
    return (
        (assets / "swagger-ui-bundle.min.js").read_text("utf-8"),
        (assets / "swagger-ui.min.css").read_text("utf-8"),
    )
