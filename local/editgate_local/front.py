"""A stand-in for API Gateway (REST, Lambda proxy): each HTTP request becomes the proxy event real
API Gateway would send (a base64 body for the binary media types) and goes to the same handler."""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pybase64

from editgate.adapters.keys import REFUSAL, authorization_headers
from editgate.domain.envelope import json_string_size
from editgate_local.background_server import BackgroundServer

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

BINARY_MEDIA_TYPES = ("multipart/form-data",)  # template.yaml: BinaryMediaTypes
# template.yaml: the paths whose events say Auth NONE; the authorizer and usage plan skip them,
# as they skip every OPTIONS (the Api's Cors adds one to each path, without the authorizer).
OPEN_PATHS = frozenset(
    {"/", "/docs", "/v1/openapi.json", "/openapi.json", "/playground", "/v1/health", "/health"}
)
API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
LAMBDA_MAX_EVENT = 6_291_456
LAMBDA_MAX_ANSWER = 6_291_456  # Lambda refuses a larger answer (Function.ResponseSizeTooLarge)
# template.yaml: ApiTimeoutSeconds' default, the edit function's timeout.
FUNCTION_TIMEOUT_SECONDS = 29.0
STAGE = "local"


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that handlers use."""

    function_name: str = "EditApiFunction"
    memory_limit_in_mb: int = 1769  # template.yaml
    timeout_seconds: float = FUNCTION_TIMEOUT_SECONDS
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


def load_handler(
    path: Path, name: str = "lambda_handler", environment: int = 0, env: Mapping[str, str] | None = None
) -> Handler:
    """Import a function's module from its file, as the Lambda runtime does from its CodeUri: a
    new module each call, like a new execution environment with its own cold start. ``env``: the
    function's own environment variables, over the process's while it starts (the handlers read
    their settings once, at import)."""
    spec = importlib.util.spec_from_file_location(f"editgate_function_{path.parent.name}_{environment}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    saved = {name: os.environ.get(name) for name in env or {}}
    os.environ.update(env or {})
    try:
        spec.loader.exec_module(module)
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value
    handler: Handler = getattr(module, name)
    return handler


def proxy_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
    authorizer: Mapping[str, Any] | None = None,
    execute_api_stage: str | None = None,
) -> dict[str, Any]:
    """The API Gateway REST proxy event for one request; ``authorizer``: what the REQUEST
    authorizer answered (its principal and context), as API Gateway passes it on.
    ``execute_api_stage``: the request came to execute-api's own domain, where the stage leads
    the path (``/api/v1/models``); otherwise the front's, like a custom domain, with none."""
    url = urlsplit(target)
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    query = parse_qs(url.query, keep_blank_values=True)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    binary = any(content_type.lower().startswith(t) for t in BINARY_MEDIA_TYPES)
    text_body: str | None
    if not body:
        text_body = None
    elif binary:
        text_body = pybase64.b64encode(body).decode("ascii")
    else:
        text_body = body.decode("utf-8", errors="replace")
    request_id = str(uuid.uuid4())
    return {
        "resource": url.path,
        "path": url.path,
        "httpMethod": method,
        "headers": {k: v[-1] for k, v in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": next((v for k, v in headers if k.lower() == "host"), "localhost"),
            "httpMethod": method,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": next((v for k, v in headers if k.lower() == "user-agent"), ""),
            },
            "path": f"/{execute_api_stage}{url.path}" if execute_api_stage else url.path,
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "resourceId": "local",
            "resourcePath": url.path,
            "stage": execute_api_stage or STAGE,
            **({"authorizer": dict(authorizer)} if authorizer is not None else {}),
        },
        "body": text_body,
        "isBase64Encoded": binary and bool(body),
    }


@dataclass(frozen=True)
class UsagePlan:
    """Per-key limits, as the template's usage plan sets them (KeyRateLimit, KeyBurstLimit,
    KeyDailyQuota)."""

    rate: float = 5.0
    burst: int = 10
    daily_quota: int = 1000


# API Gateway's own answers, worded as template.yaml's gateway responses word them.
_UNAUTHORIZED = (401, REFUSAL, "invalid_api_key")
_THROTTLED = (429, "Too many requests for this API key: slow down and retry.", "rate_limit_exceeded")
_QUOTA = (429, "This API key has used its daily quota of requests.", "quota_exceeded")


