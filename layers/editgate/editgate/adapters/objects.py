"""The buckets' objects (S3): results in, presigned URLs out, and the objects a batch reads
(from its own bucket or the stack's source bucket)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Tracer
from botocore.exceptions import ClientError

from editgate.adapters.aws import error_code, s3_client
from editgate.domain.json_values import json_text

tracer = Tracer()


class ObjectNotFound(LookupError):
    """No object at that bucket and key (and version), or none this function may read."""


class ObjectChanged(ObjectNotFound):
    """The object at that key is no longer the one asked for (its ETag changed)."""


# A HEAD's errors have no body: only the status is known.
_UNREADABLE = frozenset(
    {"NoSuchKey", "NoSuchBucket", "NoSuchVersion", "InvalidArgument", "400", "404", "403", "AccessDenied"}
)
_CHANGED = frozenset({"PreconditionFailed", "412"})


@dataclass(frozen=True)
class ObjectHead:
    """What a HEAD tells of an object: its size, ETag and user metadata (``x-amz-meta-*``,
    names without the prefix)."""

    size: int
    etag: str
    metadata: dict[str, str]


class ObjectStore:
    """One bucket: results in, presigned URLs out, and the objects a batch reads."""

    def __init__(self, bucket: str, prefix: str, expiry_seconds: int) -> None:
        self.bucket = bucket
        self._prefix = prefix
        self._expiry = expiry_seconds

    def folder_for(self, request_id: str, now: datetime | None = None) -> str:
        """``results/YYYY/MM/DD/<request id>``: by day for lifecycle rules and browsing, one
        folder per request."""
        day = (now or datetime.now(UTC)).strftime("%Y/%m/%d")
        return f"{self._prefix}{day}/{request_id}"

    @tracer.capture_method(capture_response=False)
    def put(self, key: str, data: bytes, content_type: str) -> None:
        s3_client().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_json(self, key: str, document: dict[str, Any]) -> None:
        self.put(key, json_text(document, indent=1).encode(), "application/json")

    def get(self, key: str) -> bytes:
        return self.read(self.bucket, key)

    def read(
        self,
        bucket: str,
        key: str,
        start: int = 0,
        length: int | None = None,
        *,
        version_id: str | None = None,
        if_match: str | None = None,
    ) -> bytes:
        """An object's bytes (or at most ``length`` bytes from ``start``): ``ObjectNotFound`` when
        absent, ``ObjectChanged`` when its ETag is no longer ``if_match``."""
        extra: dict[str, Any] = {}
        if start or length is not None:
            extra["Range"] = f"bytes={start}-" + ("" if length is None else str(start + length - 1))
        if version_id:
            extra["VersionId"] = version_id
        if if_match:
            extra["IfMatch"] = if_match
        try:
            return s3_client().get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        except ClientError as exc:
            if error_code(exc) == "InvalidRange":
                return b""  # reading past the end: nothing more
            raise _not_readable(exc, bucket, key) from None

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectHead:
        """An object's size, ETag and metadata, without reading it."""
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        try:
            answer = s3_client().head_object(Bucket=bucket, Key=key, **extra)
        except ClientError as exc:
            raise _not_readable(exc, bucket, key) from None
        return ObjectHead(answer["ContentLength"], answer.get("ETag", ""), dict(answer.get("Metadata", {})))

    def keys(self, prefix: str) -> Iterator[str]:
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def presign(self, key: str) -> str:
        return s3_client().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self._expiry
        )

    def url_origin(self) -> str:
        """Where the presigned URLs point (``scheme://host[:port]``: the bucket's S3 host, or the
        endpoint's), for the Content-Security-Policy of a page that shows the results."""
        url = urlsplit(self.presign(f"{self._prefix}origin"))
        return f"{url.scheme}://{url.netloc}"


def _not_readable(exc: ClientError, bucket: str, key: str) -> Exception:
    """An S3 read's error as this module's exception, or as itself when it is AWS's fault."""
    code = error_code(exc)
    if code in _CHANGED:
        return ObjectChanged(f"s3://{bucket}/{key}")
    if code in _UNREADABLE:
        return ObjectNotFound(f"s3://{bucket}/{key}")
    return exc
