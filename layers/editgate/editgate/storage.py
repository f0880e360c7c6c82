"""Results in the team's own bucket: the only module that touches boto3's S3 client."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import boto3
from aws_lambda_powertools import Tracer
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

tracer = Tracer()


class ResultStore:
    def __init__(self, bucket: str, prefix: str, expiry_seconds: int, client: S3Client | None = None) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._expiry = expiry_seconds
        # SigV4 always: boto3 still signs with SigV2 in some regions otherwise.
        self._s3 = client or boto3.client("s3", config=Config(signature_version="s3v4"))

    def key_for(self, request_id: str, index: int, extension: str, now: datetime | None = None) -> str:
        """``results/YYYY/MM/DD/<request id>/<index>.<ext>``: by day for lifecycle rules and
        browsing, one folder per request."""
        day = (now or datetime.now(UTC)).strftime("%Y/%m/%d")
        return f"{self._prefix}{day}/{request_id}/{index}.{extension}"

    @tracer.capture_method(capture_response=False)
    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()

    def presign(self, key: str) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=self._expiry
        )
