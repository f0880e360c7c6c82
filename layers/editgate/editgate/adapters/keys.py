"""API keys with identities. A key is a random secret shown once; what is kept is its SHA-256,
with the key's id, owner, expiry, revocation and the usage-plan key API Gateway throttles it by.
The authorizer reads keys through Powertools Parameters (DynamoDB, cached in memory)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from aws_lambda_powertools.utilities.parameters import DynamoDBProvider, GetParameterError
from pydantic import BaseModel, ValidationError

from editgate.adapters.aws import dynamodb_client, get_item
from editgate.domain.errors import AuthenticationFailed
from editgate.domain.jobs import new_webhook_secret
from editgate.domain.json_values import json_text

KEY_PREFIX = "sk-eg-"
# One answer for every refusal: a caller learns nothing about which check failed.
REFUSAL = "Incorrect or missing API key. Send 'Authorization: Bearer <key>' with a key of this gateway."


class KeyRecord(BaseModel):
    key_id: str
    owner: str
    key_hash: str
    created: int
    expires_at: int | None = None
    revoked: bool = False
    # The value of the API Gateway API key in the usage plan: what throttles and counts this key.
    usage_key: str

    def usable(self, now: float) -> bool:
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def authorization_headers(multi_value_headers: Mapping[str, Sequence[str]] | None) -> list[str]:
    """Every Authorization header of an API Gateway event, whatever its letter case."""
    headers = multi_value_headers or {}
    return [value for name, values in headers.items() if name.lower() == "authorization" for value in values]


def bearer_key(authorization: str | None) -> str | None:
    """The key in ``Authorization: Bearer <key>``, or None for any other header."""
    scheme, _, presented = (authorization or "").partition(" ")
    return presented.strip() or None if scheme.lower() == "bearer" else None


def new_record(owner: str, *, key: str | None = None, expires_at: int | None = None) -> tuple[str, KeyRecord]:
    """A new key (or ``key``, for a local stack's fixed ones) and the record that is kept of it."""
    key = key or KEY_PREFIX + secrets.token_urlsafe(32)
    record = KeyRecord(
        key_id=f"key_{secrets.token_hex(8)}",
        owner=owner,
        key_hash=key_hash(key),
        created=int(time.time()),
        expires_at=expires_at,
        usage_key=secrets.token_urlsafe(30),
    )
    return key, record


class KeyDirectory:
    """Who a request's key belongs to, or ``AuthenticationFailed``."""

    def __init__(self, table_name: str, max_age_seconds: int) -> None:
        self._table_name = table_name
        self._max_age = max_age_seconds

    @functools.cached_property
    def _provider(self) -> DynamoDBProvider:
        # Built at the first key it checks: a boto3 resource costs cold-start time.
        return DynamoDBProvider(table_name=self._table_name, key_attr="id", value_attr="value")

    def identify(self, authorization: Sequence[str], now: float | None = None) -> KeyRecord:
        """``authorization``: every Authorization header the request carried (exactly one is
        accepted: two could be read differently by two hops)."""
        presented = bearer_key(authorization[0]) if len(authorization) == 1 else None
        if presented is None:
            raise AuthenticationFailed(REFUSAL)
        digest = key_hash(presented)
        try:
            raw = self._provider.get(digest, max_age=self._max_age, transform="json")
            record = KeyRecord.model_validate(raw)
        except (GetParameterError, ValidationError):
            raise AuthenticationFailed(REFUSAL) from None
        usable = record.usable(time.time() if now is None else now)
        if not (hmac.compare_digest(record.key_hash, digest) and usable):
            raise AuthenticationFailed(REFUSAL)
        return record


class KeyTable:
    """The API keys' records, keyed by the key's hash, written by ``editgate keys`` and read by
    the authorizer through Powertools Parameters (``KeyDirectory``)."""

    def __init__(self, table_name: str) -> None:
        self._table = table_name

    @property
    def name(self) -> str:
        return self._table

    def put(self, key_hash: str, record: dict[str, Any]) -> None:
        dynamodb_client().put_item(
            TableName=self._table, Item={"id": {"S": key_hash}, "value": {"S": json_text(record)}}
        )

    def records(self) -> Iterator[dict[str, Any]]:
        for page in dynamodb_client().get_paginator("scan").paginate(TableName=self._table):
            for item in page["Items"]:
                if "value" in item:  # not a key's webhook secret
                    yield json.loads(item["value"]["S"])


class WebhookSecrets:
    """Each key's Standard Webhooks secret, which signs its jobs' callbacks: an item
    ``webhook#<key id>`` of the keys' table beside the key's record (the secret itself, since
    signing needs it; the authorizer never reads these items)."""

    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def get(self, key_id: str) -> str | None:
        item = get_item(self._table, _secret_id(key_id))
        return item["secret"]["S"] if "secret" in item else None

    def rotate(self, key_id: str) -> str:
        """A new secret for the key, replacing any earlier one (shown once, by its caller)."""
        secret = new_webhook_secret()
        dynamodb_client().put_item(
            TableName=self._table, Item={"id": {"S": _secret_id(key_id)}, "secret": {"S": secret}}
        )
        return secret


def _secret_id(key_id: str) -> str:
    return f"webhook#{key_id}"
