"""A batch worker killed after fal accepted an item's edit: SQS delivers the item again after its
visibility timeout, and the next attempt collects the same fal request instead of paying again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import boto3

from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import BATCH_BUCKET, IDEMPOTENCY_TABLE, REGION, LocalStack
from tests.conftest import png_bytes
from tests.integration.test_batch import finished, records, until


def test_given_a_worker_killed_after_fal_accepted_the_submit_when_sqs_redelivers_then_the_same_request_completes_the_item(  # noqa: E501
    stack: LocalStack, emulator: FalEmulator, short_batch_timeout: float
) -> None:
    emulator.latency = 2.0
    s3: Any = boto3.client("s3", region_name=REGION)
    worker = subprocess.Popen(
        [sys.executable, "-m", "editgate_local.cli", "batch", "worker", "--concurrency", "1",
         "--function-timeout", str(short_batch_timeout)],
        env={**os.environ, **stack.env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
        s3.put_object(Bucket=BATCH_BUCKET, Key="incoming/crash/a.png", Body=png_bytes((96, 64)))
        manifest = json.dumps({"id": "crash-1", "image": "a.png", "prompt": "survive a crash"})
        s3.put_object(Bucket=BATCH_BUCKET, Key="incoming/crash/manifest.jsonl", Body=manifest.encode())
        # fal accepted the item's edit, and the worker journaled it (dying before that, between
        # fal's answer and the journal, cannot be told from dying before the submit).
        until(lambda: journaled(emulator), timeout=30)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        worker.kill()
        emulator.latency = 0.0
    assert records(s3, "crash") == {}  # nothing was stored before the crash

    with stack.batch_driver(1):
        done = finished(s3, "crash", timeout=6 * short_batch_timeout + 30)

    item = records(s3, "crash")["crash-1"]
    assert done["counts"] == {"succeeded": 1, "failed": 0, "pending": 0}
    assert emulator.calls["submit"] == 1
    assert item["provider_request_ids"] == emulator.request_ids
    assert emulator.billed() == set(item["provider_request_ids"])


def journaled(emulator: FalEmulator) -> bool:
    """Whether the fal request the emulator accepted is in an edit's submission journal."""
    if len(emulator.request_ids) != 1:
        return False
    dynamodb: Any = boto3.client("dynamodb", region_name=REGION)
    items = dynamodb.scan(TableName=IDEMPOTENCY_TABLE)["Items"]
    return any(emulator.request_ids[0] in json.dumps(item) for item in items)
