"""The routes anyone may call: the OpenAPI document (``/v1/openapi.json``, and ``/docs?format=json``
as Swagger UI links it), the Swagger UI page, the playground, ``/`` (which leads to the
playground) and the health check."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from editgate import __version__
from editgate.api import http_edge, openapi, pages
from editgate.domain.catalog import ModelSpec


def install(
    app: APIGatewayRestResolver,
    routes: http_edge.RouteTable,
    specs: Iterable[ModelSpec],
    *,
    docs_need_key: bool,
    results_origin: Callable[[], str],
    fal_key_readable: Callable[[], bool],
) -> None:
    """``results_origin``: where the playground's result images come from (its page's policy);
    ``fal_key_readable``: whether fal's key can be read (the health check)."""
    models = list(specs)

    def document() -> dict[str, Any]:
        return openapi.document(models, base_path=http_edge.base_path(app), docs_need_key=docs_need_key)

    @routes.route("GET", "/v1/openapi.json", "/openapi.json", access=http_edge.Access.DOCS)
    def get_openapi_document() -> Response[str]:
        return http_edge.json_response(app, document())

    @routes.route("GET", "/docs", access=http_edge.Access.DOCS)
    def get_docs_page() -> Response[str]:
        # Swagger UI links its document as /docs?format=json, as Powertools' own page does.
        if app.current_event.get_query_string_value("format") == "json":
            return http_edge.json_response(app, document())
        return http_edge.html_response(app, pages.swagger_page(document()))

    @routes.route("GET", "/playground", access=http_edge.Access.OPEN)
    def get_playground_page() -> Response[str]:
        return http_edge.html_response(app, pages.playground_page(results_origin()))

    @routes.route("GET", "/", access=http_edge.Access.OPEN)
    def get_root() -> Response[str]:
        # A person who opens the API's address in a browser lands on the playground, which links
        # the docs.
        return http_edge.redirect_response(app, f"{http_edge.base_path(app)}/playground")

    @routes.route("GET", "/v1/health", "/health", access=http_edge.Access.OPEN)
    def get_health() -> Response[str]:
        # For load balancers and `editgate smoke`: the function answers, and can read fal's key
        # (whether it can, never the key).
        health = {"status": "ok", "version": __version__, "fal_key_readable": fal_key_readable()}
        answer = http_edge.json_response(app, health)
        answer.headers["Cache-Control"] = "no-store"
        return answer
