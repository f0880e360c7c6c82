"""fal's queue protocol over one pooled ``requests`` session: submit, poll, result, download.

Every call shares one deadline (a ``time.monotonic()`` instant). The fal key is sent only to the
queue host, never to the hosts that serve result images.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from aws_lambda_powertools import Logger
from pydantic import BaseModel, ConfigDict

from editgate.errors import InvalidRequest, UpstreamError, UpstreamTimeout
from editgate.images import decode_data_uri

logger = Logger(child=True)

_MAX_POLL_INTERVAL = 2.0


class FalImage(BaseModel):
    model_config = ConfigDict(extra="allow")

    url: str


class FalOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    request_id: str = ""
    images: list[FalImage]
    seed: int | None = None
    has_nsfw_concepts: list[bool] | None = None


class ProviderRejected(InvalidRequest):
    """fal refused the input (its 422); ``param`` is the provider's field name."""


class FalClient:
    def __init__(
        self,
        queue_url: str,
        key: Callable[[], str],
        *,
        poll_interval: float = 0.25,
        session: requests.Session | None = None,
    ) -> None:
        self._queue_url = queue_url.rstrip("/")
        self._queue_host = urlsplit(self._queue_url).netloc
        self._key = key
        self._poll_interval = poll_interval
        self._session = session or requests.Session()

    def run(self, endpoint_id: str, payload: dict[str, Any], deadline: float) -> FalOutput:
        """Submit, wait for completion, and return the result."""
        submitted = self._call("POST", f"{self._queue_url}/{endpoint_id}", deadline, json=payload)
        queued = submitted.json()
        request_id = queued["request_id"]
        logger.info("fal request submitted", extra={"fal_request_id": request_id, "endpoint": endpoint_id})
        interval = self._poll_interval
        while True:
            status = self._call("GET", queued["status_url"], deadline, params={"logs": "0"})
            if status.status_code == 200 and status.json().get("status") == "COMPLETED":
                break
            if _remaining(deadline) <= interval:
                self._cancel(queued.get("cancel_url"), request_id)
                raise UpstreamTimeout(
                    "The edit did not finish in time and was cancelled; try again.", code="upstream_timeout"
                )
            time.sleep(interval)
            interval = min(interval * 1.5, _MAX_POLL_INTERVAL)  # fast first, then slower
        result = self._call("GET", queued["response_url"], deadline, accept={200, 422})
        if result.status_code == 422:
            raise _rejection(result)
        output = FalOutput.model_validate({**result.json(), "request_id": request_id})
        if not output.images:
            raise UpstreamError("The provider finished without returning an image.")
        return output

    def fetch(self, url: str, deadline: float) -> bytes:
        """The bytes of a result image: a ``data:`` URI or an http(s) URL."""
        if url.startswith("data:"):
            try:
                return decode_data_uri(url)
            except ValueError:
                raise UpstreamError("The provider returned an unreadable image.") from None
        return self._call("GET", url, deadline).content

    def _cancel(self, cancel_url: str | None, request_id: str) -> None:
        if not cancel_url:
            return
        try:
            self._session.put(cancel_url, headers=self._headers(cancel_url), timeout=3)
            logger.info("fal request cancelled", extra={"fal_request_id": request_id})
        except requests.RequestException:
            logger.warning("fal cancel failed", extra={"fal_request_id": request_id})

    def _headers(self, url: str) -> dict[str, str]:
        if urlsplit(url).netloc != self._queue_host:
            return {}
        return {"Authorization": f"Key {self._key()}"}

    def _call(
        self, method: str, url: str, deadline: float, *, accept: set[int] | None = None, **kwargs: Any
    ) -> requests.Response:
        remaining = _remaining(deadline)
        if remaining <= 0:
            raise UpstreamTimeout("The edit did not finish in time; try again.")
        try:
            response = self._session.request(
                method, url, headers=self._headers(url), timeout=(min(5.0, remaining), remaining), **kwargs
            )
        except requests.Timeout:
            raise UpstreamTimeout("The provider did not answer in time; try again.") from None
        except requests.RequestException as exc:
            raise UpstreamError(f"Could not reach the provider ({type(exc).__name__}).") from None
        if response.status_code in (accept or {200, 202}):
            return response
        if response.status_code in (401, 403):
            raise UpstreamError(
                "The provider refused the gateway's credentials: check the fal key secret.",
                code="upstream_auth_failed",
            )
        raise UpstreamError(f"The provider answered HTTP {response.status_code}.")


def _remaining(deadline: float) -> float:
    return deadline - time.monotonic()


def _rejection(response: requests.Response) -> ProviderRejected:
    """fal's 422 (pydantic-style ``detail``) as an error naming the provider field."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    first = detail[0] if isinstance(detail, list) and detail and isinstance(detail[0], dict) else {}
    loc = [str(part) for part in first.get("loc", []) if part != "body"]
    field = loc[-1] if loc else None
    message = first.get("msg") or "the provider rejected the request"
    return ProviderRejected(f"Invalid value for '{field}': {message}.", param=field)
