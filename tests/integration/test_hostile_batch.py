"""The hostile-batch suite: the manifests of issue 15 and 300 generated ones (hypothesis, a fixed
seed), dropped in the local stack's batch bucket and run by the batch function as Lambda's SQS
event source drives it. Whatever a manifest holds:

- its batch finishes, with ``items = succeeded + failed`` and one record per item;
- nothing is written outside ``batches/<batch id>/`` (the whole bucket is listed);
- the batch function reads nothing but the manifests' own folders and the source bucket;
- no message fails a delivery, so no manifest is dead-lettered without a summary.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from editgate.adapters.objects import ObjectStore
from editgate_local.batch_driver import QueueDriver
from editgate_local.stack import BATCH_BUCKET, BUCKET, REGION, SOURCE_BUCKET, LocalStack
from tests.integration.conftest import FUNCTION_TIMEOUT
from tests.integration.test_batch import records, summary, tiny_png

# Every key a batch writes: batches/<a batch id>/<plain names>, none of them '.' or '..'.
BATCH_OUTPUT = re.compile(r"^batches/[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._~-]*)+$")
MANIFESTS_PER_EXAMPLE = 10
EXAMPLES = 30  # x 10 manifests: 300 generated
FILES = {"a.png": tiny_png(1), "b.png": tiny_png(2), "notes.png": b"plain text, named like an image"}
VICTIM_UPLOAD = f"s3://{BATCH_BUCKET}/incoming/victim/private.png"
VICTIM_RESULT = f"s3://{BATCH_BUCKET}/batches/victim/results/v1/0.png"


@dataclass(frozen=True)
class Manifest:
    """A manifest's lines, and whether it is uploaded a second time with one line more."""

    lines: tuple[bytes, ...]
    uploaded_twice: bool = False

    def files(self) -> set[str]:
        """The files beside the manifest it may name (uploading only those saves time)."""
        text = b"".join(self.lines) + (b"b.png" if self.uploaded_twice else b"")
        return {name for name in FILES if name.encode() in text}

    def body(self, extra: bool = False) -> bytes:
        more = (json.dumps({"id": "late", "image": "b.png", "prompt": "p"}).encode(),) if extra else ()
        return b"".join(line + b"\n" for line in self.lines + more)


