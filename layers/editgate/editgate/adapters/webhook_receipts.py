"""Which fal requests' webhooks were taken (``webhook#<request id>`` in the idempotency table):
fal delivers a webhook again when it saw no 2xx (10 times over 2 hours), and a replay may come
within the signature's 300 s, so each request is collected once, by a conditional put."""

from __future__ import annotations

import time

from botocore.exceptions import ClientError

from editgate.adapters.aws import conditional_failure, dynamodb_client


class WebhookReceipts:
    def __init__(self, table_name: str, ttl_seconds: int) -> None:
        self._table = table_name
        # Longer than fal's 2 hours of retries: a late retry is still known for a duplicate.
        self._ttl = ttl_seconds

    def claim(self, request_id: str) -> bool:
        """True for the first delivery about ``request_id``; False when one was taken before."""
        try:
            dynamodb_client().put_item(
                TableName=self._table,
                Item={
                    "id": {"S": _item_id(request_id)},
                    "received": {"N": str(int(time.time()))},
                    "expiration": {"N": str(int(time.time()) + self._ttl)},
                },
                ConditionExpression="attribute_not_exists(id)",
            )
        except ClientError as exc:
            if conditional_failure(exc):
                return False
            raise
        return True

    def release(self, request_id: str) -> None:
        """Forget a claim whose work could not be queued, so that fal's next delivery takes it."""
        dynamodb_client().delete_item(TableName=self._table, Key={"id": {"S": _item_id(request_id)}})


def _item_id(request_id: str) -> str:
    return f"webhook#{request_id}"
