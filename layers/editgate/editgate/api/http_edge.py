"""The HTTP edge for Powertools' API Gateway resolver, shared by every API function: who may call
each route, request ids, deadlines, the body a route did not declare, and the one place where
errors become OpenAI-shaped answers."""

from __future__ import annotations

import binascii
import functools
import math
import re
import time
import uuid
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

import pybase64
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from editgate.adapters import keys
from editgate.api import bodies, openai_shapes, pages
from editgate.app import metrics, timing
from editgate.app.edit_service import EditCall, EditOutcome
from editgate.app.preparing import Prepared
from editgate.domain import envelope, jobs, json_values
from editgate.domain.errors import (
    AuthenticationFailed,
    EditgateError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
)
from editgate.domain.models import EditRequest

logger = Logger(child=True)
Handler = TypeVar("Handler", bound=Callable[..., Any])
Route = Callable[[], Response[str]]


def request_id(app: APIGatewayRestResolver) -> str:
    """API Gateway's request id, so the answer, the logs and API Gateway's own logs agree."""
    return app.current_event.request_context.request_id or f"req_{uuid.uuid4().hex}"


FLAG_VALUES = {
    **dict.fromkeys(("true", "1", "yes", "on"), True),
    **dict.fromkeys(("false", "0", "no", "off"), False),
}


def query_flag(app: APIGatewayRestResolver, name: str) -> bool:
    """A true/false query parameter (absent is false). Read here rather than declared on the
    route: the resolver's OpenAPI validation costs ~120 ms of every cold start."""
    raw = app.current_event.get_query_string_value(name, "false") or "false"
    value = FLAG_VALUES.get(raw.strip().lower())
    if value is None:
        raise InvalidRequest(f"Invalid value for '{name}': expected true or false.", param=name)
    return value


def server_timed(route: Route) -> Route:
    """The route's answer with a ``Server-Timing`` header: where its time went, by phase."""

    @functools.wraps(route)
    def timed() -> Response[str]:
        with timing.measured() as timings:
            answer = route()
        answer.headers["Server-Timing"] = timing.header(timings)
        return answer

    return timed


def read_edit(app: APIGatewayRestResolver, limit_seconds: float) -> EditCall:
    """The edit this request asks for, with who asks (``?dry_run=true``: what it would do). Its
    deadline: the configured limit or the Lambda's remaining time, whichever ends first."""
    dry_run = query_flag(app, "dry_run")
    respond_async = query_flag(app, "async") or jobs.prefers_async(_header_values(app, "prefer"))
    with timing.phase("parse"):
        request, inputs = _edit_body(app)
        request, stream = openai_shapes.streamed(request)
        callback_url = request.options.get("callback_url")
        if callback_url is not None:
            options = {k: v for k, v in request.options.items() if k != "callback_url"}
            request = request.model_copy(update={"options": options})
    remaining_ms = app.lambda_context.get_remaining_time_in_millis()
    return EditCall(
        request,
        inputs,
        caller=caller(app),
        idempotency_key=app.current_event.headers.get("idempotency-key"),
        request_id=request_id(app),
        deadline=time.monotonic() + envelope.https_seconds(limit_seconds, remaining_ms),
        dry_run=dry_run,
        stream=stream,
        respond_async=respond_async and not dry_run,
        callback_url=callback_url,
    )


def _header_values(app: APIGatewayRestResolver, name: str) -> list[str]:
    """Every value of a header the request may repeat (``Prefer``), whatever its letter case."""
    headers = app.current_event.multi_value_headers or {}
    return [value for key, values in headers.items() if key.lower() == name for value in values]


