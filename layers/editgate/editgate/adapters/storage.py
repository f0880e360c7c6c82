"""Everything kept in AWS: result and batch objects (S3), the fal submission journal, the batch
ledger and the API keys' records (DynamoDB), the batch work queue (SQS). The only module that
touches boto3 directly."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
from aws_lambda_powertools import Tracer
from botocore.config import Config
from botocore.exceptions import ClientError

from editgate.domain.json_values import json_text

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

tracer = Tracer()
# SQS takes at most 10 messages in one SendMessageBatch call,
SQS_BATCH = 10
# and at most 256 KiB in one message and in one call's messages together. (SQS raised both to
# 1 MiB in 2025 for queues configured so; 256 KiB holds on every queue.)
SQS_MAX_BYTES = 256 * 1024


@cache
def _s3() -> S3Client:
    # SigV4 always: boto3 still signs with SigV2 in some regions otherwise. A pool as large as
    # the concurrent image puts and downloads of one edit.
    return boto3.client("s3", config=Config(signature_version="s3v4", max_pool_connections=32))


@cache
def dynamodb_client() -> DynamoDBClient:
    """The one DynamoDB client of the process: the journal, the batch ledger and Powertools'
    idempotency records share it (each client costs ~90 ms of cold start to build)."""
    return boto3.client("dynamodb")


@cache
def _sqs() -> SQSClient:
    return boto3.client("sqs")


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


class ResultStore:
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
        _s3().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

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
            return _s3().get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        except ClientError as exc:
            if _error_code(exc) == "InvalidRange":
                return b""  # reading past the end: nothing more
            raise _not_readable(exc, bucket, key) from None

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectHead:
        """An object's size, ETag and metadata, without reading it."""
        extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
        try:
            answer = _s3().head_object(Bucket=bucket, Key=key, **extra)
        except ClientError as exc:
            raise _not_readable(exc, bucket, key) from None
        return ObjectHead(answer["ContentLength"], answer.get("ETag", ""), dict(answer.get("Metadata", {})))

    def keys(self, prefix: str) -> Iterator[str]:
        for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def presign(self, key: str) -> str:
        return _s3().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self._expiry
        )

    def url_origin(self) -> str:
        """Where the presigned URLs point (``scheme://host[:port]``: the bucket's S3 host, or the
        endpoint's), for the Content-Security-Policy of a page that shows the results."""
        url = urlsplit(self.presign(f"{self._prefix}origin"))
        return f"{url.scheme}://{url.netloc}"


class SubmissionJournal:
    """Which fal requests an edit has submitted, written the moment fal accepts each one, so that
    any later attempt of the same edit collects them instead of paying again. One item per edit
    (``journal#<edit key>``) in the idempotency table, beside Powertools' own record, which is
    rewritten whole each time an attempt takes it over."""

    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def open(self, edit_key: str, ttl_seconds: int) -> EditJournal:
        item_id = f"journal#{edit_key}"
        item = _get(self._table, item_id)
        entries = {
            name.removeprefix("call_"): json.loads(value["S"])
            for name, value in item.items()
            if name.startswith("call_") and "S" in value
        }
        return EditJournal(self._table, item_id, ttl_seconds, entries)


class EditJournal:
    """One edit's journal: provider call index → what was submitted for it."""

    def __init__(
        self, table: str, item_id: str, ttl_seconds: int, entries: dict[str, dict[str, Any]]
    ) -> None:
        self._table = table
        self._item_id = item_id
        self._ttl = ttl_seconds
        self._entries = entries

    def get(self, index: int) -> dict[str, Any] | None:
        return self._entries.get(str(index))

    def record(self, index: int, entry: dict[str, Any]) -> None:
        self._write({index: entry})

    def mark_counted(self, indexes: Sequence[int]) -> None:
        """The calls whose cost an attempt counted although its answer was not final: the attempt
        that collects them again does not count them twice."""
        if indexes:
            self._write({index: {**self._entries[str(index)], "counted": True} for index in indexes})

    def _write(self, entries: dict[int, dict[str, Any]]) -> None:
        """Entries written in one update, and the journal's life extended from now."""
        self._entries.update({str(index): entry for index, entry in entries.items()})
        names = {f"#call{index}": f"call_{index}" for index in entries}
        values = {f":call{index}": {"S": json_text(entry)} for index, entry in entries.items()}
        dynamodb_client().update_item(
            TableName=self._table,
            Key={"id": {"S": self._item_id}},
            UpdateExpression="SET "
            + ", ".join(f"{name} = :{name[1:]}" for name in names)
            + ", #expiration = :expiration",
            ExpressionAttributeNames={**names, "#expiration": "expiration"},
            ExpressionAttributeValues={**values, ":expiration": {"N": str(int(time.time()) + self._ttl)}},
        )


