"""The HTTP edge for Powertools' API Gateway resolver, shared by every API function: API-key
auth, request ids, deadlines, the form a route did not declare, and the one place where errors
become OpenAI-shaped answers."""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    _extract_multipart_boundary,
    _parse_multipart_body,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ValidationException,
)

from editgate import api, metrics
from editgate.errors import EditgateError, NotFound

logger = Logger(child=True)
# Lambda stops the function at its timeout; leave this much to answer with a clean 504.
_ANSWER_MARGIN_SECONDS = 1.0


def request_id(app: APIGatewayRestResolver) -> str:
    """API Gateway's request id, so the answer, the logs and API Gateway's own logs agree."""
    return app.current_event.request_context.request_id or f"req_{uuid.uuid4().hex}"


def deadline(app: APIGatewayRestResolver, limit_seconds: float) -> float:
    """One ``time.monotonic()`` deadline for the whole request: the configured limit or the
    Lambda's remaining time, whichever ends first."""
    remaining = app.lambda_context.get_remaining_time_in_millis() / 1000 - _ANSWER_MARGIN_SECONDS
    return time.monotonic() + min(limit_seconds, remaining)


def form_fields(app: APIGatewayRestResolver, declared: Iterable[str]) -> dict[str, Any]:
    """The multipart fields a route did not declare (model, n, size, …, and unknown keys that go
    on to the provider). Routes get only declared parameters from the resolver, so this reads
    the same body with Powertools' own multipart parser: one parser, one result."""
    event = app.current_event
    boundary = _extract_multipart_boundary(event.headers.get("content-type", "")) or ""
    raw = event.body or ""
    body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode("latin-1")
    skip = set(declared)
    return {name: value for name, value in _parse_multipart_body(body, boundary).items() if name not in skip}


def is_json(app: APIGatewayRestResolver) -> bool:
    return app.current_event.headers.get("content-type", "").lower().startswith("application/json")


def error_response(app: APIGatewayRestResolver, error: EditgateError) -> Response[str]:
    headers = {"x-request-id": request_id(app), "x-should-retry": str(error.retryable).lower()}
    if error.retry_after is not None:
        headers["retry-after"] = str(math.ceil(error.retry_after))
    return Response(error.status, "application/json", json.dumps(error.body()), headers)


def api_key(app: APIGatewayRestResolver) -> str:
    """The key the caller presented (already checked by the auth middleware)."""
    return api.bearer_key(app.current_event.headers.get("authorization")) or ""


def json_response(app: APIGatewayRestResolver, body: dict[str, Any]) -> Response[str]:
    return Response(200, "application/json", json.dumps(body), {"x-request-id": request_id(app)})


def install(app: APIGatewayRestResolver, api_keys: Callable[[], Iterable[str]]) -> None:
    """API-key auth on every route, and every failure answered in OpenAI's error shape."""

    def check_key() -> None:
        api.check_api_key(app.current_event.headers.get("authorization"), api_keys())

    def authenticate(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        check_key()
        return next_middleware(app)

    app.use([authenticate])

    def refused(error: EditgateError) -> Response[str]:
        logger.info(
            "request refused", extra={"status": error.status, "code": error.code, "param": error.param}
        )
        metrics.add("Errors", 1)
        metrics.add(f"Errors.{error.code}", 1)
        return error_response(app, error)

    app.exception_handler(EditgateError)(refused)

    @app.exception_handler([RequestValidationError, RequestUnsupportedContentType])
    def invalid(error: ValidationException) -> Response[str]:
        # Powertools validates before any middleware runs: check the key here first too, so an
        # unauthenticated caller learns nothing about the request's shape.
        try:
            check_key()
        except EditgateError as auth_error:
            return refused(auth_error)
        return refused(api.error_from_validation(error.errors()))

    @app.not_found
    def not_found(_: Exception) -> Response[str]:
        event = app.current_event
        return error_response(app, NotFound(f"Unknown route: {event.http_method} {event.path}."))

    @app.exception_handler(Exception)
    def unexpected(_: Exception) -> Response[str]:
        logger.exception("unexpected error")
        return error_response(app, EditgateError("The server had an error while processing your request."))
