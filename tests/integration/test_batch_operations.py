"""S3 Batch Operations tasks (issue 15, "Batch contract"): the task's version is the one edited;
each bucket, key and version is its own item; a task the function cannot take answers
``PermanentFailure`` with its reason instead of raising; ``BATCH_DEFAULTS`` gives schema 1.0
jobs (which carry no user arguments) their prompt and parameters. Issue 17: a task submits its
edit to fal and answers at once; fal's webhook has it collected, which writes the item's record
(where the task's answer says) and the job's summary."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from editgate_local.batch_driver import QueueDriver
from editgate_local.fal_emulator import FalEmulator, Fault
from editgate_local.stack import BATCH_BUCKET, SOURCE_BUCKET, LocalStack, batch_handlers
from tests.conftest import png_bytes
from tests.integration.conftest import batch_driver
from tests.integration.test_batch import finished, operations_task, summary, task_record, until

# The batch function as Lambda's event sources run it: here, for the collect queue fal's
# webhooks fill (S3 Batch Operations invokes the tasks themselves, as the tests do).
driver = batch_driver(2)


@pytest.fixture
def versions(s3: Any) -> tuple[str, str]:
    """Two versions of ``catalog/versioned.png`` in the (versioned) source bucket: 64x48, then
    48x64. Returns their version ids."""
    s3.put_bucket_versioning(Bucket=SOURCE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/versioned.png", Body=png_bytes((64, 48)))
    second = s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/versioned.png", Body=png_bytes((48, 64)))
    return first["VersionId"], second["VersionId"]


def test_given_a_task_with_an_s3_version_id_then_that_version_is_edited(
    emulator: FalEmulator, stack: LocalStack, driver: QueueDriver, s3: Any, versions: tuple[str, str]
) -> None:
    (handler,) = batch_handlers(1)

    result = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/versioned.png", s3VersionId=versions[0])

    assert result["resultCode"] == "Succeeded"
    assert task_record(s3, result)["size"] == "64x48"  # the first version's, not the latest's


def test_given_two_versions_of_a_key_in_one_job_then_each_is_its_own_item_and_edited(
    emulator: FalEmulator, stack: LocalStack, driver: QueueDriver, s3: Any, versions: tuple[str, str]
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
    assert (task_record(s3, first)["size"], task_record(s3, second)["size"]) == ("64x48", "48x64")
    assert emulator.calls["submit"] == 2


def test_given_the_same_key_in_two_buckets_in_one_job_then_each_is_its_own_item(
    emulator: FalEmulator, stack: LocalStack, driver: QueueDriver, s3: Any
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
    emulator: FalEmulator, stack: LocalStack, driver: QueueDriver, s3: Any
) -> None:
    for name in ("old", "new"):
        s3.put_object(Bucket=SOURCE_BUCKET, Key=f"catalog/defaults-{name}.png", Body=png_bytes((64, 48)))
    defaults = {"prompt": "on white marble", "n": 3, "seed": 5}
    (handler,) = batch_handlers(1, {"BATCH_DEFAULTS": json.dumps(defaults)})

    old = operations_task(handler, "1.0", SOURCE_BUCKET, "catalog/defaults-old.png", "t1")
    new = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/defaults-new.png", "t2")

    assert old["resultCode"] == new["resultCode"] == "Succeeded"
    assert len(task_record(s3, old)["results"]) == 3
    assert len(task_record(s3, new)["results"]) == 2  # the job's n=2 over the defaults' 3
    prompts = {payload["prompt"] for payload in emulator.payloads}
    assert prompts == {"on white marble", "winter"}


def test_given_a_task_left_to_s3s_retry_then_its_item_is_recorded_failed_meanwhile_so_its_batch_finishes(
    emulator: FalEmulator, stack: LocalStack, driver: QueueDriver, s3: Any
) -> None:
    """Given fal refusing every submit of a task's edit (a failure another try may fix),
    when S3 runs the task, then retries it (as S3 does a TemporaryFailure) once fal is back,
    then the first try answers TemporaryFailure, its item recorded failed meanwhile so that the
    job's batch finishes; the retry answers Succeeded, and once fal's webhook has its request
    collected, the item's record and the summary say it succeeded."""
    emulator.inject(Fault("submit", status_code=503, times=100))
    s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/retried.png", Body=png_bytes((64, 48)))
    (handler,) = batch_handlers(1)

    # A short invocation: the try's hold on submitting the item lasts as long as its time.
    result = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/retried.png", "t-retry",
                             job_id="job-retry", timeout=3.0)  # fmt: skip
    meanwhile = task_record(s3, result)
    before = finished(s3, "s3job-job-retry")
    emulator.reset()
    again = retried(handler, "2.0", SOURCE_BUCKET, "catalog/retried.png", "t-retry", job_id="job-retry")

    assert result["resultCode"] == "TemporaryFailure"
    assert result["resultString"].startswith("The provider answered HTTP 503.")
    assert meanwhile["state"] == "failed"
    assert meanwhile["error"]["code"] == "upstream_error"
    assert before["counts"] == {"succeeded": 0, "failed": 1, "pending": 0}
    assert again["resultCode"] == "Succeeded"
    assert again["resultString"].startswith("Submitted to fal (1 request(s)): its record will be written to ")
    assert task_record(s3, again, "succeeded")["results"]  # the later try's success replaces the failure
    until(lambda: (summary(s3, "s3job-job-retry") or {}).get("counts", {}).get("succeeded") == 1)
    assert (summary(s3, "s3job-job-retry") or {})["counts"] == {"succeeded": 1, "failed": 0, "pending": 0}
    assert emulator.calls["submit"] == 1


