"""Batch edits on the local stack as a team uses them: files and a manifest dropped in the batch
bucket, S3's notification on the queue, the BatchFunction handler driven as Lambda's SQS event
source does, every item's record and the summary in the bucket."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from PIL import Image

from editgate_local import cli
from editgate_local.batch_driver import QueueDriver
from editgate_local.fal_emulator import FalEmulator
from editgate_local.front import LambdaContext
from editgate_local.stack import BATCH_BUCKET, REGION, SOURCE_BUCKET, LocalStack, batch_handlers
from tests.conftest import png_bytes
from tests.integration.conftest import batch_driver

# Ten execution environments of the batch function (MaximumConcurrency 10); manifests fan out
# 50 lines a message, so a few hundred lines take several chunks.
driver = batch_driver(10, {"BATCH_CHUNK_LINES": "50"})


def until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    """Wait until ``condition()`` holds, looking again every 0.1 s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        threading.Event().wait(0.1)


def summary(s3: Any, batch_id: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=BATCH_BUCKET, Key=f"batches/{batch_id}/summary.json")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    document: dict[str, Any] = json.loads(body)
    return document


def finished(s3: Any, batch_id: str, timeout: float = 120.0) -> dict[str, Any]:
    until(lambda: (summary(s3, batch_id) or {}).get("finished") is True, timeout)
    return summary(s3, batch_id) or {}


def records(s3: Any, batch_id: str) -> dict[str, dict[str, Any]]:
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=BATCH_BUCKET, Prefix=f"batches/{batch_id}/items/"
    )
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    found = [json.loads(s3.get_object(Bucket=BATCH_BUCKET, Key=key)["Body"].read()) for key in keys]
    return {record["id"]: record for record in found}


def drop_batch(s3: Any, batch_id: str, files: dict[str, bytes], lines: list[Any]) -> None:
    """Upload the files, then the manifest (last: it starts the batch)."""
    for name, data in files.items():
        s3.put_object(Bucket=BATCH_BUCKET, Key=f"incoming/{batch_id}/{name}", Body=data)
    manifest = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    s3.put_object(Bucket=BATCH_BUCKET, Key=f"incoming/{batch_id}/manifest.jsonl", Body=manifest.encode())


def tiny_png(index: int) -> bytes:
    return png_bytes((64, 48), (index % 256, (index * 7) % 256, (index * 13) % 256))


def test_given_300_items_with_10_percent_fal_faults_a_malformed_line_and_a_stray_file_when_run_from_the_cli_then_299_succeed_1_fails_and_billing_matches(  # noqa: E501
    stack: LocalStack,
    emulator: FalEmulator,
    driver: QueueDriver,
    s3: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "catalog"
    folder.mkdir()
    lines: list[Any] = [{"defaults": {"prompt": "catalog refresh", "output_format": "jpeg"}}]
    for index in range(299):
        (folder / f"sku-{index:03d}.png").write_bytes(tiny_png(index))
        lines.append({"id": f"sku-{index:03d}", "image": f"sku-{index:03d}.png"})
    lines.insert(151, '{"id": "sku-broken", "image": ')  # line 152: cut short
    (folder / "manifest.jsonl").write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    )
    (folder / "notes.txt").write_text("not an image, and not in the manifest")
    emulator.random_faults(0.1, seed=7)
    failures_before = driver.failures_reported

    code = cli.main(
        [
            "batch",
            "run",
            str(folder),
            "--bucket",
            BATCH_BUCKET,
            "--batch-id",
            "catalog-300",
            "--timeout",
            "300",
        ]
    )

    printed = capsys.readouterr().out
    emulator.random_faults(0.0)
    assert code == 3, printed  # finished, one item failed
    # The fal client absorbed every transient fault: no message came back for another delivery.
    assert driver.failures_reported == failures_before
    done = summary(s3, "catalog-300") or {}
    assert done["finished"] is True
    assert done["items"] == 300
    assert done["counts"] == {"succeeded": 299, "failed": 1, "pending": 0}
    items = records(s3, "catalog-300")
    assert len(items) == 300
    succeeded = [r for r in items.values() if r["state"] == "succeeded"]
    assert len(succeeded) == 299
    assert items["line-152"]["state"] == "failed"
    assert items["line-152"]["error"]["code"] == "invalid_manifest_line"
    # The summary is the sum of the records.
    assert done["images"] == sum(len(r["results"]) for r in succeeded) == 299
    assert done["cost"]["usd"] == pytest.approx(sum(r["cost"]["usd"] for r in succeeded))
    # Every stored result is where its record says, in the asked format.
    first = s3.get_object(Bucket=BATCH_BUCKET, Key=items["sku-000"]["results"][0]["key"])
    assert first["ContentType"] == "image/jpeg"
    assert items["sku-000"]["results"][0]["key"] == "batches/catalog-300/results/sku-000/0.jpeg"
    # fal billed exactly the requests whose images were stored: none lost, none paid twice.
    stored = {request_id for r in succeeded for request_id in r["provider_request_ids"]}
    assert emulator.billed() == stored
    assert len(stored) == 299
    assert "299 succeeded, 1 failed" in printed
    assert "not in the manifest, so not edited: notes.txt" in printed
    assert "line-152" in printed


