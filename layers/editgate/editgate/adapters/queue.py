"""The batch work queue (SQS): JSON documents, sent in as few calls as SQS's limits allow."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from editgate.adapters.aws import sqs_client
from editgate.domain.json_values import json_text

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

# SQS takes at most 10 messages in one SendMessageBatch call,
SQS_BATCH = 10
# and at most 256 KiB in one message and in one call's messages together. (SQS raised both to
# 1 MiB in 2025 for queues configured so; 256 KiB holds on every queue.)
SQS_MAX_BYTES = 256 * 1024


class WorkQueue:
    """The batch queue: messages are JSON documents, sent as few calls as SQS's limits allow."""

    def __init__(self, queue_url: str) -> None:
        self.url = queue_url

    def send(self, documents: Sequence[dict[str, Any]]) -> None:
        """Send every document; a ``ValueError`` before any is sent if one cannot be a message."""
        for entries in batched_for_sqs([message_body(document) for document in documents]):
            answer = sqs_client().send_message_batch(QueueUrl=self.url, Entries=entries)
            if answer.get("Failed"):
                reasons = sorted({f["Code"] for f in answer["Failed"]})
                raise RuntimeError(f"SQS refused {len(answer['Failed'])} message(s): {', '.join(reasons)}")

    def send_later(self, document: dict[str, Any], delay_seconds: int) -> None:
        """One document, delivered after ``delay_seconds`` (SQS delays a message 15 minutes at most)."""
        sqs_client().send_message(
            QueueUrl=self.url,
            MessageBody=message_body(document),
            DelaySeconds=min(max(0, delay_seconds), 900),
        )

    def drain(self, queue_url: str) -> Iterator[dict[str, Any]]:
        """Every message of another queue (a dead-letter queue), each deleted once yielded and
        handled by the caller."""
        while True:
            answer = sqs_client().receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=SQS_BATCH, WaitTimeSeconds=0
            )
            messages = answer.get("Messages", [])
            if not messages:
                return
            for message in messages:
                yield json.loads(message["Body"])
                sqs_client().delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


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
