"""fal's webhook deliveries, checked as fal documents them: an Ed25519 signature (hex, header
``X-Fal-Webhook-Signature``) over ``request_id \\n user_id \\n timestamp \\n sha256_hex(body)``
by one of the keys of fal's JWKS, a timestamp within ``tolerance`` seconds of now, and a JSON
body ``{request_id, gateway_request_id, status: OK|ERROR, payload, error}`` naming the request
the headers name. Pure: the keys are given (``editgate.adapters.fal_jwks`` reads them)."""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from editgate.domain.errors import AuthenticationFailed, InvalidRequest
from editgate.domain.json_values import parse_json

REQUEST_ID = "x-fal-webhook-request-id"
USER_ID = "x-fal-webhook-user-id"
TIMESTAMP = "x-fal-webhook-timestamp"
SIGNATURE = "x-fal-webhook-signature"
HEADERS = (REQUEST_ID, USER_ID, TIMESTAMP, SIGNATURE)
# fal's documented leeway: a delivery stamped further from now is refused (a replay, or a clock).
TOLERANCE_SECONDS = 300
SIGNATURE_BYTES = 64  # an Ed25519 signature


class WebhookRefused(AuthenticationFailed):
    """A delivery that is not, or cannot be shown to be, fal's own about a request of ours."""

    default_code = "invalid_fal_webhook"


class FalWebhook(BaseModel):
    """What fal POSTs when a request ends (``payload``: the result body, or fal's error detail)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    request_id: str = Field(min_length=1, max_length=128)
    gateway_request_id: str | None = None
    status: Literal["OK", "ERROR"]
    payload: dict[str, Any] | None = None
    error: str | None = None
    payload_error: str | None = None  # when fal could not serialise the payload


@dataclass(frozen=True)
class SignedDelivery:
    """One webhook request as received: the four signed header values and the raw body."""

    request_id: str
    user_id: str
    timestamp: str
    signature: bytes
    body: bytes

    def message(self) -> bytes:
        """What fal signs."""
        digest = hashlib.sha256(self.body).hexdigest()
        return "\n".join((self.request_id, self.user_id, self.timestamp, digest)).encode()


def delivery_from(headers: Mapping[str, str], body: bytes) -> SignedDelivery:
    """The delivery's signed parts, or ``WebhookRefused`` when a header is missing or the
    signature is not 64 bytes of hex."""
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    missing = [name for name in HEADERS if not lowered.get(name)]
    if missing:
        raise WebhookRefused(f"Not a fal webhook: header {', '.join(missing)} is missing.")
    try:
        signature = bytes.fromhex(lowered[SIGNATURE])
    except ValueError:
        signature = b""
    if len(signature) != SIGNATURE_BYTES:
        raise WebhookRefused("Not a fal webhook: its signature is not 64 bytes of hex.")
    return SignedDelivery(lowered[REQUEST_ID], lowered[USER_ID], lowered[TIMESTAMP], signature, body)


def signed_by_any(delivery: SignedDelivery, keys: Sequence[Ed25519PublicKey]) -> bool:
    """Whether one of ``keys`` made the delivery's signature."""
    message = delivery.message()
    for key in keys:
        try:
            key.verify(delivery.signature, message)
        except (InvalidSignature, binascii.Error, ValueError):
            continue
        return True
    return False


def check_fresh(delivery: SignedDelivery, now: float, tolerance: int = TOLERANCE_SECONDS) -> None:
    """Refuse a delivery stamped more than ``tolerance`` seconds before or after ``now``."""
    try:
        stamped = int(delivery.timestamp)
    except ValueError:
        raise WebhookRefused("Not a fal webhook: its timestamp is not unix seconds.") from None
    if abs(now - stamped) > tolerance:
        raise WebhookRefused(
            f"The fal webhook's timestamp is more than {tolerance} s from now: refused as a replay."
        )


def read_webhook(delivery: SignedDelivery) -> FalWebhook:
    """The delivery's body, which must be fal's webhook JSON about the request its headers name."""
    try:
        webhook = FalWebhook.model_validate(parse_json(delivery.body))
    except InvalidRequest:
        raise InvalidRequest("The fal webhook's body is not valid JSON.", code="invalid_body") from None
    except ValidationError:
        raise InvalidRequest(
            "The fal webhook's body is not fal's webhook shape.", code="invalid_body"
        ) from None
    if webhook.request_id != delivery.request_id:
        raise WebhookRefused("The fal webhook's body names another request than its headers.")
    return webhook
