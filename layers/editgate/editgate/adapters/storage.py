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
# SQS takes at most 10 messages in one SendMessageBatch call.
SQS_BATCH = 10


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
    """No object at that bucket and key, or none this function may read."""


_UNREADABLE = frozenset({"NoSuchKey", "NoSuchBucket", "404", "403", "AccessDenied"})


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

    def read(self, bucket: str, key: str, start: int = 0, length: int | None = None) -> bytes:
        """An object's bytes (or ``length`` bytes from ``start``); ``ObjectNotFound`` when absent."""
        extra: dict[str, Any] = {}
        if start or length is not None:
            extra["Range"] = f"bytes={start}-" + ("" if length is None else str(start + length - 1))
        try:
            return _s3().get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""  # reading past the end: nothing more
            if exc.response.get("Error", {}).get("Code") in _UNREADABLE:
                raise ObjectNotFound(f"s3://{bucket}/{key}") from None
            raise

    def metadata(self, bucket: str, key: str) -> dict[str, str]:
        """An object's user metadata (``x-amz-meta-*``, names without the prefix)."""
        try:
            return dict(_s3().head_object(Bucket=bucket, Key=key).get("Metadata", {}))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _UNREADABLE:
                raise ObjectNotFound(f"s3://{bucket}/{key}") from None
            raise

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
    """The batch queue: messages are JSON documents, sent 10 to a call."""

    def __init__(self, queue_url: str) -> None:
        self.url = queue_url

    def send(self, documents: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(documents), SQS_BATCH):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(index), "MessageBody": json_text(document)}
                for index, document in enumerate(documents[start : start + SQS_BATCH])
            ]
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


_COUNTED_STATES = frozenset({"succeeded", "failed"})


def _get(table: str, item_id: str) -> dict[str, Any]:
    """An item of a table keyed by ``id``, read consistently; empty when there is none."""
    found = dynamodb_client().get_item(TableName=table, Key={"id": {"S": item_id}}, ConsistentRead=True)
    return dict(found.get("Item", {}))


def _item_key(batch_id: str, item_id: str) -> str:
    return f"batch#{batch_id}#item#{item_id}"


def _conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


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