def line(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


# The issue's manifests.
ISSUE_MANIFESTS = [
    Manifest((line({"id": "r", "image": VICTIM_RESULT, "prompt": "p"}),)),
    Manifest((line({"id": "u", "image": VICTIM_UPLOAD, "prompt": "p"}),)),
    Manifest((line({"id": "s", "image": f"s3://{BUCKET}/results/2026/01/01/x/0.png", "prompt": "p"}),)),
    Manifest((b'{"id": "x", "image": ', line({"id": "line-1", "image": "a.png", "prompt": "p"}))),
    Manifest((line({"id": "x", "prompt": "p"}), line({"id": "x", "image": "a.png", "prompt": "p"}))),
    Manifest(tuple(line({"id": f"l{i}", "image": "a.png", "prompt": "p" * 150_000}) for i in range(10))),
    Manifest(
        (line({"defaults": {"prompt": "p", "style": "x" * 1_100_000}}), line({"id": "a", "image": "a.png"}))
    ),
    Manifest((line({"id": "a", "image": "a.png", "prompt": "p"}),), uploaded_twice=True),
    Manifest((line({"id": "far", "image": "../victim/private.png", "prompt": "p"}),)),
    Manifest(()),
]

# --- generated manifests ----------------------------------------------------------------------

ids = st.one_of(
    st.sampled_from(["x", "y", "line-1", "line-2", "line-3", "a.b", "Z_9", "late"]),
    st.sampled_from(["", "-x", "a/b", "../x", "x~line-2", "é", "x" * 129, "../../escape"]),
    st.integers(-2, 2),
    st.none(),
)
images = st.one_of(
    st.sampled_from(["a.png", "b.png", f"s3://{SOURCE_BUCKET}/catalog/hostile.png"]),
    st.sampled_from(
        ["missing.png", "notes.png", "manifest.jsonl", "sub/a.png", f"s3://{SOURCE_BUCKET}/none.png"]
    ),
    st.sampled_from(["../victim/private.png", "./a.png", "a//b.png", "/a.png", "", "s3://", "s3:///x"]),
    st.sampled_from([VICTIM_UPLOAD, VICTIM_RESULT, f"s3://{BUCKET}/results/x.png", "s3://Bad_Bucket/x.png"]),
    st.integers(),
    st.none(),
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=6),
    st.sampled_from(["p", "64x48", "auto", "png", "jpeg", "hidream-e1-1"]),
    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 3), max_size=2),
)
params = st.dictionaries(
    st.sampled_from(
        ["prompt", "n", "size", "seed", "output_format", "mask", "model", "response_format", "style"]
    ),
    values,
    max_size=4,
)
good_params = st.fixed_dictionaries(
    {"prompt": st.just("p")},
    optional={
        "n": st.integers(1, 2),
        "seed": st.integers(0, 9),
        "output_format": st.sampled_from(["png", "jpeg"]),
    },
)
# A line that may well be an edit: a likely id (often taken already), an image that is there.
good_lines = st.builds(
    lambda item_id, image, extra: line({"id": item_id, "image": image, **extra}),
    st.sampled_from(["x", "y", "z", "line-2", "line-3"]),
    st.sampled_from(["a.png", "b.png", f"s3://{SOURCE_BUCKET}/catalog/hostile.png"]),
    good_params,
)
hostile_lines = st.builds(
    lambda fields, extra: line({**fields, **extra}),
    st.fixed_dictionaries({}, optional={"id": ids, "image": images}),
    params,
)
raw_lines = st.sampled_from(
    [
        b'{"id": "x", "image": ',
        b"[]",
        b"null",
        b"42",
        b'"text"',
        b"   ",
        b"{}",
        b"\xff\xfe{}",
        b"id,image,prompt",
        line({"defaults": {"prompt": "late"}}),
        line({"id": "long", "image": "a.png", "prompt": "p" * 210_000}),
        line({"id": "deep", "image": "a.png", "prompt": "p", "x": [[[[[[[[[[1]]]]]]]]]]}),
    ]
)
defaults_lines = st.one_of(
    st.builds(lambda p: line({"defaults": p}), st.one_of(good_params, params)),
    st.sampled_from([line({"defaults": "studio"}), line({"defaults": {"prompt": "p", "x": "y" * 300_000}})]),
)
manifests = st.builds(
    lambda first, rest, twice: Manifest(tuple(first + rest), twice),
    st.lists(defaults_lines, max_size=1),
    st.lists(st.one_of(good_lines, good_lines, hostile_lines, hostile_lines, raw_lines), max_size=5),
    st.sampled_from([False, False, False, True]),
)


# --- the stack --------------------------------------------------------------------------------


class ReadLog:
    """Every object the batch function asks S3 for (a HEAD or a read), as (bucket, key)."""

    def __init__(self) -> None:
        self.objects: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def forbidden(self) -> list[tuple[str, str]]:
        """What no hostile batch may read: anything but its own folder and the source bucket."""
        with self._lock:
            return sorted(
                (bucket, key)
                for bucket, key in self.objects
                if bucket != SOURCE_BUCKET
                and not (bucket == BATCH_BUCKET and key.startswith("incoming/hostile-"))
            )


@pytest.fixture(scope="module")
def read_log() -> Iterator[ReadLog]:
    log = ReadLog()
    read, head = ObjectStore.read, ObjectStore.head

    def logged_read(self: ObjectStore, bucket: str, key: str, *args: Any, **kwargs: Any) -> bytes:
        log.objects.add((bucket, key))
        return read(self, bucket, key, *args, **kwargs)

    def logged_head(self: ObjectStore, bucket: str, key: str, **kwargs: Any) -> Any:
        log.objects.add((bucket, key))
        return head(self, bucket, key, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ObjectStore, "read", logged_read)
        patch.setattr(ObjectStore, "head", logged_head)
        yield log


@pytest.fixture(scope="module")
def driver(stack: LocalStack, read_log: ReadLog) -> Iterator[QueueDriver]:
    assert stack.emulator is not None
    stack.emulator.latency = 0.0
    stack.set_batch_timeout(FUNCTION_TIMEOUT)
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=SOURCE_BUCKET, Key="catalog/hostile.png", Body=tiny_png(3))
    s3.put_object(Bucket=BATCH_BUCKET, Key="incoming/victim/private.png", Body=tiny_png(40))
    s3.put_object(Bucket=BATCH_BUCKET, Key="batches/victim/results/v1/0.png", Body=tiny_png(41))
    with stack.batch_driver(4) as running:
        yield running