class Gate:
    """API Gateway's part before the function: the REQUEST authorizer (run as API Gateway runs
    it, its verdict cached by the Authorization header for 5 minutes; no header, no call) and the
    usage plan's throttle (a token bucket per key) and daily quota."""

    def __init__(self, authorizer: Handler, plan: UsagePlan, cache_seconds: float = 300.0) -> None:
        self._authorizer = authorizer
        self._plan = plan
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._verdicts: dict[str, tuple[float, dict[str, Any]]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._used: dict[tuple[str, str], int] = {}

    def admit(self, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """None to let the request through (``event`` now carries the authorizer's context), or
        API Gateway's own answer (with the request id and retry advice the gateway responses add)."""
        values = authorization_headers(event.get("multiValueHeaders"))
        verdict = self._verdict("\n".join(values), event) if values else None
        limited = None if verdict is None else self._limit(str(verdict.get("usageIdentifierKey", "")))
        if verdict is None or limited is not None:
            status, message, code = limited or _UNAUTHORIZED
            _, answer_headers, body = _error(
                status, message, code, "requests" if limited else "invalid_request_error"
            )
            answer_headers += [("x-request-id", event["requestContext"]["requestId"]),
                               ("x-should-retry", "true" if limited else "false")]  # fmt: skip
            if limited is not None:
                answer_headers.append(("retry-after", "1" if limited is _THROTTLED else "3600"))
            return status, answer_headers, body
        event["requestContext"]["authorizer"] = {
            **(verdict.get("context") or {}), "principalId": verdict["principalId"], "integrationLatency": 0,
        }  # fmt: skip
        return None

    def _verdict(self, authorization: str, event: dict[str, Any]) -> dict[str, Any] | None:
        now = time.monotonic()
        with self._lock:
            cached = self._verdicts.get(authorization)
        if cached is not None and cached[0] > now:
            return cached[1]
        arn = f"arn:aws:execute-api:us-east-1:123456789012:local/{STAGE}/{event['httpMethod']}{event['path']}"
        try:
            verdict = self._authorizer(
                {**event, "type": "REQUEST", "methodArn": arn}, LambdaContext("Authorizer")
            )
        except Exception:  # API Gateway reads the authorizer's "Unauthorized" error as a 401
            return None
        with self._lock:
            self._verdicts[authorization] = (now + self._cache_seconds, verdict)
        return verdict

    def _limit(self, usage_key: str) -> tuple[int, str, str] | None:
        now = time.monotonic()
        day = time.strftime("%Y-%m-%d", time.gmtime())
        with self._lock:
            tokens, last = self._buckets.get(usage_key, (float(self._plan.burst), now))
            tokens = min(float(self._plan.burst), tokens + (now - last) * self._plan.rate)
            if tokens < 1:
                self._buckets[usage_key] = (tokens, now)
                return _THROTTLED
            used = self._used.get((usage_key, day), 0)
            if used >= self._plan.daily_quota:
                return _QUOTA
            self._buckets[usage_key] = (tokens - 1, now)
            self._used[(usage_key, day)] = used + 1
        return None


class ApiFront:
    """``environments``: the function's handler, once per execution environment. Like Lambda,
    each environment runs one invocation at a time; more environments, more run at once.
    ``gate``: the authorizer and usage plan in front of every route."""

    def __init__(
        self,
        environments: Sequence[Handler],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_seconds: float = FUNCTION_TIMEOUT_SECONDS,
        gate: Gate | None = None,
        open_functions: Mapping[str, Handler] | None = None,
    ):
        self.timeout_seconds = timeout_seconds
        self.gate = gate
        # Other functions of the API by path, open at the gateway (fal's webhook: fal has no key).
        self.open_functions = dict(open_functions or {})
        # The latest invocations' durations in seconds, as Lambda bills them (benchmarks price them).
        self.durations: deque[float] = deque(maxlen=10_000)
        self._idle: queue.Queue[Handler] = queue.Queue()
        for handler in environments:
            self._idle.put(handler)
        self._server = BackgroundServer(_http_handler_for(self), host=host, port=port, name="api-front")

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> ApiFront:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def call(self, event: dict[str, Any]) -> dict[str, Any]:
        """One invocation in an idle execution environment, waiting for one when all are busy."""
        handler = self._idle.get()
        started = time.perf_counter()
        try:
            answer: dict[str, Any] = handler(event, LambdaContext(timeout_seconds=self.timeout_seconds))
            return answer
        finally:
            self.durations.append(time.perf_counter() - started)
            self._idle.put(handler)

    def invoke(self, event: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """Call the handler as Lambda would and turn its answer into an HTTP response: the body as
        the function wrote it, whatever its type (JSON, a page, ``text/event-stream``: API Gateway
        REST buffers the body and sends it whole), or API Gateway's 502 for an answer Lambda
        refuses."""
        path = event["path"].rstrip("/") or "/"
        other = self.open_functions.get(path)
        open_route = other is not None or path in OPEN_PATHS or event["httpMethod"] == "OPTIONS"
        gate = None if open_route else self.gate
        refused = gate.admit(event) if gate is not None else None
        if refused is not None:
            return refused
        if _event_size(event) > LAMBDA_MAX_EVENT:
            message = f"The request is larger than Lambda's {LAMBDA_MAX_EVENT:,}-byte limit."
            return _error(413, message, "payload_too_large")
        answer = self.call(event) if other is None else other(event, LambdaContext("FalWebhookFunction"))
        if _answer_size(answer) > LAMBDA_MAX_ANSWER:
            return _error(502, "Internal server error", "gateway_error", "server_error")  # DEFAULT_5XX
        headers = [(k, v) for k, v in (answer.get("headers") or {}).items()]
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            headers.extend((name, value) for value in values)
        raw = answer.get("body") or ""
        data = pybase64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()
        return int(answer["statusCode"]), headers, data


def _event_size(event: dict[str, Any]) -> int:
    """The event's size as Lambda counts it (its JSON), without encoding a base64 body again."""
    if not event.get("isBase64Encoded"):
        return len(json.dumps(event))
    return len(json.dumps({**event, "body": ""})) + len(event["body"])


def _answer_size(answer: dict[str, Any]) -> int:
    """The answer's size as Lambda counts it (its JSON), without encoding a large body again."""
    return len(json.dumps({**answer, "body": ""})) + json_string_size(answer.get("body") or "")


class _BadFraming(Exception):
    """A request whose body cannot be read as HTTP frames it: API Gateway answers 400 itself."""


def _error(
    status: int, message: str, code: str, error_type: str = "invalid_request_error"
) -> tuple[int, list[tuple[str, str]], bytes]:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    # As template.yaml's gateway responses: every answer of API Gateway's own is nosniff too.
    headers = [("content-type", "application/json"), ("x-content-type-options", "nosniff")]
    return status, headers, json.dumps(body).encode()


def _http_handler_for(front: ApiFront) -> type[BaseHTTPRequestHandler]:
    return type("ApiFrontHandler", (_FrontHandler,), {"front": front})


class _FrontHandler(BaseHTTPRequestHandler):
    """HTTP in, the proxy event to the ``front`` of its server (set by ``_http_handler_for``), the
    function's answer out."""

    front: ApiFront
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 30  # a client that stops sending mid-body is dropped, as API Gateway would

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_PUT(self) -> None:
        self._forward()

    def do_DELETE(self) -> None:
        self._forward()

    def do_OPTIONS(self) -> None:
        self._forward()

    def _forward(self) -> None:
        status, headers, data = self._answer()
        try:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client is gone (it may have cut its own body short)
            self.close_connection = True

    def _answer(self) -> tuple[int, list[tuple[str, str]], bytes]:
        try:
            body = self._body()
        except _BadFraming as exc:
            self.close_connection = True
            return _error(400, str(exc), "invalid_body")
        if body is None:
            self.close_connection = True
            return _error(413, "The request is larger than API Gateway's 10 MB limit.", "payload_too_large")
        # API Gateway hands Lambda the assembled body: the transfer framing is gone.
        kept = [(k, v) for k, v in self.headers.items() if k.lower() != "transfer-encoding"]
        return self.front.invoke(proxy_event(self.command, self.path, kept, body, self.client_address[0]))

    def _body(self) -> bytes | None:
        """The request body, sized or chunked (streamed uploads, e.g. the Node SDK's); None past
        API Gateway's limit."""
        try:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                return self._chunked()
            length = int(self.headers.get("content-length") or 0)
            if length < 0:
                raise ValueError("negative Content-Length")
            return self._exactly(length) if length <= API_GATEWAY_MAX_BODY else None
        except (ValueError, OSError) as exc:
            raise _BadFraming(f"The request body could not be read ({exc}).") from None

    def _chunked(self) -> bytes | None:
        body = bytearray()
        while size := int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16):
            body += self._exactly(size)
            self.rfile.readline(64)  # the CRLF after each chunk
            if len(body) > API_GATEWAY_MAX_BODY:
                return None
        while self.rfile.readline(8192).strip():
            pass  # trailers, up to the blank line
        return bytes(body)

    def _exactly(self, length: int) -> bytes:
        data = self.rfile.read(length)
        if len(data) < length:
            raise _BadFraming(f"The request body ended after {len(data):,} of {length:,} bytes.")
        return data