@dataclass(frozen=True)
class Tally:
    """A batch's counters as the ledger holds them."""

    total: int
    succeeded: int
    failed: int
    images: int
    cost_usd: float
    started_at: str | None
    finished_at: str | None
    manifest_done: bool
    # Why the manifest (or the rest of it) was not read: an OpenAI-shaped error's fields.
    error: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.manifest_done and self.succeeded + self.failed >= self.total


class BatchLedger:
    """Per-batch counters (atomic ``ADD``) and per-item states in DynamoDB. An item's state
    changes together with the counters in one transaction, conditioned on the state it had, so a
    redelivered message never counts twice."""

    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def add_lines(self, batch_id: str, lines: int, *, chunk: str, last: bool) -> None:
        """Count ``lines`` items fanned out by ``chunk`` (a manifest offset, or a single item's id),
        once however often the chunk is delivered; ``last``: all the batch's items are counted."""
        names = {"#total": "total", "#started": "started_at", "#chunks": "chunks", "#finished": "finished_at"}
        values: dict[str, Any] = {
            ":lines": {"N": str(lines)},
            ":now": {"S": _now()},
            ":chunk": {"SS": [chunk]},
            ":chunk_name": {"S": chunk},
        }
        update = "ADD #total :lines, #chunks :chunk SET #started = if_not_exists(#started, :now)"
        if last:
            update += ", #done = :true"
            names["#done"] = "manifest_done"
            values[":true"] = {"BOOL": True}
        if lines:
            update += " REMOVE #finished"  # more items: not finished until they settle
        else:
            del names["#finished"]
        try:
            dynamodb_client().update_item(
                TableName=self._table,
                Key={"id": {"S": f"batch#{batch_id}"}},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(#chunks) OR NOT contains(#chunks, :chunk_name)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise  # else: a redelivered chunk, already counted

    def claim_manifest(self, batch_id: str, etag: str) -> str:
        """Reserve the batch for one manifest upload (by its ETag): the ETag of the upload that
        holds it (``etag``, unless another upload took it first)."""
        try:
            dynamodb_client().update_item(
                TableName=self._table,
                Key={"id": {"S": f"batch#{batch_id}"}},
                UpdateExpression="SET #manifest = :etag",
                ConditionExpression="attribute_not_exists(#manifest) OR #manifest = :etag",
                ExpressionAttributeNames={"#manifest": "manifest_etag"},
                ExpressionAttributeValues={":etag": {"S": etag}},
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            return str(_get(self._table, f"batch#{batch_id}").get("manifest_etag", {}).get("S", ""))
        return etag

    def stop_reading(self, batch_id: str, error: dict[str, Any]) -> None:
        """No more of the manifest is read, for the reason ``error`` gives (the first one kept):
        the batch finishes once the items already counted settle."""
        dynamodb_client().update_item(
            TableName=self._table,
            Key={"id": {"S": f"batch#{batch_id}"}},
            UpdateExpression="SET #done = :true, #error = if_not_exists(#error, :error), "
            "#started = if_not_exists(#started, :now)",
            ExpressionAttributeNames={"#done": "manifest_done", "#error": "error", "#started": "started_at"},
            ExpressionAttributeValues={
                ":true": {"BOOL": True},
                ":error": {"S": json_text(error)},
                ":now": {"S": _now()},
            },
        )

    def claim(self, batch_id: str, item_id: str, line: int) -> int:
        """Reserve an item id for one manifest line: the line that holds it (``line``, unless
        another line of the manifest took the same id first)."""
        try:
            dynamodb_client().update_item(
                TableName=self._table,
                Key={"id": {"S": _item_key(batch_id, item_id)}},
                UpdateExpression="SET #line = :line",
                ConditionExpression="attribute_not_exists(#line) OR #line = :line",
                ExpressionAttributeNames={"#line": "line"},
                ExpressionAttributeValues={":line": {"N": str(line)}},
            )
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise
            return int(_get(self._table, _item_key(batch_id, item_id)).get("line", {}).get("N", "0"))
        return line

    def state(self, batch_id: str, item_id: str) -> str | None:
        value = _get(self._table, _item_key(batch_id, item_id)).get("state", {}).get("S")
        return str(value) if value else None

    def settle(
        self, batch_id: str, item_id: str, state: str, *, images: int = 0, cost_usd: float = 0
    ) -> bool:
        """Move an item to ``succeeded``, ``failed`` or (a redrive) back to ``queued``, and count it
        once: only settled states are counted. False when it already was in that state."""
        for _ in range(5):  # a concurrent change of the same item: read again and retry
            before = self.state(batch_id, item_id)
            if before == state:
                return False
            changes = {state: 1, **({before: -1} if before else {})}
            adds = {name: delta for name, delta in changes.items() if name in _COUNTED_STATES}
            add = "".join(f"#{name} :{name}, " for name in adds)
            names = {f"#{name}": name for name in adds}
            values: dict[str, Any] = {f":{name}": {"N": str(delta)} for name, delta in adds.items()}
            values[":images"] = {"N": str(images)}
            values[":cost"] = {"N": str(Decimal(str(round(cost_usd, 6))))}
            condition = "attribute_not_exists(#state)" if before is None else "#state = :before"
            state_values: dict[str, Any] = {":state": {"S": state}}
            if before is not None:
                state_values[":before"] = {"S": before}
            try:
                dynamodb_client().transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": {"id": {"S": _item_key(batch_id, item_id)}},
                                "UpdateExpression": "SET #state = :state",
                                "ConditionExpression": condition,
                                "ExpressionAttributeNames": {"#state": "state"},
                                "ExpressionAttributeValues": state_values,
                            }
                        },
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": {"id": {"S": f"batch#{batch_id}"}},
                                "UpdateExpression": f"ADD {add}#images :images, #cost :cost",
                                "ExpressionAttributeNames": {
                                    **names,
                                    "#images": "images",
                                    "#cost": "cost_usd",
                                },
                                "ExpressionAttributeValues": values,
                            }
                        },
                    ]
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                    continue
                raise
            return True
        raise RuntimeError(f"item {item_id} of batch {batch_id} kept changing under this update")

    def tally(self, batch_id: str) -> Tally | None:
        item = _get(self._table, f"batch#{batch_id}")
        if not item:
            return None

        def number(name: str) -> float:
            return float(item.get(name, {}).get("N", "0"))

        return Tally(
            total=int(number("total")),
            succeeded=int(number("succeeded")),
            failed=int(number("failed")),
            images=int(number("images")),
            cost_usd=round(number("cost_usd"), 6),
            started_at=item.get("started_at", {}).get("S"),
            finished_at=item.get("finished_at", {}).get("S"),
            manifest_done=bool(item.get("manifest_done", {}).get("BOOL", False)),
            error=json.loads(item["error"]["S"]) if "S" in item.get("error", {}) else None,
        )

    def mark_finished(self, batch_id: str) -> None:
        dynamodb_client().update_item(
            TableName=self._table,
            Key={"id": {"S": f"batch#{batch_id}"}},
            UpdateExpression="SET #finished = if_not_exists(#finished, :now)",
            ExpressionAttributeNames={"#finished": "finished_at"},
            ExpressionAttributeValues={":now": {"S": _now()}},
        )

    def reopen(self, batch_id: str) -> None:
        """A redrive: the batch is not finished until the re-queued items settle again."""
        dynamodb_client().update_item(
            TableName=self._table,
            Key={"id": {"S": f"batch#{batch_id}"}},
            UpdateExpression="REMOVE #finished",
            ExpressionAttributeNames={"#finished": "finished_at"},
        )


