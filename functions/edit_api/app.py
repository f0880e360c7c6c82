"""POST /v1/images/edits (and /images/edits): wiring only. The work is ``editgate.pipeline.edit``."""

from __future__ import annotations

import base64
import json
import time
import uuid
from functools import partial
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ValidationException,
)
from aws_lambda_powertools.event_handler.openapi.params import File, Form, UploadFile
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from editgate import api, secrets
from editgate.errors import EditgateError, NotFound
from editgate.fal import FalClient
from editgate.pipeline import Services, edit
from editgate.settings import Settings
from editgate.storage import ResultStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)

settings = Settings.from_env()
fal_key = partial(secrets.secret_text, settings.fal_key_secret_name, settings.secrets_max_age_seconds)
services = Services.create(
    settings,
    FalClient(settings.fal_queue_url, fal_key, poll_interval=settings.fal_poll_interval_seconds),
    ResultStore(settings.results_bucket, settings.results_prefix, settings.presign_expiry_seconds),
)
_FILES = ("image", "image[]", "mask")


@app.post("/v1/images/edits")
@app.post("/images/edits")
def create_edit(
    prompt: Annotated[str, Form()],
    image: Annotated[UploadFile | list[UploadFile] | None, File()] = None,
    image_list: Annotated[UploadFile | list[UploadFile] | None, File(alias="image[]")] = None,
    mask: Annotated[UploadFile | None, File()] = None,
) -> Response[dict[str, Any]]:
    uploads = [
        f for group in (image, image_list) for f in (group if isinstance(group, list) else [group]) if f
    ]
    request, inputs = api.request_from_form(prompt=prompt, images=uploads, mask=mask, fields=_other_fields())
    result = edit(request, inputs, services, request_id=_request_id(), deadline=_deadline())
    metrics.add_metric(name="ImagesEdited", unit=MetricUnit.Count, value=len(result.images))
    metrics.add_metric(name="CostUSD", unit=MetricUnit.Count, value=result.cost_usd)
    return Response(200, "application/json", api.images_response(result), {"x-request-id": result.request_id})


def _other_fields() -> dict[str, Any]:
    # The resolver hands routes only the fields they declare; the rest (model, n, size, …,
    # and unknown keys that go on to the provider) come from the same Powertools parse.
    from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
        _extract_multipart_boundary,
        _parse_multipart_body,
    )

    event = app.current_event
    boundary = _extract_multipart_boundary(event.headers.get("content-type", "")) or ""
    body = (
        base64.b64decode(event.body or "")
        if event.is_base64_encoded
        else (event.body or "").encode("latin-1")
    )
    fields = _parse_multipart_body(body, boundary)
    return {k: v for k, v in fields.items() if k not in (*_FILES, "prompt")}


def authenticate(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    api.check_api_key(app.current_event.headers.get("authorization"), _api_keys())
    return next_middleware(app)


app.use([authenticate])


def _api_keys() -> frozenset[str]:
    return secrets.api_keys(settings.api_keys_secret_name, settings.secrets_max_age_seconds)


def _request_id() -> str:
    return app.current_event.request_context.request_id or f"req_{uuid.uuid4().hex}"


def _deadline() -> float:
    remaining = app.lambda_context.get_remaining_time_in_millis() / 1000 - 1.0
    return time.monotonic() + min(settings.request_deadline_seconds, remaining)


def _error(error: EditgateError) -> Response[str]:
    headers = {"x-request-id": _request_id(), "x-should-retry": str(error.retryable).lower()}
    return Response(error.status, "application/json", json.dumps(error.body()), headers)


@app.exception_handler(EditgateError)
def handle_error(error: EditgateError) -> Response[str]:
    logger.info("request refused", extra={"status": error.status, "code": error.code, "param": error.param})
    return _error(error)


@app.exception_handler([RequestValidationError, RequestUnsupportedContentType])
def handle_invalid(error: ValidationException) -> Response[str]:
    # Powertools validates before any middleware runs: check the key first here too, so an
    # unauthenticated caller learns nothing about the request's shape.
    try:
        api.check_api_key(app.current_event.headers.get("authorization"), _api_keys())
    except EditgateError as auth_error:
        return _error(auth_error)
    return _error(api.error_from_validation(error.errors()))


@app.not_found
def handle_not_found(_: Exception) -> Response[str]:
    return _error(NotFound(f"Unknown route: {app.current_event.http_method} {app.current_event.path}."))


@app.exception_handler(Exception)
def handle_unexpected(error: Exception) -> Response[str]:
    logger.exception("unexpected error")
    return _error(EditgateError("The server had an error while processing your request."))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
