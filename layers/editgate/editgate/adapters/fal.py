"""fal's queue protocol over one pooled ``requests`` session: submit, then collect (follow the
status stream, or poll; then the result), and download.

Every call shares one deadline (a ``time.monotonic()`` instant) and retries what fal's own
clients retry (see ``fal_answers.retryable``), never past the deadline. The fal key is sent only to the
queue host, never to the hosts that serve result images.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
from aws_lambda_powertools import Logger, Tracer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from editgate.adapters import fal_answers
from editgate.adapters.fal_answers import FalRequestEnded
from editgate.domain.errors import (
    EditgateError,
    UpstreamError,
    UpstreamTimeout,
)
from editgate.domain.images import decode_data_uri

logger = Logger(child=True)
tracer = Tracer()

# fal-js polls every 500 ms: status calls are free, and a slower poll delays every answer.
_MAX_POLL_INTERVAL = 0.5
# fal writes a comment on a live status stream every 15 s: one silent for longer is dead.
_STREAM_IDLE_SECONDS = 20.0
# fal ends the status stream right after COMPLETED: reading that end keeps the connection pooled.
_STREAM_END_SECONDS = 0.5
_MAX_ATTEMPTS = 10
# A result call's answers for a request that ended without images: cancelled (400), unknown or
# expired (404, 410), failed on the runner (500).
_ENDED_RESULT_STATUSES = frozenset({400, 404, 410, 500})


class FalImage(BaseModel):
    model_config = ConfigDict(extra="allow")

    url: str


class FalOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    request_id: str = ""
    images: list[FalImage]
    seed: int | None = None
    has_nsfw_concepts: list[bool] | None = None
    retries: int = 0  # how many calls to fal were retried for this request
    seconds: float = 0.0  # submit to result, as the gateway saw it

    def flagged(self, index: int) -> bool:
        return bool(
            self.has_nsfw_concepts and index < len(self.has_nsfw_concepts) and self.has_nsfw_concepts[index]
        )


@dataclass
class _Retries:
    """How many calls of one fal request were sent again."""

    count: int = 0


class FalSubmission(BaseModel):
    """A request fal accepted: all a later attempt of the same edit needs to collect it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    request_id: str = Field(min_length=1)
    status_url: str
    response_url: str
    submitted_at: float  # time.time() when fal accepted it
    retries: int = 0  # how many times the submit was sent again before fal accepted it