class WorkQueue:
    """The batch queue: messages are JSON documents, sent as few calls as SQS's limits allow."""

    def __init__(self, queue_url: str) -> None:
        self.url = queue_url

    def send(self, documents: Sequence[dict[str, Any]]) -> None:
        """Send every document; a ``ValueError`` before any is sent if one cannot be a message."""
        for entries in batched_for_sqs([message_body(document) for document in documents]):
            answer = _sqs().send_message_batch(QueueUrl=self.url, Entries=entries)
            if answer.get("Failed"):
                reasons = sorted({f["Code"] for f in answer["Failed"]})
                raise RuntimeError(f"SQS refused {len(answer['Failed'])} message(s): {', '.join(reasons)}")

    def drain(self, queue_url: str) -> Iterator[dict[str, Any]]:
        """Every message of another queue (a dead-letter queue), each deleted once yielded and
        handled by the caller."""
        while True:
            answer = _sqs().receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=SQS_BATCH, WaitTimeSeconds=0
            )
            messages = answer.get("Messages", [])
            if not messages:
                return
            for message in messages:
                yield json.loads(message["Body"])
                _sqs().delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def message_body(document: dict[str, Any]) -> str:
    """A document as the body of one queue message: JSON (finite numbers only) within
    ``SQS_MAX_BYTES``, else a ``ValueError`` saying why."""
    try:
        body = json_text(document)
    except ValueError:
        raise ValueError("a number in it is not finite") from None
    if len(body.encode()) > SQS_MAX_BYTES:
        raise ValueError(f"a message of {len(body.encode()):,} bytes is more than SQS's {SQS_MAX_BYTES:,}")
    return body