def retried(handler: Any, *task: Any, **fields: Any) -> dict[str, Any]:
    """S3's retries of a task answered ``TemporaryFailure``, until one answers otherwise: while an
    earlier try still holds the item, each is told so, and pays nothing."""
    answers: list[dict[str, Any]] = []

    def taken() -> bool:
        answers.append(operations_task(handler, *task, **fields))
        return bool(answers[-1]["resultCode"] != "TemporaryFailure")

    until(taken)
    assert all("being submitted by another delivery" in answer["resultString"] for answer in answers[:-1])
    return answers[-1]


def test_given_an_s3_batch_operations_task_when_it_runs_then_it_returns_before_fal_finishes(
    emulator: FalEmulator, stack: LocalStack, driver: QueueDriver, s3: Any
) -> None:
    """Given fal taking 2 s to edit,
    when S3 Batch Operations runs a task,
    then the task answers Succeeded while fal's request is still queued or running and before its
    result is fetched (the function does not wait on fal), naming where the item's record will be;
    once fal's webhook has the request collected, that record holds the images, the job's summary
    counts the item succeeded, and fal was paid once."""
    s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/told.png", Body=png_bytes((64, 48)))
    (handler,) = batch_handlers(1)
    emulator.latency = 2.0
    try:
        result = operations_task(handler, "2.0", SOURCE_BUCKET, "catalog/told.png", job_id="job-told")
        (request_id,) = emulator.request_ids
        _, status = emulator.status(request_id)
        results_fetched = emulator.calls["result"]
        item = task_record(s3, result)
        done = finished(s3, "s3job-job-told")
    finally:
        emulator.latency = 0.0

    assert result["resultCode"] == "Succeeded"
    assert status["status"] in ("IN_QUEUE", "IN_PROGRESS")  # fal still at work when the task answered
    assert results_fetched == 0
    record_uri = rf"s3://{BATCH_BUCKET}/batches/s3job-job-told/items/catalog_told\.png-[0-9a-f]{{16}}\.json"
    assert re.fullmatch(rf"Submitted to fal \(1 request\(s\)\): its record will be written to {record_uri}",
                        result["resultString"])  # fmt: skip
    assert item["state"] == "succeeded"
    assert item["provider_request_ids"] == [request_id]
    assert len(item["results"]) == 2
    assert done["counts"] == {"succeeded": 1, "failed": 0, "pending": 0}
    assert done["images"] == 2
    assert emulator.calls["submit"] == 1
    assert emulator.billed() == {request_id}