def test_given_a_finished_batch_when_every_sqs_message_is_delivered_again_then_fal_gets_no_new_submission(
    emulator: FalEmulator, driver: QueueDriver, s3: Any, stack: LocalStack
) -> None:
    already = len(driver.received)
    lines = [{"id": f"item-{i}", "image": f"{i}.png", "prompt": "again"} for i in range(60)]
    drop_batch(s3, "redelivered", {f"{i}.png": tiny_png(i) for i in range(60)}, lines)
    before = finished(s3, "redelivered")
    until(driver.idle)
    delivered = driver.received[already:]
    assert emulator.calls["submit"] == 60
    emulator.reset()

    sqs = boto3.client("sqs", region_name=REGION)
    for body in delivered:
        sqs.send_message(QueueUrl=stack.batch_env["BATCH_QUEUE_URL"], MessageBody=body)
    until(lambda: len(driver.received) >= already + 2 * len(delivered))
    until(driver.idle)

    assert emulator.calls["submit"] == 0
    after = summary(s3, "redelivered") or {}
    assert after["counts"] == before["counts"] == {"succeeded": 60, "failed": 0, "pending": 0}
    assert after["items"] == 60
    assert after["images"] == before["images"] == 60


def test_given_lines_that_are_no_edits_then_each_fails_alone_with_its_reason_and_the_batch_finishes(
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    files = {"a.png": tiny_png(1), "b.png": tiny_png(2), "notes.png": b"plain text, named like an image"}
    lines = [
        {"defaults": {"prompt": "studio light", "size": "128x96"}},
        {"id": "ok", "image": "a.png"},
        {"id": "steps", "image": "a.png", "num_inference_steps": 60},
        {"id": "masked", "image": "a.png", "mask": "yes"},
        {"id": "missing", "image": "nowhere.png"},
        {"id": "text", "image": "notes.png"},
        {"id": "ok", "image": "b.png"},
        {"id": "a/b", "image": "a.png"},
        {"id": "escape", "image": "../other/a.png"},
        {"id": "ten", "image": "b.png", "n": 10, "seed": 5},
    ]
    drop_batch(s3, "bad-lines", files, lines)
    done = finished(s3, "bad-lines")
    items = records(s3, "bad-lines")

    assert done["counts"] == {"succeeded": 2, "failed": 7, "pending": 0}
    assert done["items"] == 9

    def error(item_id: str) -> tuple[str | None, str | None]:
        return items[item_id]["error"]["param"], items[item_id]["error"]["code"]

    assert items["ok"]["state"] == "succeeded"
    assert items["ok"]["size"] == "128x96"
    assert error("steps") == ("num_inference_steps", "invalid_value")
    assert error("masked")[0] == "mask"
    assert error("missing") == ("image", "image_not_found")
    assert error("text") == ("image", "invalid_image_format")
    assert error("ok~line-7") == ("id", "duplicate_id")
    assert error("line-8") == ("id", "invalid_value")
    assert error("escape") == ("image", "invalid_value")
    # n=10 runs as three fal calls of 4, 4 and 2: no 29 s limit, no 6 MB answer to fit.
    assert len(items["ten"]["results"]) == 10
    assert done["images"] == 11
    assert {"message", "type", "param", "code"} == set(items["steps"]["error"])


def test_given_a_manifest_that_is_not_json_lines_then_the_summary_fails_saying_why(
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    drop_batch(s3, "csv", {}, ["id,image,prompt", "sku-1,a.png,snow"])
    done = finished(s3, "csv")
    assert done["error"]["code"] == "invalid_manifest"
    assert "not JSON Lines" in done["error"]["message"]
    assert done["items"] == 0
    assert emulator.calls["submit"] == 0


def test_given_a_single_image_with_its_prompt_in_metadata_then_it_is_edited_on_its_own(
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    s3.put_object(
        Bucket=BATCH_BUCKET,
        Key="incoming/single/shoe.png",
        Body=tiny_png(9),
        Metadata={"prompt": "on a marble table", "n": "2", "seed": "11"},
    )

    def edited() -> dict[str, Any] | None:
        found = [r for r in records(s3, "single").values() if r["id"].startswith("shoe-")]
        return found[0] if found and found[0]["state"] == "succeeded" else None

    until(lambda: edited() is not None)
    record = edited() or {}
    assert len(record["results"]) == 2
    image = Image.open(
        io.BytesIO(s3.get_object(Bucket=BATCH_BUCKET, Key=record["results"][1]["key"])["Body"].read())
    )
    assert image.size == (64, 48)
    assert emulator.payloads[0]["seed"] == 11
    assert emulator.payloads[0]["prompt"] == "on a marble table"


def test_given_failed_items_and_dead_letters_when_redriven_then_only_they_run_and_nothing_is_paid_twice(
    emulator: FalEmulator, driver: QueueDriver, s3: Any, stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [{"id": "a", "image": "a.png", "prompt": "x"}, {"id": "b", "image": "b.png", "prompt": "x"}]
    drop_batch(s3, "redrive", {"b.png": tiny_png(2)}, lines)
    first = finished(s3, "redrive")
    assert first["counts"] == {"succeeded": 1, "failed": 1, "pending": 0}
    failed = records(s3, "redrive")["a"]
    # The missing image arrives; the same item also sits in the dead-letter queue, as if a
    # delivery of it had died three times.
    s3.put_object(Bucket=BATCH_BUCKET, Key="incoming/redrive/a.png", Body=tiny_png(1))
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(
        QueueUrl=stack.batch_env["BATCH_DEAD_LETTER_QUEUE_URL"], MessageBody=json.dumps(failed["message"])
    )
    emulator.reset()

    code = cli.main(["batch", "redrive", "redrive", "--bucket", BATCH_BUCKET])

    assert code == 0
    assert "1 failed item(s), 1 dead-lettered message(s)" in capsys.readouterr().out
    done = finished(s3, "redrive")
    until(driver.idle)
    assert done["counts"] == {"succeeded": 2, "failed": 0, "pending": 0}
    assert emulator.calls["submit"] == 1  # a, once; b is not run again
    assert records(s3, "redrive")["a"]["state"] == "succeeded"


def operations_task(
    handler: Any, schema: str, bucket: str, key: str, task_id: str = "t0", *, job_id: str = "job-7",
    timeout: float = 60.0, **task: Any,
) -> dict[str, Any]:  # fmt: skip
    """One invocation as S3 Batch Operations makes it, of job ``job_id``: one task, its key
    URL-encoded (``task``: the task's other fields, over these), with ``timeout`` seconds left.
    Returns the task's result."""
    where: dict[str, str] = {"s3BucketArn": f"arn:aws:s3:::{bucket}"}
    job: dict[str, Any] = {"id": job_id}
    if schema == "2.0":
        where = {"s3Bucket": bucket}
        job["userArguments"] = {"prompt": "winter", "n": "2"}
    event = {
        "invocationSchemaVersion": schema,
        "invocationId": f"inv-{task_id}",
        "job": job,
        "tasks": [
            {"taskId": task_id, "s3Key": quote_plus(key, safe="/"), "s3VersionId": None, **where, **task}
        ],
    }
    context = LambdaContext(function_name="BatchFunction", timeout_seconds=timeout)
    answer: dict[str, Any] = handler(event, context)
    assert answer["invocationSchemaVersion"] == schema
    assert answer["invocationId"] == f"inv-{task_id}"
    assert answer["treatMissingKeysAs"] == "PermanentFailure"
    (result,) = answer["results"]
    assert result["taskId"] == task_id
    return dict(result)


def task_record(s3: Any, result: dict[str, Any], state: str | None = None) -> dict[str, Any]:
    """The item record a task's ``resultString`` names, once written (by the task itself when it
    refused the item; else by the collect step fal's webhook queued), and in ``state`` if given."""
    match = re.search(rf"s3://{BATCH_BUCKET}/(\S+\.json)", result["resultString"])
    assert match, result
    found: dict[str, Any] = {}

    def written() -> bool:
        try:
            body = s3.get_object(Bucket=BATCH_BUCKET, Key=match.group(1))["Body"].read()
        except s3.exceptions.NoSuchKey:
            return False
        found.update(json.loads(body))
        return state in (None, found["state"])

    until(written)
    return found


def test_given_an_s3_batch_operations_job_then_each_task_gets_its_result_code_and_a_rerun_pays_nothing(
    emulator: FalEmulator, stack: LocalStack, driver: QueueDriver, s3: Any
) -> None:
    """Given an S3 Batch Operations job over an image and a text file,
    when its tasks run, and S3 retries the image's task,
    then the image's task answers Succeeded (submitted; its record to come) and its record holds
    its images, the text's answers PermanentFailure with the reason, the retry pays nothing, and a
    schema 1.0 task with no prompt is refused."""
    s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/shoes/red shoe.png", Body=tiny_png(3))
    s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/readme.txt", Body=b"text")
    (handler,) = batch_handlers(1)

    shoe = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/shoes/red shoe.png")
    text = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/readme.txt", "t1")
    assert shoe["resultCode"] == "Succeeded"
    assert shoe["resultString"].startswith("Submitted to fal (1 request(s)): its record will be written to ")
    assert text["resultCode"] == "PermanentFailure"
    assert "unsupported or unreadable image" in text["resultString"]
    assert emulator.calls["submit"] == 1
    item = task_record(s3, shoe)
    assert item["state"] == "succeeded"
    assert len(item["results"]) == 2

    # S3 retries a task
    rerun = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/shoes/red shoe.png")
    assert rerun == {**shoe, "resultString": shoe["resultString"].replace(
        "Submitted to fal (1 request(s)): its record will be written to", "Already succeeded: its record is"
    )}  # fmt: skip
    assert emulator.calls["submit"] == 1
    # Schema 1.0 names the bucket by ARN and carries no user arguments: without BatchDefaults,
    # no prompt, a clear refusal.
    s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/shoes/blue shoe.png", Body=tiny_png(4))
    old = operations_task(handler, "1.0", SOURCE_BUCKET, "catalog/shoes/blue shoe.png")
    assert old["resultCode"] == "PermanentFailure"
    assert "Missing required parameter: 'prompt'" in old["resultString"]
    assert emulator.calls["submit"] == 1
