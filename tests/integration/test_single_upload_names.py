"""Single images dropped under ``incoming/single/`` are edited whatever the case of their
extension, as cameras and phones name them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from editgate_local.batch_driver import QueueDriver
from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import BATCH_BUCKET, REGION, LocalStack, batch_notification_filters
from tests.conftest import png_bytes


@pytest.fixture(scope="module")
def driver(stack: LocalStack) -> Iterator[QueueDriver]:
    with stack.batch_driver(2) as running:
        yield running


def single_record(name: str, timeout: float = 60.0) -> dict[str, Any]:
    """The item record of the single upload ``name`` once it is settled (looked for every 0.1 s)."""
    s3 = boto3.client("s3", region_name=REGION)
    stem = name.rsplit(".", 1)[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=BATCH_BUCKET, Prefix=f"batches/single/items/{stem}-")
        for item in listed.get("Contents", []):
            body = s3.get_object(Bucket=BATCH_BUCKET, Key=item["Key"])["Body"].read()
            record: dict[str, Any] = json.loads(body)
            if record["state"] in ("succeeded", "failed"):
                return record
        threading.Event().wait(0.1)
    raise AssertionError(f"no record for {name} within {timeout} s")


@pytest.mark.parametrize(
    "name",
    ["IMG_0001.JPG", "Scan.PNG", "photo.JPEG", "sticker.WEBP", "IMG_7.Png", "shot.Jpg", "a.Jpeg", "b.Webp"],
)
def test_given_a_single_upload_with_an_upper_or_title_case_extension_then_it_is_edited(
    emulator: FalEmulator, driver: QueueDriver, name: str
) -> None:
    """Issue 15: ``incoming/single/IMG_0001.JPG`` was silently ignored (the notification filters
    are case-sensitive and were lower-case only)."""
    image = png_bytes((64, 48))  # the gateway reads the content, whatever the extension says
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BATCH_BUCKET, Key=f"incoming/single/{name}", Body=image, Metadata={"prompt": "add snow"}
    )

    record = single_record(name)

    assert record["state"] == "succeeded"
    assert len(record["results"]) == 1


def test_the_local_bucket_notifies_for_exactly_the_suffixes_the_template_declares() -> None:
    singles = {suffix for prefix, suffix in batch_notification_filters() if prefix == "incoming/single/"}
    lower = (".png", ".jpg", ".jpeg", ".webp")
    assert singles == {cased for suffix in lower for cased in (suffix, suffix.upper(), suffix.title())}