def edit_response(
    app: APIGatewayRestResolver, call: EditCall, outcome: EditOutcome | Prepared
) -> Response[str]:
    """The edit's answer: its JSON, or for ``stream=true`` its events (a dry run answers JSON).
    API Gateway REST sends a body whole: the events arrive together, when the edit is done."""
    if not (call.stream and isinstance(outcome, EditOutcome)):
        return json_response(app, openai_shapes.edit_answer(outcome))
    events = openai_shapes.edit_events(outcome)
    envelope.check_stream_fits(events)
    headers = {**answer_headers(app), "Cache-Control": "no-cache"}
    return Response(200, "text/event-stream; charset=utf-8", events, headers)


def _edit_body(app: APIGatewayRestResolver) -> tuple[EditRequest, list[bytes] | list[str]]:
    """The edit in the request body: multipart (the SDKs' form) or JSON (image URLs). The edit
    route declares no body parameters, so the resolver never parses the body itself: this is the
    one reader, and anything it cannot read is a 400."""
    event = app.current_event
    encoding = event.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise InvalidRequest(
            f"Content-Encoding '{encoding[:32]}' is not supported: send the body uncompressed.",
            code="unsupported_content_encoding",
        )
    content_type = event.headers.get("content-type", "")
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/json":
        return openai_shapes.request_from_json(json_values.parse_json(_body_bytes(event)))
    if media == "multipart/form-data":
        return openai_shapes.request_from_form(bodies.parse_multipart(_body_bytes(event), content_type))
    raise InvalidRequest(
        f"Unsupported Content-Type '{media[:64]}'. Send the edit as multipart/form-data.",
        code="unsupported_content_type",
    )


def _body_bytes(event: APIGatewayProxyEvent) -> bytes:
    # API Gateway base64-encodes the binary media types and hands other bodies over as text.
    raw = event.body or ""
    if not event.is_base64_encoded:
        return raw.encode("utf-8", "surrogatepass")
    try:
        return pybase64.b64decode(raw, validate=True)
    except binascii.Error:
        raise InvalidRequest("The request body is not valid base64.", code="invalid_body") from None


def error_response(app: APIGatewayRestResolver, error: EditgateError) -> Response[str]:
    headers = {
        **answer_headers(app),
        "x-should-retry": str(error.retryable).lower(),
        **error.headers(),
    }
    if error.retry_after is not None:
        headers["retry-after"] = str(math.ceil(error.retry_after))
    return Response(error.status, "application/json", json_values.json_text(error.body()), headers)


def caller(app: APIGatewayRestResolver) -> str:
    """The id of the key API Gateway's authorizer accepted for this request ('' when none did)."""
    return app.current_event.request_context.authorizer.principal_id


def json_response(app: APIGatewayRestResolver, body: dict[str, Any]) -> Response[str]:
    return Response(200, "application/json", json_values.json_text(body), answer_headers(app))


