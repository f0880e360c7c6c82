"""Jobs' callbacks: a ``callback_url`` checked as an ``image_url`` is (http(s), every address of its
host public, see ``adapters.fetch``) when the job is submitted and again at each delivery, which
connects to the address it checked and follows no redirect."""

from __future__ import annotations

import urllib3
from aws_lambda_powertools import Logger

from editgate.adapters.fetch import AddressPolicy, Resolver, TargetRefused, checked_target, is_public, resolve
from editgate.domain.errors import InvalidRequest

logger = Logger(child=True)
# What a receiver has to answer a delivery: Standard Webhooks asks for a quick 2xx.
DELIVERY_SECONDS = 15.0
MAX_URL_LENGTH = 2048


class CallbackSender:
    def __init__(self, *, resolver: Resolver = resolve, allowed: AddressPolicy = is_public) -> None:
        self._resolve = resolver
        self._allowed = allowed

    def check(self, url: object) -> str:
        """``url`` if a delivery may go there, else a 400 naming ``callback_url``."""
        if (
            not isinstance(url, str)
            or not url.startswith(("http://", "https://"))
            or len(url) > MAX_URL_LENGTH
        ):
            raise _refused(f"expected an http(s) URL of at most {MAX_URL_LENGTH} characters")
        try:
            checked_target(url, self._resolve, self._allowed)
        except TargetRefused as exc:
            raise _refused(str(exc)) from None
        return url

    def deliver(self, url: str, headers: dict[str, str], body: str) -> bool:
        """POST one delivery; True when the receiver answered 2xx."""
        try:
            target = checked_target(url, self._resolve, self._allowed)
        except TargetRefused as exc:
            logger.warning("callback not delivered: its URL is refused now", extra={"reason": str(exc)})
            return False
        timeout = urllib3.Timeout(connect=5.0, read=DELIVERY_SECONDS)
        with target.pool(timeout) as pool:
            try:
                answer = pool.urlopen(
                    "POST", target.path, body=body.encode(), redirect=False,
                    headers={**target.headers(), **headers, "Content-Type": "application/json"},
                )  # fmt: skip
            except urllib3.exceptions.HTTPError as exc:
                logger.info("callback not delivered", extra={"error": type(exc).__name__})
                return False
        logger.info("callback delivered", extra={"status": answer.status})
        return 200 <= answer.status < 300


def _refused(reason: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid value for 'callback_url': {reason}.", param="callback_url", code="invalid_callback_url"
    )
