"""The OpenAI Images API: edits (multipart or JSON, ``?dry_run=true``), models, and a clear
answer for generations; its OpenAPI document, Swagger UI and playground page. Wiring only: the
work is ``editgate.pipeline``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from editgate import dedupe, http_edge, keys, openai_shapes, openapi, pages, pipeline, service, timing
from editgate.errors import InvalidRequest, NotFound
from editgate.settings import Settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver()

settings = Settings.from_env()
services = pipeline.Services.create(settings)
routes = http_edge.RouteTable(app)
doc_keys = None
if not settings.public_docs:
    # Without a keys' table every key is refused: the documentation is never open by mistake.
    doc_keys = keys.KeyDirectory(settings.api_keys_table or "", settings.key_cache_seconds)
http_edge.install(app, routes, doc_keys=doc_keys)


@routes.route("POST", "/v1/images/edits", "/images/edits")
def create_edit() -> Response[str]:
    with timing.measured() as timings:
        answer = _edit(http_edge.query_flag(app, "dry_run"))
    answer.headers["Server-Timing"] = timing.header(timings)
    return answer


def _edit(dry_run: bool) -> Response[str]:
    with timing.phase("parse"):
        request, inputs = http_edge.read_edit(app)
    deadline = http_edge.deadline(app, settings.request_deadline_seconds)
    idempotency_key = dedupe.idempotency_key(app.current_event.headers.get("idempotency-key"))
    if dry_run:
        return http_edge.json_response(app, pipeline.dry_run(request, inputs, services, deadline=deadline))
    request_id = http_edge.request_id(app)
    outcome = service.run_edit(
        request,
        inputs,
        services,
        identity=dedupe.for_request(http_edge.caller(app), idempotency_key, request, inputs),
        request_id=request_id,
        deadline=deadline,
        folder=services.store.folder_for(request_id),
    )
    with timing.phase("inline"):
        result = pipeline.inline(outcome.result, services.store)
    return http_edge.json_response(app, openai_shapes.images_response(result, replayed=outcome.replayed))


@routes.route("GET", "/v1/models", "/models")
def list_models() -> Response[str]:
    return http_edge.json_response(app, openai_shapes.model_list(services.catalog.values()))


@routes.route("GET", "/v1/models/<model_id>", "/models/<model_id>")
def get_model(model_id: str) -> Response[str]:
    spec = services.catalog.get(model_id)
    if spec is None:
        raise NotFound(f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
    return http_edge.json_response(app, openai_shapes.model_object(spec))


@routes.route("POST", "/v1/images/generations", "/images/generations")
def create_generation() -> Response[str]:
    raise InvalidRequest(
        "The models of this gateway edit images and do not generate them from text: "
        "send the image and prompt to /v1/images/edits.",
        code="unsupported_operation",
    )


def _document() -> dict[str, Any]:
    return openapi.document(
        services.catalog.values(), base_path=http_edge.base_path(app), docs_need_key=doc_keys is not None
    )


@routes.route("GET", "/v1/openapi.json", "/openapi.json", access=http_edge.Access.DOCS)
def get_openapi_document() -> Response[str]:
    return http_edge.json_response(app, _document())


@routes.route("GET", "/docs", access=http_edge.Access.DOCS)
def get_docs_page() -> Response[str]:
    # Swagger UI links its document as /docs?format=json, as Powertools' own page does.
    if app.current_event.get_query_string_value("format") == "json":
        return http_edge.json_response(app, _document())
    return http_edge.html_response(app, pages.swagger_page(_document()))


@routes.route("GET", "/playground", access=http_edge.Access.OPEN)
def get_playground_page() -> Response[str]:
    return http_edge.html_response(app, pages.playground_page(services.store.url_origin()))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    services.deduplicator.register(context)
    return app.resolve(event, context)
