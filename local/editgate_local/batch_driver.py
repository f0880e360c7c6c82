"""A stand-in for Lambda's SQS event source mapping: it receives the batch queue's messages and
invokes the batch function with the real SQS event, ``concurrency`` invocations at a time (what
``ScalingConfig.MaximumConcurrency`` does), deletes what succeeded, and leaves the partial batch
failures to come back after the queue's visibility timeout (moto moves a message to the
dead-letter queue after ``maxReceiveCount``, as SQS does)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3

from editgate_local.front import Handler, LambdaContext

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

REGION = "us-east-1"
_IDLE_FIRST, _IDLE_MOST = 0.05, 0.25  # seconds between empty polls


def sqs_event(messages: Sequence[MessageTypeDef], queue_arn: str) -> dict[str, Any]:
    """The event Lambda hands a function for received SQS messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324 - SQS's own
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }


class QueueDriver:
    """``with QueueDriver(...)`` polls in the background until the block ends."""

    def __init__(
        self,
        queue_url: str,
        queue_arn: str,
        environments: Sequence[Handler],
        *,
        function_timeout: float,
        batch_size: int = 1,
        companions: Sequence[QueueDriver | Schedule] = (),
    ) -> None:
        """``companions``: the function's other event sources, started and stopped with this one
        (and, for queues, idle with it)."""
        self.companions = tuple(companions)
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function_timeout = function_timeout
        self.batch_size = batch_size
        self.failures_reported = 0
        self.received: list[str] = []  # every message body delivered, redeliveries included
        # Each invocation's kind of message and duration in seconds, as Lambda bills it (benchmarks
        # price them).
        self.durations: list[tuple[str, float]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._poll, args=(handler,), name=f"batch-{n}", daemon=True)
            for n, handler in enumerate(environments)
        ]

    def start(self) -> QueueDriver:
        for thread in self._threads:
            thread.start()
        for companion in self.companions:
            companion.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for companion in self.companions:
            companion.stop()

    def __enter__(self) -> QueueDriver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def idle(self) -> bool:
        """No message waiting and none being handled (or waiting out its visibility timeout)."""
        sqs = boto3.client("sqs", region_name=REGION)
        counts = sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        waiting = int(counts.get("ApproximateNumberOfMessages", "0"))
        mine = waiting + int(counts.get("ApproximateNumberOfMessagesNotVisible", "0")) == 0
        return mine and all(companion.idle() for companion in self.companions)

    def _poll(self, handler: Handler) -> None:
        """One execution environment's loop: one invocation at a time."""
        sqs = boto3.client("sqs", region_name=REGION)
        idle = _IDLE_FIRST
        while not self._stop.is_set():
            received = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                MessageSystemAttributeNames=["All"],
            )
            messages = received.get("Messages", [])
            if not messages:
                # Short polls (the local moto answers one request at a time), backing off while idle.
                self._stop.wait(idle)
                idle = min(idle * 2, _IDLE_MOST)
                continue
            idle = _IDLE_FIRST
            with self._lock:
                self.received.extend(message["Body"] for message in messages)
            context = LambdaContext(function_name="BatchFunction", timeout_seconds=self.function_timeout)
            started = time.perf_counter()
            try:
                answer = handler(sqs_event(messages, self.queue_arn), context)
            except Exception:  # a function error: Lambda leaves every message of the batch to SQS
                answer = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
            with self._lock:
                self.durations.append((message_kind(messages[0]["Body"]), time.perf_counter() - started))
            failed = {item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])}
            with self._lock:
                self.failures_reported += len(failed)
            for message in messages:
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def message_kind(body: str) -> str:
    """What a queue message is: a batch message's or the collect step's ``kind``, else ``other``
    (S3's notifications)."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        return "other"
    kind = document.get("kind") if isinstance(document, dict) else None
    return kind if isinstance(kind, str) else "other"


def scheduled_event(rule: str = "editgate-local-sweep") -> dict[str, Any]:
    """The event EventBridge's schedule hands a function."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:123456789012:rule/{rule}"],
        "detail": {},
    }


class Schedule:
    """A stand-in for EventBridge's schedule: invokes ``handler`` every ``every`` seconds."""

    def __init__(self, handler: Handler, every: float, function_timeout: float) -> None:
        self.handler = handler
        self.every = every
        self.function_timeout = function_timeout
        self.durations: list[tuple[str, float]] = []  # as QueueDriver's
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schedule", daemon=True)

    def start(self) -> Schedule:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def idle(self) -> bool:
        return True

    def invoke(self) -> Any:
        """One scheduled invocation, now."""
        context = LambdaContext(function_name="BatchFunction", timeout_seconds=self.function_timeout)
        started = time.perf_counter()
        try:
            return self.handler(scheduled_event(), context)
        finally:
            self.durations.append(("schedule", time.perf_counter() - started))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.invoke()
            except Exception:  # a function error: EventBridge tries the next minute
                logging.getLogger(__name__).exception("scheduled invocation failed")
