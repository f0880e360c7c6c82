"""The OpenAI Images API (edits, jobs, models), its OpenAPI document, playground, health. Wiring only."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from editgate import wiring
from editgate.api import docs, http_edge, jobs, openai_shapes

logger = Logger()
tracer = Tracer()
metrics = Metrics()
door = wiring.https_door()
app = APIGatewayRestResolver(cors=http_edge.cors(door.cors_allow_origin))
routes = http_edge.RouteTable(app)
http_edge.install(app, routes, doc_keys=door.doc_keys)
jobs.install(app, routes, door.jobs)


@routes.route("POST", "/v1/images/edits", "/images/edits")
@http_edge.server_timed
def create_edit() -> Response[str]:
    call = http_edge.read_edit(app, door.deadline_seconds)
    if call.respond_async:
        return jobs.accepted(app, door.jobs.submit(call))
    return http_edge.edit_response(app, call, door.edits.edit_now(call))


@routes.route("GET", "/v1/models", "/models")
def list_models() -> Response[str]:
    return http_edge.json_response(app, openai_shapes.model_list(door.catalog.values()))


@routes.route("GET", "/v1/models/<model_id>", "/models/<model_id>")
def get_model(model_id: str) -> Response[str]:
    return http_edge.json_response(app, openai_shapes.model_answer(door.catalog, model_id))


@routes.route("POST", "/v1/images/generations", "/images/generations")
def create_generation() -> Response[str]:
    raise openai_shapes.generations_refused()


docs.install(app, routes, door.catalog.values(), docs_need_key=door.doc_keys is not None,
             results_origin=door.results.url_origin, fal_key_readable=door.fal_key_readable)  # fmt: skip


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    door.edits.register(context)
    return app.resolve(event, context)