class FalClient:
    def __init__(
        self,
        queue_url: str,
        key: Callable[[], str],
        *,
        poll_interval: float = 0.25,
        retry_base_seconds: float = 0.1,
        retention_seconds: int = 600,
        stream_idle_seconds: float = _STREAM_IDLE_SECONDS,
        session: requests.Session | None = None,
    ) -> None:
        self._queue_url = queue_url.rstrip("/")
        self._queue_host = urlsplit(self._queue_url).netloc
        self._key = key
        self._poll_interval = poll_interval
        self._retry_base = retry_base_seconds
        self._stream_idle = stream_idle_seconds
        # On every submit: fal keeps neither payload (by default 30 days), and its CDN drops the
        # output files after this long (by default 7 days or more); the gateway copies them at once.
        lifecycle = {"expiration_duration_seconds": retention_seconds}
        self._retention = {"X-Fal-Store-IO": "0", "X-Fal-Object-Lifecycle-Preference": json.dumps(lifecycle)}
        self._session = session or requests.Session()

    @tracer.capture_method(capture_response=False)
    def submit(
        self, endpoint_id: str, payload: dict[str, Any], deadline: float, *, webhook_url: str | None = None
    ) -> FalSubmission:
        """Put one request on fal's queue: from here on it is paid for when it runs. A submit that
        may have reached fal is never sent again (see ``_call``). ``webhook_url``: fal POSTs a
        signed webhook there when the request ends (``?fal_webhook=``, as fal-client sends it)."""
        retries = _Retries()
        # X-Fal-Request-Timeout: fal gives up on starting the request once we could not use it.
        start_limit = {"X-Fal-Request-Timeout": str(max(1, int(_remaining(deadline))))}
        headers = {**start_limit, **self._retention}
        params = {"fal_webhook": webhook_url} if webhook_url else None
        submitted = self._call("POST", f"{self._queue_url}/{endpoint_id}", deadline, retries,
                               sent_is_final=True, json=payload, headers=headers, params=params)  # fmt: skip
        try:
            submission = FalSubmission.model_validate(
                {**fal_answers.json_body(submitted), "submitted_at": time.time(), "retries": retries.count}
            )
        except ValidationError:
            raise UpstreamError(
                "The provider accepted the edit with an answer the gateway cannot read."
            ) from None
        logger.info(
            "fal request submitted", extra={"fal_request_id": submission.request_id, "endpoint": endpoint_id}
        )
        return submission

    @tracer.capture_method(capture_response=False)
    def collect(self, submission: FalSubmission, deadline: float) -> FalOutput:
        """Wait for a submitted request and return its result. Past the deadline the request is left
        running (a later attempt of the same edit collects it); ``FalRequestEnded`` when fal will
        never answer it with images."""
        retries = _Retries(submission.retries)
        self._wait(submission, deadline, retries)
        return self.result(submission, deadline, retries)

    @tracer.capture_method(capture_response=False)
    def result(
        self, submission: FalSubmission, deadline: float, retries: _Retries | None = None
    ) -> FalOutput:
        """The result of a request fal has ended (its webhook came, or its status said so):
        ``FalRequestEnded`` when it has no images, ``ProviderRejected`` when fal refused the input."""
        retries = retries or _Retries(submission.retries)
        request_id = submission.request_id
        result = self._call("GET", submission.response_url, deadline, retries,
                            accept={200, 422, *_ENDED_RESULT_STATUSES})  # fmt: skip
        if result.status_code == 422:
            raise fal_answers.rejection(result)
        if result.status_code in _ENDED_RESULT_STATUSES:
            raise FalRequestEnded(
                f"The provider ended the edit without a result (HTTP {result.status_code})."
            )
        try:
            output = FalOutput.model_validate(
                {**fal_answers.json_body(result), "request_id": request_id, "retries": retries.count,
                 "seconds": max(0.0, time.time() - submission.submitted_at)}
            )  # fmt: skip
        except ValidationError:
            raise UpstreamError("The provider answered with a result the gateway cannot read.") from None
        if not output.images:
            raise UpstreamError("The provider finished without returning an image.")
        logger.info("fal request completed", extra={"fal_request_id": request_id, "retries": retries.count})
        return output

    def ended(self, submission: FalSubmission, deadline: float) -> bool:
        """Whether fal has ended the request (one status call, no waiting): COMPLETED (failed ones
        too), or unknown to fal (the result call then says it ended without images)."""
        status = self._call("GET", submission.status_url, deadline, _Retries(), params={"logs": "0"},
                            poll=True, accept={200, 202, 404})  # fmt: skip
        return status.status_code == 404 or (
            status.status_code == 200 and fal_answers.json_body(status).get("status") == "COMPLETED"
        )

    def cancel(self, submission: FalSubmission, deadline: float) -> bool:
        """Ask fal to cancel a submitted request (``PUT …/cancel``): True when fal will cancel it
        (not started: nothing billed; running: it gets the signal), False when it had ended."""
        answer = self._call("PUT", f"{submission.response_url}/cancel", deadline, _Retries(),
                            accept={200, 202, 400, 404})  # fmt: skip
        logger.info("fal request cancel", extra={"fal_request_id": submission.request_id,
                                                 "status": answer.status_code})  # fmt: skip
        return answer.status_code in (200, 202)

    def download(self, url: str, deadline: float) -> bytes:
        """The bytes of a result image: a ``data:`` URI or an http(s) URL."""
        if url.startswith("data:"):
            try:
                return decode_data_uri(url)
            except ValueError:
                raise UpstreamError("The provider returned an unreadable image.") from None
        return self._call("GET", url, deadline, _Retries()).content

    def _wait(self, submission: FalSubmission, deadline: float, retries: _Retries) -> None:
        """Until fal says the request is COMPLETED: told by its status stream, else by polling."""
        if not self._follow_stream(submission, deadline):
            self._poll(submission, deadline, retries)

    def _follow_stream(self, submission: FalSubmission, deadline: float) -> bool:
        """Follow fal's status stream (server-sent events, one per change of status, COMPLETED
        last): True once fal says COMPLETED. False when the stream is refused, breaks, ends early
        or stays silent past fal's keep-alive: then the caller polls. Each socket read ends by the
        deadline; past it, ``UpstreamTimeout``."""
        url = f"{submission.status_url}/stream"
        if _remaining(deadline) <= 0:
            raise _late()
        try:
            with self._session.get(
                url, params={"logs": "0"}, headers={**self._auth(url), "Accept": "text/event-stream"},
                stream=True, timeout=(min(5.0, _remaining(deadline)), self._read_limit(deadline)),
            ) as response:  # fmt: skip
                if response.status_code != 200 or not fal_answers.is_event_stream(response):
                    logger.info("fal status stream refused: polling", extra={"status": response.status_code})
                    return False
                return self._told_completed(response, deadline)
        except requests.RequestException as exc:
            if _remaining(deadline) <= 0:
                raise _late() from None
            logger.info("fal status stream broke: polling", extra={"error": type(exc).__name__})
            return False

    def _told_completed(self, response: requests.Response, deadline: float) -> bool:
        """Reads a status stream until it says COMPLETED (True), ends, or sends an event that is
        not a status (False)."""
        chunks = response.iter_content(chunk_size=None)
        for data in fal_answers.event_data(
            fal_answers.bounded(chunks, response, partial(self._read_limit, deadline))
        ):
            status = fal_answers.status_of(data)
            if status is None:
                logger.info("fal status stream sent an unreadable event: polling")
                return False
            if status == "COMPLETED":  # a failed request ends COMPLETED too: the result call says so
                # fal ends the stream right after: reading its end keeps the connection pooled.
                end = min(deadline, time.monotonic() + _STREAM_END_SECONDS)
                fal_answers.drain(fal_answers.bounded(chunks, response, partial(_remaining, end)))
                return True
        logger.info("fal status stream ended before COMPLETED: polling")
        return False

    def _read_limit(self, deadline: float) -> float:
        """How long one read of the stream may wait: until the deadline, or until fal's keep-alive
        is overdue."""
        return min(_remaining(deadline), self._stream_idle)

    def _poll(self, submission: FalSubmission, deadline: float, retries: _Retries) -> None:
        interval = self._poll_interval
        while True:
            status = self._call(
                "GET", submission.status_url, deadline, retries, params={"logs": "0"}, poll=True,
                accept={200, 202, 404},
            )  # fmt: skip
            if status.status_code == 404:
                raise FalRequestEnded("The provider no longer knows the edit's request.")
            if status.status_code == 200 and fal_answers.json_body(status).get("status") == "COMPLETED":
                return  # a failed request ends COMPLETED too: its error comes from the result call
            if _remaining(deadline) <= interval:
                raise _late()
            time.sleep(interval)
            interval = min(interval * 1.5, _MAX_POLL_INTERVAL)  # fast first, then slower

    def _auth(self, url: str) -> dict[str, str]:
        if urlsplit(url).netloc != self._queue_host:
            return {}
        return {"Authorization": f"Key {self._key()}"}

    def _call(
        self,
        method: str,
        url: str,
        deadline: float,
        retries: _Retries,
        *,
        accept: set[int] | None = None,
        sent_is_final: bool = False,
        poll: bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One protocol call with retries. ``sent_is_final``: a request that may have reached fal
        is not sent again (a submit: a second one would be a second paid edit)."""
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            remaining = _remaining(deadline)
            if remaining <= 0:
                raise UpstreamTimeout("The edit did not finish in time; try again.", retry_after=2)
            try:
                response = self._session.request(
                    method, url, headers={**self._auth(url), **(headers or {})},
                    timeout=(min(5.0, remaining), remaining), **kwargs,
                )  # fmt: skip
            except requests.RequestException as exc:
                failure: EditgateError = fal_answers.transport_error(exc)
                may_retry = not sent_is_final or fal_answers.never_sent(exc)
                wait = self._backoff(attempt)
            else:
                if response.status_code in (accept or {200, 202}):
                    return response
                failure = fal_answers.status_error(response)
                may_retry = fal_answers.retryable(response, poll=poll)
                wait = fal_answers.retry_after(response) or self._backoff(attempt)
            if not may_retry or attempt == _MAX_ATTEMPTS or time.monotonic() + wait >= deadline:
                raise failure
            retries.count += 1
            logger.info("retrying fal call", extra={"attempt": attempt, "wait_seconds": round(wait, 3)})
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        """fal-client's: min(base * 2^(n-1), 30 s) times a random 0.5 to 1.5."""
        delay: float = min(self._retry_base * 2 ** (attempt - 1), 30.0)
        return delay * random.uniform(0.5, 1.5)


def _late() -> UpstreamTimeout:
    return UpstreamTimeout(
        "The edit did not finish in time; it goes on at the provider, and retrying the same "
        "request collects it without a second charge.",
        retry_after=2,
    )


def _remaining(deadline: float) -> float:
    return deadline - time.monotonic()
