"""Typed domain errors. Each knows its OpenAI error fields and HTTP status; handlers map them
to answers in one place (``editgate.api.error_response``)."""

from __future__ import annotations

from typing import Any, ClassVar


class EditgateError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    # Whether a client retry of the same request could succeed (sent as x-should-retry).
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(EditgateError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_value"


class AuthenticationFailed(EditgateError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class NotFound(EditgateError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class PayloadTooLarge(EditgateError):
    status = 413
    type = "invalid_request_error"
    default_code = "payload_too_large"


class UpstreamError(EditgateError):
    """fal failed in a way the caller cannot fix."""

    status = 502
    type = "server_error"
    default_code = "upstream_error"
    retryable = True


class UpstreamTimeout(EditgateError):
    status = 504
    type = "server_error"
    default_code = "upstream_timeout"
    retryable = True
