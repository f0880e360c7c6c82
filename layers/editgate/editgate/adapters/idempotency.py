"""Retries are not double charges: a repeated edit gets the stored answer of the first.

An edit is named by an ``EditIdentity`` (``editgate.domain.identity``). A named one lives
``idempotency_ttl_seconds``, and reusing its name for a different request is refused; one named
by its content lives a short ``fingerprint_ttl_seconds``. Both are Powertools Idempotency
records in DynamoDB.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, cast

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from editgate.adapters import aws
from editgate.domain.errors import IdempotencyKeyReused, RequestInProgress
from editgate.domain.identity import EditIdentity

Work = Callable[[], dict[str, Any]]
# A function made idempotent: called with keyword arguments, it answers once per record.
Answering = Callable[..., dict[str, Any]]


# Two functions doing the same: Powertools puts the function's name in each record's key, so
# keyed and fingerprinted records never collide, and each has its own TTL and validation.
def _run_keyed(*, request: dict[str, str], work: Work) -> dict[str, Any]:
    return work()


def _run_fingerprinted(*, request: dict[str, str], work: Work) -> dict[str, Any]:
    return work()


class Deduplicator:
    def __init__(self, table_name: str, *, keyed_ttl_seconds: int, fingerprint_ttl_seconds: int) -> None:
        self._keyed_config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="digest",
            expires_after_seconds=keyed_ttl_seconds,
        )
        self._fingerprint_config = IdempotencyConfig(
            event_key_jmespath="key", expires_after_seconds=fingerprint_ttl_seconds
        )
        self._table_name = table_name

    # Built at the first edit, not at cold start: the DynamoDB client they need costs ~90 ms,
    # and a request for models or a dry run never needs it. One persistence layer per decorated
    # function: each is configured for its own function.
    @cached_property
    def _keyed(self) -> Answering:
        return self._once(_run_keyed, self._keyed_config)

    @cached_property
    def _fingerprinted(self) -> Answering:
        return self._once(_run_fingerprinted, self._fingerprint_config)

    def _once(self, work: Answering, config: IdempotencyConfig) -> Answering:
        client = aws.dynamodb_client()
        records = DynamoDBPersistenceLayer(table_name=self._table_name, boto3_client=client)
        once = idempotent_function(data_keyword_argument="request", persistence_store=records, config=config)
        return cast(Answering, once(work))

    def register(self, context: LambdaContext) -> None:
        """In-progress records expire with the invocation, so a crash does not block retries."""
        self._keyed_config.register_lambda_context(context)
        self._fingerprint_config.register_lambda_context(context)

    def ttl_seconds(self, identity: EditIdentity) -> int:
        """How long the edit's name holds."""
        config = self._keyed_config if identity.named else self._fingerprint_config
        return config.expires_after_seconds

    def run(self, identity: EditIdentity, work: Work) -> dict[str, Any]:
        """``work()``'s answer, computed once per edit; a repeat gets the stored answer."""
        try:
            if identity.named:
                answer: dict[str, Any] = self._keyed(
                    request={"key": identity.key, "digest": identity.digest}, work=work
                )
                return answer
            answer = self._fingerprinted(request={"key": identity.key}, work=work)
            return answer
        except IdempotencyAlreadyInProgressError:
            raise RequestInProgress(
                "The same request is being answered right now; retry in a moment to get its answer.",
                retry_after=2,
            ) from None
        except IdempotencyValidationError:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different request; send a new key.",
                param="Idempotency-Key",
            ) from None
