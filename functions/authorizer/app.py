"""API Gateway's REQUEST authorizer: the caller's ``Authorization: Bearer <key>`` against the
hashed keys. Allowed: the key's id and owner as the request's identity, and its usage-plan key,
so API Gateway throttles and counts each key on its own. Refused: API Gateway's 401, which the
UNAUTHORIZED gateway response words as OpenAI does. Wiring only: the work is ``editgate.adapters.keys``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from editgate.adapters.keys import KeyDirectory, authorization_headers
from editgate.domain.errors import AuthenticationFailed
from editgate.settings import KeySettings

logger = Logger()
settings = KeySettings.from_env()
directory = KeyDirectory(settings.api_keys_table, settings.key_cache_seconds)


@logger.inject_lambda_context
@event_source(data_class=APIGatewayAuthorizerRequestEvent)
def lambda_handler(event: APIGatewayAuthorizerRequestEvent, context: LambdaContext) -> dict[str, Any]:
    try:
        record = directory.identify(authorization_headers(event.get("multiValueHeaders")))
    except AuthenticationFailed:
        logger.info("key refused")
        raise RuntimeError("Unauthorized") from None  # API Gateway's word for a 401
    logger.info("key accepted", extra={"key_id": record.key_id})
    # Cached by the Authorization header for every route, so the policy allows them all.
    response = APIGatewayAuthorizerResponse.from_route_arn(
        event.method_arn,
        principal_id=record.key_id,
        context={"key_id": record.key_id, "owner": record.owner},
        usage_identifier_key=record.usage_key,
    )
    response.allow_all_routes()
    return response.asdict()
