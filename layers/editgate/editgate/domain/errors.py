"""Typed domain errors. Each knows its OpenAI error fields, HTTP status and whether a client retry
could help; ``editgate.api.http_edge`` turns them into answers in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar


class EditgateError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    # Whether a client retry of the same request could succeed (sent as x-should-retry).
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        # Seconds a client should wait before retrying (sent as retry-after), when known.
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        """HTTP headers this error's answer carries beyond the ones every error has."""
        return {}


class InvalidRequest(EditgateError):
    status = 400
    type = "invalid_request_error"
    default_code = "invalid_value"


class ContentPolicyViolation(InvalidRequest):
    default_code = "content_policy_violation"


class AuthenticationFailed(EditgateError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class NotFound(EditgateError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class MethodNotAllowed(EditgateError):
    """A known path asked with a method it does not answer."""

    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"

    def __init__(self, message: str, *, allowed: Sequence[str]) -> None:
        super().__init__(message)
        self.allowed = tuple(allowed)

    def headers(self) -> dict[str, str]:
        return {"allow": ", ".join(self.allowed)}


class RequestInProgress(EditgateError):
    """The same request (or Idempotency-Key) is being answered right now: retry shortly."""

    status = 409
    type = "invalid_request_error"
    default_code = "request_in_progress"
    retryable = True


class IdempotencyKeyReused(EditgateError):
    """An Idempotency-Key already used for a different request."""

    status = 409
    type = "invalid_request_error"
    default_code = "idempotency_key_reused"


class PayloadTooLarge(EditgateError):
    status = 413
    type = "invalid_request_error"
    default_code = "payload_too_large"


class RateLimited(EditgateError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retryable = True


class UpstreamError(EditgateError):
    """fal failed in a way the caller cannot fix; a retry may succeed."""

    status = 502
    type = "server_error"
    default_code = "upstream_error"
    retryable = True


class UpstreamAuthFailed(UpstreamError):
    """fal refused the gateway's own key: only the operator can fix it."""

    default_code = "upstream_auth_failed"
    retryable = False


class UpstreamTimeout(EditgateError):
    status = 504
    type = "server_error"
    default_code = "upstream_timeout"
    retryable = True