def batched_for_sqs(bodies: Sequence[str]) -> Iterator[list[SendMessageBatchRequestEntryTypeDef]]:
    """Messages in SendMessageBatch calls of at most ``SQS_BATCH`` entries and ``SQS_MAX_BYTES``
    in all."""
    entries: list[SendMessageBatchRequestEntryTypeDef] = []
    size = 0
    for body in bodies:
        length = len(body.encode())
        if entries and (len(entries) == SQS_BATCH or size + length > SQS_MAX_BYTES):
            yield entries
            entries, size = [], 0
        entries.append({"Id": str(len(entries)), "MessageBody": body})
        size += length
    if entries:
        yield entries


_COUNTED_STATES = frozenset({"succeeded", "failed"})


def _get(table: str, item_id: str) -> dict[str, Any]:
    """An item of a table keyed by ``id``, read consistently; empty when there is none."""
    found = dynamodb_client().get_item(TableName=table, Key={"id": {"S": item_id}}, ConsistentRead=True)
    return dict(found.get("Item", {}))


def _item_key(batch_id: str, item_id: str) -> str:
    return f"batch#{batch_id}#item#{item_id}"


def _conditional_failure(exc: ClientError) -> bool:
    return _error_code(exc) == "ConditionalCheckFailedException"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _not_readable(exc: ClientError, bucket: str, key: str) -> Exception:
    """An S3 read's error as this module's exception, or as itself when it is AWS's fault."""
    code = _error_code(exc)
    if code in _CHANGED:
        return ObjectChanged(f"s3://{bucket}/{key}")
    if code in _UNREADABLE:
        return ObjectNotFound(f"s3://{bucket}/{key}")
    return exc


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyTable:
    """The API keys' records, keyed by the key's hash, written by ``editgate keys`` and read by
    the authorizer through Powertools Parameters (``keys.KeyDirectory``)."""

    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def put(self, key_hash: str, record: dict[str, Any]) -> None:
        dynamodb_client().put_item(
            TableName=self._table, Item={"id": {"S": key_hash}, "value": {"S": json_text(record)}}
        )

    def records(self) -> Iterator[dict[str, Any]]:
        for page in dynamodb_client().get_paginator("scan").paginate(TableName=self._table):
            for item in page["Items"]:
                yield json.loads(item["value"]["S"])
