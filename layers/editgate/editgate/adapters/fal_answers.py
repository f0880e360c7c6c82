"""How fal answers, read: its status stream's server-sent events, its HTTP errors as the
gateway's errors, and whether (and when) a failed call is worth sending again."""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import requests

from editgate.domain.errors import (
    EditgateError,
    InvalidRequest,
    RateLimited,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamTimeout,
)


class FalRequestEnded(UpstreamError):
    """fal will never answer this request with images: it does not know it (any more), it was
    cancelled, or its runner failed. fal bills none of these, so the edit may be submitted anew."""


class ProviderRejected(InvalidRequest):
    """fal refused the input (its 422); ``param`` is the provider's field name."""


# Statuses worth another try; 502-504 only when they come from fal's ingress (see retryable).
_RETRY_STATUSES = {408, 409, 429, 502, 503, 504}

# Lines of a server-sent event stream end in CRLF, LF or CR.
_LINE_END = re.compile(rb"\r\n|\r|\n")


def is_event_stream(response: requests.Response) -> bool:
    return response.headers.get("content-type", "").partition(";")[0].strip() == "text/event-stream"


def bounded(
    chunks: Iterator[bytes], response: requests.Response, seconds: Callable[[], float]
) -> Iterator[bytes]:
    """A streamed body's chunks as they come, each read of the socket waiting at most
    ``seconds()`` (requests gives every read the timeout set when the request was sent)."""
    while (limit := seconds()) > 0:
        connection = getattr(response.raw, "connection", None)
        if connection is not None and connection.sock is not None:
            connection.sock.settimeout(limit)
        chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk
    raise requests.ReadTimeout("no time left to read the stream")


def event_data(chunks: Iterable[bytes]) -> Iterator[str]:
    """The data of each server-sent event (WHATWG's event-stream format): ``data`` lines add to
    the event, a blank line ends it; comments (fal's keep-alive) and other fields are skipped."""
    data: list[str] = []

    def events(lines: list[bytes]) -> Iterator[str]:
        for line in lines:
            field, _, value = line.partition(b":")
            if not line and data:
                yield "\n".join(data)
                data.clear()
            elif field == b"data":
                data.append(value.removeprefix(b" ").decode("utf-8", "replace"))

    pending = b""
    for chunk in chunks:
        text, held = pending + chunk, b""
        if text.endswith(b"\r"):  # maybe the first half of a CRLF: it waits for the next chunk
            text, held = text[:-1], b"\r"
        *lines, pending = _LINE_END.split(text)
        pending += held
        yield from events(lines)
    if pending.endswith(b"\r"):  # the stream's last line ended in a lone CR
        yield from events([pending[:-1]])


def status_of(data: str) -> str | None:
    """The ``status`` of one status event, None when it is not a status object."""
    try:
        event = json.loads(data)
    except ValueError:
        return None
    status = event.get("status") if isinstance(event, dict) else None
    return status if isinstance(status, str) else None


def drain(chunks: Iterator[bytes]) -> None:
    """Reads a stream to its end, as far as its bounds allow; a stream cut short is let go."""
    try:
        for _ in chunks:
            pass
    except requests.RequestException:
        pass


def retryable(response: requests.Response, *, poll: bool) -> bool:
    status = response.status_code
    if response.headers.get("x-fal-request-timeout-type"):
        return False  # fal's own start deadline (the one we set) passed: trying again cannot help
    if status in (502, 503, 504):
        return "x-fal-request-id" not in response.headers  # from the ingress: never reached a runner
    return status in _RETRY_STATUSES or (poll and status == 500)


def status_error(response: requests.Response) -> EditgateError:
    status = response.status_code
    if status in (401, 403):
        return UpstreamAuthFailed("The provider refused the gateway's credentials: check the fal key secret.")
    if status == 422:
        return rejection(response)
    if status == 429:
        return RateLimited(
            "The provider's queue is full; try again shortly.", retry_after=retry_after(response) or 5.0
        )
    if status == 504 and response.headers.get("x-fal-request-timeout-type"):
        return UpstreamTimeout("The provider could not start the edit in time; try again.", retry_after=5)
    return UpstreamError(f"The provider answered HTTP {status}.")


def transport_error(exc: requests.RequestException) -> EditgateError:
    if isinstance(exc, requests.Timeout) and not isinstance(exc, requests.ConnectTimeout):
        return UpstreamTimeout("The provider did not answer in time; try again.", retry_after=2)
    return UpstreamError(f"Could not reach the provider ({type(exc).__name__}).")


def never_sent(exc: requests.RequestException) -> bool:
    """The connection failed before the request went out, so sending it again is safe."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return type(reason).__name__ in ("NewConnectionError", "NameResolutionError", "ConnectTimeoutError")


def retry_after(response: requests.Response) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), capped at 30;
    None for a value that is neither."""
    if value := response.headers.get("retry-after-ms"):
        milliseconds = finite(value)
        return None if milliseconds is None else min(max(milliseconds / 1000, 0.0), 30.0)
    value = response.headers.get("retry-after")
    if not value:
        return None
    seconds = finite(value)
    if seconds is not None:
        return min(max(seconds, 0.0), 30.0)
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError):
        return None  # neither seconds nor a date (e.g. "soon"): the usual backoff applies
    return min(max(parsed.timestamp() - time.time(), 0.0), 30.0)


def finite(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def json_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise UpstreamError("The provider answered with malformed JSON.") from None
    if not isinstance(body, dict):
        raise UpstreamError("The provider answered with unexpected JSON.")
    return body


def rejection(response: requests.Response) -> ProviderRejected:
    """fal's 422 (pydantic-style ``detail``) as an error naming the provider field."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    first = detail[0] if isinstance(detail, list) and detail and isinstance(detail[0], dict) else {}
    loc = [str(part) for part in first.get("loc", []) if part != "body"]
    field = loc[0] if loc else None
    message = first.get("msg") or "the provider rejected the request"
    return ProviderRejected(f"Invalid value for '{field}': {message}.", param=field)
