"""fal's webhook (``POST /v1/fal/webhook``, open at API Gateway: fal cannot send a key of ours).
Every delivery is checked before anything else (fal's signature, its timestamp, a request this
gateway submitted, once); a taken one queues the collect step. Forgeries get OpenAI-shaped 401s.
Wiring only: the work is ``editgate.app.fal_webhooks``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from editgate import wiring
from editgate.api import http_edge

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver()

receiver = wiring.webhook_door()
routes = http_edge.RouteTable(app)
http_edge.install(app, routes, doc_keys=None)


@routes.route("POST", "/v1/fal/webhook", access=http_edge.Access.OPEN)
def fal_webhook() -> Response[str]:
    event = app.current_event
    # The signature covers the body's exact bytes: API Gateway passes a JSON body as its text.
    body = (event.decoded_body or "").encode("utf-8", "surrogatepass")
    outcome = receiver.receive(event.headers, body)
    return http_edge.json_response(app, {"received": True, "request_id": outcome.request_id,
                                         "duplicate": not outcome.queued})  # fmt: skip


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