# The pages besides: the page's own Content-Security-Policy, never in a frame (the playground is
# where users paste their key: no clickjacking), and no Referer to anyone (the images' S3 host
# included), which nothing the pages load needs.
_PAGE_HEADERS = {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def html_response(app: APIGatewayRestResolver, page: pages.Page) -> Response[str]:
    headers = {**answer_headers(app), **_PAGE_HEADERS}
    headers["Content-Security-Policy"] = page.content_security_policy
    return Response(200, "text/html; charset=utf-8", page.html, headers)


def redirect_response(app: APIGatewayRestResolver, location: str) -> Response[str]:
    return Response(302, "text/plain", "", {**answer_headers(app), "Location": location})


def cors(allow_origin: str | None) -> CORSConfig | None:
    """The resolver's CORS for pages of ``allow_origin`` (None: no CORS). Every answer exposes
    the headers a browser app reads (a request's id, its timings, when to retry); preflights may
    ask for any header but the key's, which is named (a ``*`` does not cover Authorization)."""
    if allow_origin is None:
        return None
    return CORSConfig(
        allow_origin=allow_origin,
        allow_headers=["Idempotency-Key", "*"],
        expose_headers=["x-request-id", "server-timing", "retry-after", "x-should-retry"],
        max_age=600,
    )


def answer_headers(app: APIGatewayRestResolver) -> dict[str, str]:
    """Every answer's: its request id, and no content sniffing (a browser never takes a JSON
    answer for a page or a script)."""
    return {"x-request-id": request_id(app), "X-Content-Type-Options": "nosniff"}


def base_path(app: APIGatewayRestResolver) -> str:
    """The URL's prefix before the route (``/api`` on execute-api's own domain, where the stage
    leads the path; nothing on a custom domain)."""
    event = app.current_event
    seen = event.request_context.path or event.path
    return seen[: -len(event.path)] if event.path and seen.endswith(event.path) else ""


class Access(Enum):
    """Who may call a route. ``KEY``: callers API Gateway's authorizer accepted. ``DOCS``: the
    documentation, open at the gateway; a key checked here unless the operator made it public.
    ``OPEN``: anyone (the playground page, which asks its user for a key)."""

    KEY = "key"
    DOCS = "docs"
    OPEN = "open"


class RouteTable:
    """Registers the resolver's routes with who may call them, and remembers which methods each
    path answers: a known path asked with another method (``GET /v1/images/edits``) is a 405
    naming them, not a 404."""

    def __init__(self, app: APIGatewayRestResolver) -> None:
        self._app = app
        self._routes: list[tuple[re.Pattern[str], str, Access]] = []

    def route(self, method: str, *paths: str, access: Access = Access.KEY) -> Callable[[Handler], Handler]:
        def register(function: Handler) -> Handler:
            for path in paths:
                self._app.route(path, method)(function)
                # Powertools' <name> segments match any one path segment.
                pattern = re.compile("^" + re.sub(r"<\w+>", "[^/]+", re.escape(path)) + "/?$")
                self._routes.append((pattern, method, access))
            return function

        return register

    def allowed(self, path: str) -> list[str]:
        """The methods ``path`` answers (none: an unknown path)."""
        return sorted({method for pattern, method, _ in self._routes if pattern.match(path)})

    def access(self, path: str) -> Access:
        """Who may call ``path`` (with any method: a wrong one gets its 405 from the same door)."""
        return next((access for pattern, _, access in self._routes if pattern.match(path)), Access.KEY)


def install(app: APIGatewayRestResolver, routes: RouteTable, *, doc_keys: keys.KeyDirectory | None) -> None:
    """Every route only for the callers its access admits, and every failure answered in
    OpenAI's error shape. ``doc_keys``: where the documentation's callers' keys are checked;
    None when the operator made the documentation public."""

    def authenticate(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        event = app.current_event
        if event.http_method == "OPTIONS":
            # A CORS preflight carries no key (browsers never send one); no route answers OPTIONS,
            # so it gets the preflight's answer (or the path's 405 without CORS) and nothing else.
            return next_middleware(app)
        access = routes.access(event.path)
        # API Gateway runs the authorizer before the function; a request without its verdict
        # (a route deployed without it, a direct invoke) is refused all the same.
        if access is Access.KEY and not caller(app):
            raise AuthenticationFailed(keys.REFUSAL)
        if access is Access.DOCS and doc_keys is not None:
            doc_keys.identify(keys.authorization_headers(event.multi_value_headers))
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

    @app.not_found
    def not_found(_: Exception) -> Response[str]:
        event = app.current_event
        allowed = routes.allowed(event.path)
        if allowed:
            message = f"{event.path} does not answer {event.http_method}: use {' or '.join(allowed)}."
            return error_response(app, MethodNotAllowed(message, allowed=allowed))
        return error_response(app, NotFound(f"Unknown route: {event.http_method} {event.path}."))

    @app.exception_handler(Exception)
    def unexpected(_: Exception) -> Response[str]:
        logger.exception("unexpected error")
        metrics.add("Errors", 1)
        metrics.add("Errors.server_error", 1)
        return error_response(app, EditgateError("The server had an error while processing your request."))