def run_batches(s3: Any, manifests: list[Manifest], batch_ids: list[str]) -> None:
    """Upload each manifest's files, then the manifest (a second time, one line more, when it
    says so), all batches at once."""
    for batch_id, manifest in zip(batch_ids, manifests, strict=True):
        for name in manifest.files():
            s3.put_object(Bucket=BATCH_BUCKET, Key=f"incoming/{batch_id}/{name}", Body=FILES[name])
        key = f"incoming/{batch_id}/manifest.jsonl"
        s3.put_object(Bucket=BATCH_BUCKET, Key=key, Body=manifest.body())
        if manifest.uploaded_twice:
            s3.put_object(Bucket=BATCH_BUCKET, Key=key, Body=manifest.body(extra=True))


def all_finished(s3: Any, batch_ids: list[str], driver: QueueDriver, timeout: float = 60.0) -> dict[str, Any]:
    """Each batch's final summary, once all are finished and the queue is idle."""
    done: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(batch_ids) or not driver.idle():
        unfinished = [batch_id for batch_id in batch_ids if batch_id not in done]
        assert time.monotonic() < deadline, f"not finished: {unfinished}"
        for batch_id in unfinished:
            found = summary(s3, batch_id)
            if found is not None and found["finished"]:
                done[batch_id] = found
        threading.Event().wait(0.1)
    # Read again: an upload counted after a batch finished reopens it.
    return {batch_id: summary(s3, batch_id) or {} for batch_id in batch_ids}


def bucket_layout(s3: Any) -> set[str]:
    """The batch bucket's top-level keys and folders, and those under ``batches/``: what a key
    written outside a batch's own folder would add to."""
    entries: set[str] = set()
    for prefix in ("", "batches/"):
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=BATCH_BUCKET, Prefix=prefix, Delimiter="/"
        )
        for page in pages:
            entries |= {item["Key"] for item in page.get("Contents", [])}
            entries |= {folder["Prefix"] for folder in page.get("CommonPrefixes", [])}
    return entries


def outside_batches(s3: Any, batch_ids: list[str], before: set[str]) -> list[str]:
    """Keys written outside the folders of ``batch_ids`` since ``before`` (a ``bucket_layout``):
    a new top-level key or folder, a new entry of ``batches/`` that is not one of their folders,
    and in their folders anything but plain names. (Listed by folder: the bucket holds every batch
    of the session, and objects tests put there themselves.)"""
    folders = {f"batches/{batch_id}/" for batch_id in batch_ids}
    strays = sorted(bucket_layout(s3) - before - folders)
    for folder in sorted(folders):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BATCH_BUCKET, Prefix=folder)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        strays += [key for key in keys if not BATCH_OUTPUT.match(key)]
    return strays


def dead_letters(stack: LocalStack) -> int:
    sqs = boto3.client("sqs", region_name=REGION)
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.batch_env["BATCH_DEAD_LETTER_QUEUE_URL"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


@pytest.fixture(scope="module")
def dead_letters_before(stack: LocalStack) -> int:
    return dead_letters(stack)


NUMBERS = itertools.count()


@settings(
    derandomize=True,
    database=None,
    max_examples=EXAMPLES,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),  # a failing example is printed as drawn: no long shrink
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@example(batch=ISSUE_MANIFESTS)
@given(batch=st.lists(manifests, min_size=MANIFESTS_PER_EXAMPLE, max_size=MANIFESTS_PER_EXAMPLE))
def test_given_hostile_manifests_then_every_batch_finishes_adding_up_and_reads_and_writes_only_its_own(
    stack: LocalStack,
    driver: QueueDriver,
    read_log: ReadLog,
    dead_letters_before: int,
    batch: list[Manifest],
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    batch_ids = [f"hostile-{next(NUMBERS)}" for _ in batch]
    failures_before, layout_before = driver.failures_reported, bucket_layout(s3)

    run_batches(s3, batch, batch_ids)
    summaries = all_finished(s3, batch_ids, driver)

    for batch_id, done in summaries.items():
        counts = done["counts"]
        assert done["finished"] is True, (batch_id, done)
        assert done["items"] == counts["succeeded"] + counts["failed"], (batch_id, done)
        items = records(s3, batch_id)
        assert len(items) == done["items"], (batch_id, done, sorted(items))
        assert {record["state"] for record in items.values()} <= {"succeeded", "failed"}
    assert outside_batches(s3, batch_ids, layout_before) == []
    assert read_log.forbidden() == []
    assert driver.failures_reported == failures_before
    assert dead_letters(stack) == dead_letters_before
