"""fal's webhook signing keys: its JWKS (``https://rest.alpha.fal.ai/.well-known/jwks.json``,
Ed25519 keys as OKP JWKs), read once and kept up to a day, as fal advises. A delivery no kept key
verifies may have been signed by a key fal added since: the keys are read again then, at most
once per ``refresh_seconds``, so that forgeries cannot make the function hammer fal."""

from __future__ import annotations

import base64
import binascii
import threading
import time
from typing import Any

import requests
from aws_lambda_powertools import Logger
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from editgate.domain.errors import UpstreamError

logger = Logger(child=True)

ONE_DAY = 24 * 3600


class FalSigningKeys:
    def __init__(
        self,
        url: str,
        *,
        max_age_seconds: float = ONE_DAY,
        refresh_seconds: float = 60.0,
        timeout_seconds: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        self._url = url
        self._max_age = max_age_seconds
        self._refresh = refresh_seconds
        self._timeout = timeout_seconds
        self._session = session or requests.Session()
        self._lock = threading.Lock()
        self._keys: list[Ed25519PublicKey] = []
        self._read_at: float | None = None  # time.monotonic() of the last read that succeeded
        self._tried_at: float | None = None  # of the last read, whatever it gave

    def current(self) -> list[Ed25519PublicKey]:
        """The kept keys, read anew once they are a day old (or never read)."""
        with self._lock:
            if self._read_at is None or time.monotonic() - self._read_at >= self._max_age:
                self._read()
            return list(self._keys)

    def refreshed(self) -> list[Ed25519PublicKey] | None:
        """The keys read anew, when the last read is more than ``refresh_seconds`` old; None
        otherwise (nothing new to try)."""
        with self._lock:
            if self._tried_at is not None and time.monotonic() - self._tried_at < self._refresh:
                return None
            self._read()
            return list(self._keys)

    def _read(self) -> None:
        """Read the JWKS; a failed read keeps the keys read before (if any), or is an
        ``UpstreamError`` (fal retries the delivery)."""
        self._tried_at = time.monotonic()
        try:
            response = self._session.get(self._url, timeout=self._timeout)
            response.raise_for_status()
            keys = ed25519_keys(response.json())
        except (requests.RequestException, ValueError) as exc:
            logger.warning("fal's webhook keys could not be read", extra={"error": type(exc).__name__})
            if not self._keys:
                raise UpstreamError("fal's webhook signing keys could not be read; retry later.") from None
            return
        self._keys, self._read_at = keys, time.monotonic()
        logger.info("fal's webhook keys read", extra={"keys": len(keys)})


def ed25519_keys(document: Any) -> list[Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS document (others are skipped); a ``ValueError`` when it has none."""
    found = []
    entries = document.get("keys") if isinstance(document, dict) else None
    for jwk in entries if isinstance(entries, list) else []:
        if (
            not isinstance(jwk, dict)
            or jwk.get("kty", "OKP") != "OKP"
            or jwk.get("crv", "Ed25519") != "Ed25519"
        ):
            continue
        x = jwk.get("x")
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)) if isinstance(x, str) else b""
            found.append(Ed25519PublicKey.from_public_bytes(raw))
        except (binascii.Error, ValueError):
            continue
    if not found:
        raise ValueError("the JWKS holds no Ed25519 key")
    return found
