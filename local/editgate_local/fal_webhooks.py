"""The fal emulator's webhooks, as fal sends them: when a request submitted with
``?fal_webhook=<url>`` ends, a POST of ``{request_id, gateway_request_id, status: OK|ERROR,
payload, error}`` (keys sorted, as fal's bodies come) signed with the emulator's own Ed25519 key
(headers ``X-Fal-Webhook-Request-Id``, ``-User-Id``, ``-Timestamp``, ``-Signature``: hex over
``request_id \\n user_id \\n timestamp \\n sha256_hex(body)``), whose public half the emulator
serves as a JWKS. A delivery not answered 2xx is sent again (fal: 10 times over 2 hours; here
``retries`` times, ``retry_seconds`` apart).

Faults, scripted (``Fault("webhook", kind=...)``) or at random rates (``WebhookFaults``):
``drop`` (never sent), ``duplicate`` (sent twice), ``slow`` (sent ``delay`` seconds late),
``corrupt`` (its body altered after signing; a retry then sends the genuine one)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

USER_ID = "emulator-user"
WebhookFault = Literal["drop", "duplicate", "slow", "corrupt"]
WEBHOOK_FAULTS: dict[str, WebhookFault] = {"drop": "drop", "duplicate": "duplicate", "slow": "slow",
                                           "corrupt": "corrupt"}  # fmt: skip


@dataclass
class WebhookFaults:
    """Each delivery's chances of each fault (one fault at most, tried in this order), seeded."""

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    corrupt: float = 0.0
    delay_seconds: float = 1.0
    seed: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def pick(self) -> WebhookFault | None:
        roll = self._random.random()
        for kind, rate in (("drop", self.drop), ("duplicate", self.duplicate),
                           ("slow", self.delay), ("corrupt", self.corrupt)):  # fmt: skip
            if roll < rate:
                return kind  # type: ignore[return-value]
            roll -= rate
        return None


@dataclass(frozen=True)
class Delivery:
    """One POST the emulator made (or chose not to make: ``status`` None when dropped)."""

    request_id: str
    url: str
    fault: WebhookFault | None
    status: int | None


class WebhookSigner:
    """The emulator's signing key and its JWKS."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]
        self._x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": self._x, "kid": self.key_id,
                          "alg": "EdDSA", "use": "sig"}]}  # fmt: skip

    def headers(self, request_id: str, body: bytes, *, timestamp: int | None = None,
                user_id: str = USER_ID) -> dict[str, str]:  # fmt: skip
        """The four signed headers of a delivery of ``body``, stamped now unless told."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        message = "\n".join((request_id, user_id, stamp, hashlib.sha256(body).hexdigest())).encode()
        return {
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": user_id,
            "X-Fal-Webhook-Timestamp": stamp,
            "X-Fal-Webhook-Signature": self._key.sign(message).hex(),
        }


def webhook_body(request_id: str, status_code: int, result: dict[str, Any]) -> bytes:
    """fal's webhook body for a request whose result call answers ``status_code`` with ``result``."""
    ok = status_code == 200
    document = {
        "request_id": request_id,
        "gateway_request_id": request_id,
        "status": "OK" if ok else "ERROR",
        "payload": result,
        "error": None if ok else f"Invalid status code: {status_code}",
    }
    return json.dumps(document, sort_keys=True).encode()


class WebhookSender:
    def __init__(self, signer: WebhookSigner, *, retries: int = 3, retry_seconds: float = 0.5) -> None:
        self.signer = signer
        self.retries = retries
        self.retry_seconds = retry_seconds
        self.faults = WebhookFaults()
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._session = requests.Session()

    def send(self, url: str, request_id: str, body: bytes, fault: WebhookFault | None = None,
             delay: float | None = None) -> None:  # fmt: skip
        """Deliver (on the caller's thread) as fal would, with ``fault`` (a ``slow`` one ``delay``
        seconds late) or one picked at random."""
        with self._lock:
            fault = fault or self.faults.pick()
        if fault == "drop":
            self._note(Delivery(request_id, url, fault, None))
            return
        if fault == "slow":
            time.sleep(self.faults.delay_seconds if delay is None else delay)
        if fault == "duplicate":
            self._post(url, request_id, body, fault)
        for attempt in range(self.retries + 1):
            corrupt = fault == "corrupt" and attempt == 0
            status = self._post(url, request_id, body, fault, corrupt=corrupt)
            if status is not None and 200 <= status < 300:
                return
            time.sleep(self.retry_seconds)

    def _post(self, url: str, request_id: str, body: bytes, fault: WebhookFault | None,
              *, corrupt: bool = False) -> int | None:  # fmt: skip
        headers = {**self.signer.headers(request_id, body), "Content-Type": "application/json"}
        sent = body.replace(b'"status": "', b'"status":  "', 1) if corrupt else body
        try:
            status: int | None = self._session.post(url, data=sent, headers=headers, timeout=30).status_code
        except requests.RequestException:
            status = None
        self._note(Delivery(request_id, url, fault, status))
        return status

    def _note(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)
