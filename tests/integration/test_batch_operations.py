"""S3 Batch Operations tasks (issue 15, "Batch contract"): the task's version is the one edited;
each bucket, key and version is its own item; a task the function cannot take answers
``PermanentFailure`` with its reason instead of raising; ``BATCH_DEFAULTS`` gives schema 1.0
jobs (which carry no user arguments) their prompt and parameters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from editgate_local.fal_emulator import FalEmulator, Fault
from editgate_local.stack import BATCH_BUCKET, SOURCE_BUCKET, LocalStack, batch_handlers
from tests.conftest import png_bytes
from tests.integration.test_batch import operations_task


@pytest.fixture
def versions(s3: Any) -> tuple[str, str]:
    """Two versions of ``catalog/versioned.png`` in the (versioned) source bucket: 64x48, then
    48x64. Returns their version ids."""
    s3.put_bucket_versioning(Bucket=SOURCE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/versioned.png", Body=png_bytes((64, 48)))
    second = s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/versioned.png", Body=png_bytes((48, 64)))
    return first["VersionId"], second["VersionId"]


def record_of(s3: Any, result: dict[str, Any]) -> dict[str, Any]:
    key = result["resultString"].removeprefix(f"s3://{BATCH_BUCKET}/")
    record: dict[str, Any] = json.loads(s3.get_object(Bucket=BATCH_BUCKET, Key=key)["Body"].read())
    return record


def test_given_a_task_with_an_s3_version_id_then_that_version_is_edited(
    emulator: FalEmulator, stack: LocalStack, s3: Any, versions: tuple[str, str]
) -> None:
    (handler,) = batch_handlers(1)

    result = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/versioned.png", s3VersionId=versions[0])

    assert result["resultCode"] == "Succeeded"
    assert record_of(s3, result)["size"] == "64x48"  # the first version's, not the latest's


def test_given_two_versions_of_a_key_in_one_job_then_each_is_its_own_item_and_edited(
    emulator: FalEmulator, stack: LocalStack, s3: Any, versions: tuple[str, str]
) -> None:
    (handler,) = batch_handlers(1)

    first = operations_task(
        handler, "2.0", SOURCE_BUCKET, "catalog/versioned.png", "t1", s3VersionId=versions[0]
    )
    second = operations_task(
        handler, "2.0", SOURCE_BUCKET, "catalog/versioned.png", "t2", s3VersionId=versions[1]
    )

    assert first["resultCode"] == second["resultCode"] == "Succeeded"
    assert first["resultString"] != second["resultString"]
    assert (record_of(s3, first)["size"], record_of(s3, second)["size"]) == ("64x48", "48x64")
    assert emulator.calls["submit"] == 2


def test_given_the_same_key_in_two_buckets_in_one_job_then_each_is_its_own_item(
    emulator: FalEmulator, stack: LocalStack, s3: Any
) -> None:
    for bucket in (SOURCE_BUCKET, BATCH_BUCKET):
        s3.put_object(Bucket=bucket, Key="catalog/twice.png", Body=png_bytes((64, 48)))
    (handler,) = batch_handlers(1)

    source = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/twice.png", "t1")
    other = operations_task(handler, "2.0", BATCH_BUCKET, "catalog/twice.png", "t2")

    assert source["resultCode"] == "Succeeded"
    # Not the first task's record: its own answer, refused, for the function reads the source bucket only.
    assert other["resultCode"] == "PermanentFailure"
    assert f"s3://{SOURCE_BUCKET}/" in other["resultString"]
    assert emulator.calls["submit"] == 1


@pytest.mark.parametrize(
    ("task", "reason"),
    [
        ({"s3Key": ""}, "The task's key is empty."),
        ({"s3Bucket": "Not_A_Bucket!"}, "is not an S3 bucket name"),
        ({"s3Bucket": ""}, "is not an S3 bucket name"),
        ({"s3Key": None}, "The task could not be run ("),
        ({"s3VersionId": 7}, "The task cannot be read"),
    ],
    ids=["empty key", "invalid bucket name", "empty bucket name", "no key", "version not a string"],
)
def test_given_a_bad_task_then_it_answers_permanent_failure_with_its_reason(
    emulator: FalEmulator, stack: LocalStack, task: dict[str, Any], reason: str
) -> None:
    (handler,) = batch_handlers(1)

    result = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/a.png", **task)

    assert result["resultCode"] == "PermanentFailure"
    assert reason in result["resultString"]
    assert emulator.calls["submit"] == 0


def test_given_batch_defaults_then_a_schema_1_0_job_gets_its_prompt_and_user_arguments_override_them(
    emulator: FalEmulator, stack: LocalStack, s3: Any
) -> None:
    for name in ("old", "new"):
        s3.put_object(Bucket=SOURCE_BUCKET, Key=f"catalog/defaults-{name}.png", Body=png_bytes((64, 48)))
    defaults = {"prompt": "on white marble", "n": 3, "seed": 5}
    (handler,) = batch_handlers(1, {"BATCH_DEFAULTS": json.dumps(defaults)})

    old = operations_task(handler, "1.0", SOURCE_BUCKET, "catalog/defaults-old.png", "t1")
    new = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/defaults-new.png", "t2")

    assert old["resultCode"] == new["resultCode"] == "Succeeded"
    assert len(record_of(s3, old)["results"]) == 3
    assert len(record_of(s3, new)["results"]) == 2  # the job's n=2 over the defaults' 3
    prompts = {payload["prompt"] for payload in emulator.payloads}
    assert prompts == {"on white marble", "winter"}


def test_given_a_task_left_to_s3s_retry_then_its_item_is_recorded_failed_meanwhile_so_its_batch_finishes(
    emulator: FalEmulator, stack: LocalStack, s3: Any
) -> None:
    # fal refuses every try of the submit: a failure another try may fix (S3's retry, if it makes one).
    emulator.inject(Fault("submit", status_code=503, times=100))
    s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/retried.png", Body=png_bytes((64, 48)))
    (handler,) = batch_handlers(1)

    result = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/retried.png", "t-retry")
    listed = s3.list_objects_v2(Bucket=BATCH_BUCKET, Prefix="batches/s3job-job-7/items/catalog_retried.png-")
    (key,) = [item["Key"] for item in listed.get("Contents", [])]
    meanwhile = json.loads(s3.get_object(Bucket=BATCH_BUCKET, Key=key)["Body"].read())
    emulator.reset()
    again = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/retried.png", "t-retry")

    assert result["resultCode"] == "TemporaryFailure"
    assert meanwhile["state"] == "failed"
    assert meanwhile["error"]["code"] == "upstream_error"
    assert again["resultCode"] == "Succeeded"
    assert record_of(s3, again)["state"] == "succeeded"  # the later try's success replaces the failure
