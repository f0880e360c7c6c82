"""The batch contract holds for every manifest (issue 15, "Batch contract"): every line claims its
id, valid or not; SQS sends fit SQS's limits; a batch id takes one manifest; upper-case image
``editgate batch run`` edits every image of a folder whatever its name.
Each batch finishes with ``items = succeeded + failed`` and nothing is dead-lettered."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from editgate_local import cli
from editgate_local.batch_driver import QueueDriver
from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import BATCH_BUCKET, REGION, LocalStack
from tests.integration.conftest import batch_driver
from tests.integration.test_batch import (
    drop_batch,
    finished,
    records,
    summary,
    tiny_png,
    until,
)

# A batch that is not finished by then never will be (the old code's symptom).
SOON = 60.0


driver = batch_driver(4)


@pytest.fixture
def nothing_dead_lettered(stack: LocalStack, driver: QueueDriver) -> Iterator[None]:
    """No message of the test failed a delivery, so none can reach the dead-letter queue."""
    failures_before = driver.failures_reported
    yield
    until(driver.idle, timeout=SOON)
    assert driver.failures_reported == failures_before
    sqs = boto3.client("sqs", region_name=REGION)
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.batch_env["BATCH_DEAD_LETTER_QUEUE_URL"],
        AttributeNames=["ApproximateNumberOfMessages"],
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"


def adds_up(done: dict[str, Any]) -> None:
    counts = done["counts"]
    assert done["finished"] is True
    assert done["items"] == counts["succeeded"] + counts["failed"]
    assert counts["pending"] == 0


def test_given_a_line_that_fails_to_parse_and_a_later_line_with_its_fallback_id_then_the_batch_finishes_with_each_recorded(  # noqa: E501
    emulator: FalEmulator, s3: Any, nothing_dead_lettered: None
) -> None:
    lines = ['{"id": "x", "image": ', {"id": "line-1", "image": "a.png", "prompt": "p"}]
    drop_batch(s3, "fallback-id", {"a.png": tiny_png(1)}, lines)

    done = finished(s3, "fallback-id", timeout=SOON)

    adds_up(done)
    items = records(s3, "fallback-id")
    assert done["items"] == 2
    assert items["line-1"]["error"]["code"] == "invalid_manifest_line"
    assert items["line-1~line-2"]["error"]["code"] == "duplicate_id"
    assert emulator.calls["submit"] == 0


def test_given_a_line_without_an_image_and_a_later_line_with_its_id_then_the_failure_stands_and_the_batch_finishes(  # noqa: E501
    emulator: FalEmulator, s3: Any, nothing_dead_lettered: None
) -> None:
    lines = [{"id": "x", "prompt": "p"}, {"id": "x", "image": "a.png", "prompt": "p"}]
    drop_batch(s3, "failure-stands", {"a.png": tiny_png(1)}, lines)

    done = finished(s3, "failure-stands", timeout=SOON)

    adds_up(done)
    items = records(s3, "failure-stands")
    assert done["counts"] == {"succeeded": 0, "failed": 2, "pending": 0}
    assert items["x"]["state"] == "failed"
    assert items["x"]["error"]["param"] == "image"
    assert items["x~line-2"]["error"]["code"] == "duplicate_id"
    assert emulator.calls["submit"] == 0


def test_given_ten_lines_of_150_kb_then_they_are_queued_within_sqs_limits_and_the_batch_finishes(
    emulator: FalEmulator, s3: Any, nothing_dead_lettered: None
) -> None:
    long_prompt = "a studio photo, " * (150_000 // 16)
    lines = [{"id": f"big-{i}", "image": "a.png", "prompt": long_prompt} for i in range(10)]
    drop_batch(s3, "ten-150kb", {"a.png": tiny_png(1)}, lines)

    done = finished(s3, "ten-150kb", timeout=SOON)

    adds_up(done)
    assert done["items"] == 10


def test_given_a_defaults_line_over_1_mb_then_the_summary_says_why_and_nothing_is_dead_lettered(
    emulator: FalEmulator, s3: Any, nothing_dead_lettered: None
) -> None:
    lines = [
        {"defaults": {"prompt": "p", "style": "x" * 1_100_000}},
        {"id": "a", "image": "a.png"},
        {"id": "b", "image": "a.png"},
    ]
    drop_batch(s3, "huge-defaults", {"a.png": tiny_png(1)}, lines)

    done = finished(s3, "huge-defaults", timeout=SOON)

    adds_up(done)
    assert done["error"]["code"] == "invalid_manifest"
    assert "defaults line is longer than 204,800 bytes" in done["error"]["message"]
    assert emulator.calls["submit"] == 0


def test_given_a_second_manifest_for_the_same_batch_id_then_it_is_refused_with_a_record_and_the_summary_adds_up(  # noqa: E501
    emulator: FalEmulator, s3: Any, nothing_dead_lettered: None
) -> None:
    files = {"a.png": tiny_png(1), "b.png": tiny_png(2)}
    first = [{"id": "a", "image": "a.png", "prompt": "p"}]
    drop_batch(s3, "uploaded-twice", files, first)
    assert finished(s3, "uploaded-twice", timeout=SOON)["counts"]["succeeded"] == 1

    drop_batch(s3, "uploaded-twice", {}, [*first, {"id": "b", "image": "b.png", "prompt": "p"}])
    until(lambda: (summary(s3, "uploaded-twice") or {}).get("items") == 2, timeout=SOON)
    done = finished(s3, "uploaded-twice", timeout=SOON)

    adds_up(done)
    assert done["counts"] == {"succeeded": 1, "failed": 1, "pending": 0}
    (refused,) = [r for r in records(s3, "uploaded-twice").values() if r["state"] == "failed"]
    assert refused["id"].startswith("manifest~")
    assert refused["error"]["code"] == "manifest_exists"
    assert "new batch id" in refused["error"]["message"]
    assert emulator.calls["submit"] == 1  # b, of the refused upload, is never edited


def test_given_the_same_manifest_uploaded_again_then_the_batch_is_unchanged_and_nothing_is_paid_again(
    emulator: FalEmulator, s3: Any, driver: QueueDriver, nothing_dead_lettered: None
) -> None:
    lines = [{"id": "a", "image": "a.png", "prompt": "p"}]
    drop_batch(s3, "same-again", {"a.png": tiny_png(1)}, lines)
    before = finished(s3, "same-again", timeout=SOON)
    received = len(driver.received)

    drop_batch(s3, "same-again", {}, lines)

    until(lambda: len(driver.received) > received and driver.idle(), timeout=SOON)
    after = finished(s3, "same-again", timeout=SOON)
    adds_up(after)
    assert after["counts"] == before["counts"] == {"succeeded": 1, "failed": 0, "pending": 0}
    assert emulator.calls["submit"] == 1


def test_given_a_manifest_under_a_batch_id_single_uploads_or_s3_jobs_hold_then_it_starts_nothing(
    emulator: FalEmulator, s3: Any, driver: QueueDriver, nothing_dead_lettered: None
) -> None:
    drop_batch(s3, "s3job-not-mine", {"a.png": tiny_png(1)}, [{"id": "a", "image": "a.png", "prompt": "p"}])

    until(driver.idle, timeout=SOON)

    assert summary(s3, "s3job-not-mine") is None
    assert records(s3, "s3job-not-mine") == {}
    assert emulator.calls["submit"] == 0


def test_given_a_folder_whose_image_names_are_no_valid_ids_when_run_from_the_cli_then_every_image_is_edited_and_failures_name_their_file(  # noqa: E501
    emulator: FalEmulator,
    s3: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    nothing_dead_lettered: None,
) -> None:
    folder = tmp_path / "shoot"
    folder.mkdir()
    (folder / "_draft.png").write_bytes(tiny_png(1))
    (folder / "dup.png").write_bytes(tiny_png(2))
    photo = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(photo, format="JPEG")
    (folder / "dup.jpg").write_bytes(photo.getvalue())
    (folder / "scan.PNG").write_bytes(b"not really a png")
    (folder / "readme.txt").write_text("not an image")

    code = cli.main(
        ["batch", "run", str(folder), "--bucket", BATCH_BUCKET, "--batch-id", "shoot", "--prompt", "p"]
    )

    printed = capsys.readouterr().out
    assert code == 3, printed  # finished, one item failed
    done = summary(s3, "shoot") or {}
    adds_up(done)
    assert done["counts"] == {"succeeded": 3, "failed": 1, "pending": 0}
    items = records(s3, "shoot")
    assert {items[i]["state"] for i in ("draft", "dup", "dup-png")} == {"succeeded"}
    assert items["scan"]["error"]["code"] == "invalid_image_format"
    assert "scan.PNG" in printed  # the failure names its file
    assert "not in the manifest, so not edited: readme.txt" in printed
    assert done["error"] is None
