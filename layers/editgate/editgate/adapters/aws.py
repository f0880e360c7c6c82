"""The AWS clients, one of each per process (each costs ~90 ms of cold start to build), and what
every store does with them: read a DynamoDB item by id, name a refused condition."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@cache
def s3_client() -> S3Client:
    # SigV4 always: boto3 still signs with SigV2 in some regions otherwise. A pool as large as
    # the concurrent image puts and downloads of one edit.
    return boto3.client("s3", config=Config(signature_version="s3v4", max_pool_connections=32))


@cache
def dynamodb_client() -> DynamoDBClient:
    """The one DynamoDB client of the process: the journal, the batch ledger and Powertools'
    idempotency records share it."""
    return boto3.client("dynamodb")


@cache
def sqs_client() -> SQSClient:
    return boto3.client("sqs")


def get_item(table: str, item_id: str) -> dict[str, Any]:
    """An item of a table keyed by ``id``, read consistently; empty when there is none."""
    found = dynamodb_client().get_item(TableName=table, Key={"id": {"S": item_id}}, ConsistentRead=True)
    return dict(found.get("Item", {}))


def conditional_failure(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
