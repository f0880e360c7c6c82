"""A batch reads only what its author may give it (issue 15, "Data"): images beside its own
manifest, or in the stack's source bucket; never another batch's uploads or results, never an
object larger than MAX_IMAGE_BYTES; and a queue message no manifest could have made writes
nothing outside ``batches/<batch id>/``."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from editgate.adapters.objects import ObjectStore
from editgate_local.batch_driver import QueueDriver
from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import BATCH_BUCKET, BUCKET, REGION, SOURCE_BUCKET, LocalStack
from tests.integration.conftest import batch_driver
from tests.integration.test_batch import drop_batch, finished, records, tiny_png, until
from tests.integration.test_hostile_batch import bucket_layout, outside_batches

driver = batch_driver(4)


def a_victims_batch(s3: Any) -> None:
    """Another team's batch: its private upload and its result, in the same batch bucket."""
    s3.put_object(Bucket=BATCH_BUCKET, Key="incoming/victim/private.png", Body=tiny_png(40))
    s3.put_object(Bucket=BATCH_BUCKET, Key="batches/victim/results/v1/0.png", Body=tiny_png(41))


# First in the module: its own batch function (no SOURCE_BUCKET) is the only one polling the queue.
def test_given_no_source_bucket_then_an_s3_uri_line_is_refused_saying_so(
    emulator: FalEmulator, stack: LocalStack, s3: Any
) -> None:
    s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/a.png", Body=tiny_png(1))
    lines = [{"id": "a", "image": f"s3://{SOURCE_BUCKET}/catalog/a.png", "prompt": "p"}]
    with stack.batch_driver(1, {"SOURCE_BUCKET": ""}):
        drop_batch(s3, "no-source", {}, lines)
        done = finished(s3, "no-source", timeout=60)

    error = records(s3, "no-source")["a"]["error"]
    assert done["counts"]["failed"] == 1
    assert error["param"] == "image"
    assert "this stack has none" in error["message"]
    assert emulator.calls["submit"] == 0


def test_given_a_line_naming_another_batchs_upload_or_result_in_the_batch_bucket_then_it_is_refused_and_not_edited(  # noqa: E501
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    a_victims_batch(s3)
    lines = [
        {"id": "result", "image": f"s3://{BATCH_BUCKET}/batches/victim/results/v1/0.png", "prompt": "p"},
        {"id": "upload", "image": f"s3://{BATCH_BUCKET}/incoming/victim/private.png", "prompt": "p"},
        {"id": "climb", "image": "../victim/private.png", "prompt": "p"},
        {"id": "results-bucket", "image": f"s3://{BUCKET}/results/2026/01/01/x/0.png", "prompt": "p"},
    ]
    drop_batch(s3, "thief", {}, lines)

    done = finished(s3, "thief", timeout=60)

    items = records(s3, "thief")
    assert done["counts"] == {"succeeded": 0, "failed": 4, "pending": 0}
    for item_id in ("result", "upload", "results-bucket"):
        assert items[item_id]["error"]["param"] == "image"
        assert f"s3://{SOURCE_BUCKET}/" in items[item_id]["error"]["message"]
    assert items["climb"]["error"]["param"] == "image"
    assert emulator.calls["submit"] == 0


def test_given_a_source_bucket_then_an_s3_uri_line_in_it_is_edited(
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/shoes/b.png", Body=tiny_png(2))
    drop_batch(
        s3,
        "from-source",
        {},
        [{"id": "b", "image": f"s3://{SOURCE_BUCKET}/catalog/shoes/b.png", "prompt": "p"}],
    )

    done = finished(s3, "from-source", timeout=60)

    assert done["counts"] == {"succeeded": 1, "failed": 0, "pending": 0}
    assert emulator.calls["submit"] == 1


def test_given_a_line_naming_a_150_mb_object_then_it_fails_by_its_size_and_is_never_read(
    emulator: FalEmulator, driver: QueueDriver, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_object(Bucket=SOURCE_BUCKET, Key="huge/150mb.png", Body=bytes(150 * 1024 * 1024))
    reads: list[tuple[str, str]] = []
    original = ObjectStore.read

    def recording(self: ObjectStore, bucket: str, key: str, *args: Any, **kwargs: Any) -> bytes:
        reads.append((bucket, key))
        return original(self, bucket, key, *args, **kwargs)

    monkeypatch.setattr(ObjectStore, "read", recording)
    lines = [{"id": "huge", "image": f"s3://{SOURCE_BUCKET}/huge/150mb.png", "prompt": "p"}]
    drop_batch(s3, "huge", {}, lines)

    done = finished(s3, "huge", timeout=60)

    error = records(s3, "huge")["huge"]["error"]
    assert done["counts"]["failed"] == 1
    assert (error["param"], error["code"]) == ("image", "image_too_large")
    assert "20,971,520 bytes" in error["message"]
    assert (SOURCE_BUCKET, "huge/150mb.png") not in reads
    assert emulator.calls["submit"] == 0
    s3.delete_object(Bucket=SOURCE_BUCKET, Key="huge/150mb.png")


def test_given_forged_queue_messages_that_would_write_outside_their_batch_or_read_another_then_nothing_is_written_outside_batches(  # noqa: E501
    emulator: FalEmulator, driver: QueueDriver, s3: Any, stack: LocalStack
) -> None:
    a_victims_batch(s3)
    s3.put_object(Bucket=BATCH_BUCKET, Key="incoming/forger/a.png", Body=tiny_png(3))
    item = {"kind": "item", "line": 1, "image_bucket": BATCH_BUCKET, "params": {"prompt": "p"}}
    forged = [
        {**item, "batch_id": "../../escape", "item_id": "x", "image_key": "incoming/forger/a.png"},
        {
            **item,
            "batch_id": "forger",
            "item_id": "../../escape/summary",
            "image_key": "incoming/forger/a.png",
        },
        {**item, "batch_id": "forger", "item_id": "steal", "image_key": "batches/victim/results/v1/0.png"},
        {
            **item,
            "batch_id": "forger",
            "item_id": "climb",
            "image_key": "incoming/forger/../victim/private.png",
        },
        {
            "kind": "chunk",
            "batch_id": "../../escape",
            "bucket": BATCH_BUCKET,
            "key": "incoming/victim/manifest.jsonl",
        },
        {
            "kind": "chunk",
            "batch_id": "forger",
            "bucket": BATCH_BUCKET,
            "key": "incoming/victim/manifest.jsonl",
        },
        {"kind": "chunk", "batch_id": "victim", "bucket": BUCKET, "key": "incoming/victim/manifest.jsonl"},
    ]
    failures_before, before = driver.failures_reported, bucket_layout(s3)
    sqs = boto3.client("sqs", region_name=REGION)
    for message in forged:
        sqs.send_message(QueueUrl=stack.batch_env["BATCH_QUEUE_URL"], MessageBody=json.dumps(message))

    until(lambda: {"steal", "climb"} <= set(records(s3, "forger")), timeout=60)
    until(driver.idle, timeout=60)

    assert outside_batches(s3, ["forger"], before) == []
    forger = records(s3, "forger")
    assert forger["steal"]["error"]["param"] == forger["climb"]["error"]["param"] == "image"
    assert "not for this batch to read" in forger["steal"]["error"]["message"]
    assert emulator.calls["submit"] == 0
    # Dropped, not failed: nothing is retried or dead-lettered.
    assert driver.failures_reported == failures_before
