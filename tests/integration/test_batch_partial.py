"""A batch item whose edit could not deliver every image fal made within its invocation is left to
SQS's retry, which collects the missing images without a second charge."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from editgate_local import cli
from editgate_local.fal_emulator import FalEmulator, Fault
from editgate_local.stack import BATCH_BUCKET, REGION, LocalStack
from tests.conftest import png_bytes
from tests.integration.test_batch import finished, records, until


def test_given_a_batch_item_whose_download_stalls_past_its_deadline_then_the_redelivery_collects_every_billed_image(  # noqa: E501
    stack: LocalStack, emulator: FalEmulator, short_batch_timeout: float
) -> None:
    emulator.inject(Fault("file", kind="slow", delay=4, times=1))
    s3: Any = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BATCH_BUCKET, Key="incoming/partial/a.png", Body=png_bytes((96, 64)))
    manifest = json.dumps({"id": "five", "image": "a.png", "prompt": "five variations", "n": 5})
    s3.put_object(Bucket=BATCH_BUCKET, Key="incoming/partial/manifest.jsonl", Body=manifest.encode())

    with stack.batch_driver(1):
        done = finished(s3, "partial", timeout=6 * short_batch_timeout + 30)

    item = records(s3, "partial")["five"]
    assert done["counts"] == {"succeeded": 1, "failed": 0, "pending": 0}
    assert len(item["results"]) == 5
    assert item["failures"] == []
    assert item["cost"] == {"usd": pytest.approx(0.30), "images": 5}
    assert emulator.calls["submit"] == 2  # 4 + 1 images, each call submitted once


def test_given_a_batch_item_missing_billed_images_on_its_last_attempt_then_it_is_recorded_failed_and_a_redrive_collects_them(  # noqa: E501
    stack: LocalStack, emulator: FalEmulator, short_batch_timeout: float
) -> None:
    # Every receive is the last (maxReceiveCount 1): the item cannot be left to SQS's retry.
    emulator.inject(Fault("file", kind="slow", delay=4, times=1))
    s3: Any = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BATCH_BUCKET, Key="incoming/partial-last/a.png", Body=png_bytes((96, 64)))
    manifest = json.dumps({"id": "five", "image": "a.png", "prompt": "five variations", "n": 5})
    s3.put_object(Bucket=BATCH_BUCKET, Key="incoming/partial-last/manifest.jsonl", Body=manifest.encode())

    with stack.batch_driver(1, {"BATCH_MAX_RECEIVES": "1"}) as driver:
        first = finished(s3, "partial-last", timeout=30)
        failed = records(s3, "partial-last")["five"]
        code = cli.main(["batch", "redrive", "partial-last", "--bucket", BATCH_BUCKET])
        until(lambda: records(s3, "partial-last")["five"]["state"] == "succeeded", timeout=30)
        until(driver.idle)

    item = records(s3, "partial-last")["five"]
    assert first["counts"] == {"succeeded": 0, "failed": 1, "pending": 0}
    assert failed["error"]["code"] == "upstream_timeout"  # not a success that hides billed images
    assert code == 0
    assert len(item["results"]) == 5
    assert item["cost"] == {"usd": pytest.approx(0.30), "images": 5}
    assert emulator.calls["submit"] == 2  # the redrive collected them: nothing paid again
