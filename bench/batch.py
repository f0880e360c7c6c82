"""Batch throughput on the local stack: a manifest of ITEMS images edited with the fal emulator's
latency L and C execution environments of the batch function (MaximumConcurrency), timed from
the manifest's upload to ``finished: true`` in the summary, against the ideal ceil(items / C) x L.

    .venv/bin/python bench/batch.py [--items 50] [--concurrency 10] [--latencies 2 5 10] [--runs 1]

Target: wall <= 1.3 x ceil(items / C) x L. Each environment is its own process, as on
Lambda; moto and the emulator share this one. The CPU each item costs is printed too: on a small
machine, C environments' image work can take longer than L, and then no queueing design helps.
A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from PIL import Image
from report import Section, run_alone, spread

from editgate_local.sample import SAMPLE_IMAGE
from editgate_local.stack import BATCH_BUCKET, REGION, LocalStack

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TARGET = 1.3
TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def environments(count: int, stack: LocalStack, access_keys: Sequence[str] = ()) -> Iterator[list[int]]:
    """The batch function's execution environments, each its own process running one invocation
    at a time; yields their process ids. ``access_keys``: each environment's own AWS access key
    id, if given (moto takes any; the calls of each environment can then be told apart)."""
    command = [sys.executable, "-m", "editgate_local.cli", "batch", "worker", "--concurrency", "1"]
    command += ["--function-timeout", str(stack.batch_timeout)]
    envs = [{**os.environ, **stack.env} for _ in range(count)]
    for env, access_key in zip(envs, access_keys, strict=False):
        # The CLI gives a loopback stack dummy credentials of its own: the app id in the user
        # agent still tells the environment's calls apart.
        env["AWS_ACCESS_KEY_ID"] = env["AWS_SDK_UA_APP_ID"] = access_key
    workers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for env in envs]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        yield [worker.pid for worker in workers]
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU of a process (this one by default), from /proc."""
    fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def photos(count: int) -> list[bytes]:
    """Distinct photos of the sample's size (768x512), as PNG."""
    with Image.open(SAMPLE_IMAGE) as opened:
        source = opened.convert("RGB")
    images = []
    for index in range(count):
        out = io.BytesIO()
        source.rotate(index % 360).save(out, format="PNG")
        images.append(out.getvalue())
    return images


def upload(s3: S3Client, batch_id: str, images: list[bytes], lines: int | None = None) -> float:
    """Upload the images, then a manifest of ``lines`` items (one per image unless given; the
    images in turn); returns the time (time.monotonic()) the manifest's upload began."""
    for index, data in enumerate(images):
        s3.put_object(Bucket=BATCH_BUCKET, Key=f"incoming/{batch_id}/{index}.png", Body=data)
    manifest: list[dict[str, object]] = [{"defaults": {"prompt": "benchmark edit"}}]
    count = len(images) if lines is None else lines
    manifest += [{"id": f"item-{i}", "image": f"{i % len(images)}.png"} for i in range(count)]
    body = "".join(json.dumps(line) + "\n" for line in manifest).encode()
    started = time.monotonic()
    s3.put_object(Bucket=BATCH_BUCKET, Key=f"incoming/{batch_id}/manifest.jsonl", Body=body)
    return started


def finished_summary(s3: S3Client, batch_id: str) -> dict[str, Any]:
    """The batch's summary once it says ``finished``."""
    while True:
        try:
            summary: dict[str, Any] = json.loads(
                s3.get_object(Bucket=BATCH_BUCKET, Key=f"batches/{batch_id}/summary.json")["Body"].read()
            )
        except s3.exceptions.NoSuchKey:
            summary = {}
        if summary.get("finished"):
            return summary
        threading.Event().wait(0.05)


def one_run(batch_id: str, images: list[bytes]) -> float:
    """Upload the images, then the manifest; seconds from the manifest to the finished summary."""
    s3 = boto3.client("s3", region_name=REGION)
    started = upload(s3, batch_id, images)
    summary = finished_summary(s3, batch_id)
    assert summary["counts"]["succeeded"] == len(images), summary
    return time.monotonic() - started


def measure(args: argparse.Namespace) -> Section:
    section = Section("Batch throughput")
    images = photos(args.items)
    rows = []
    with LocalStack(environ={}, batch_timeout=120) as stack, environments(args.concurrency, stack) as pids:
        assert stack.emulator is not None
        section.say(f"fal: {stack.fal_description}")
        for latency in args.latencies:
            stack.emulator.latency = latency
            walls, cpu = [], []
            for run in range(args.runs):
                before = (cpu_seconds(), sum(cpu_seconds(pid) for pid in pids))
                walls.append(one_run(f"bench-{latency:g}-{run}", images))
                cpu.append((cpu_seconds() - before[0], sum(cpu_seconds(pid) for pid in pids) - before[1]))
            rows.append((latency, walls, cpu))

    cores = os.cpu_count() or 1
    section.say(f"batch throughput: {args.items} items (768x512 PNG), C={args.concurrency}, {cores} cores")
    section.say(f"{'L (s)':>6} {'ideal (s)':>10} {'wall median (min-max)':>24} {'ratio':>6}")
    chart = section.chart("batch", f"Batch of {args.items}, C={args.concurrency}: wall / ideal", "ratio")
    for latency, walls, _ in rows:
        ideal = math.ceil(args.items / args.concurrency) * latency
        median = statistics.median(walls)
        section.say(
            f"{latency:>6g} {ideal:>10.2f} {spread(walls, ' s', digits=2):>24} {median / ideal:>6.3f}"
        )
        chart.add(f"L = {latency:g} s", [wall / ideal for wall in walls])
        section.target(f"batch wall / ideal at L = {latency:g} s", f"{median / ideal:.3f}", f"<= {TARGET}",
                       median / ideal <= TARGET)  # fmt: skip
    stack_cpu = statistics.median(c[0] for _, _, runs in rows for c in runs) / args.items
    function_cpu = statistics.median(c[1] for _, _, runs in rows for c in runs) / args.items
    floor = args.items * (stack_cpu + function_cpu) / cores
    section.say(
        f"CPU per item: {function_cpu * 1000:.0f} ms in the function environments, "
        f"{stack_cpu * 1000:.0f} ms in the local stand-ins (moto, fal emulator); on {cores} cores "
        f"the batch cannot take less than {floor:.1f} s of CPU, whatever L is."
    )
    return section


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--latencies", type=float, nargs="+", default=[2.0, 5.0, 10.0])
    parser.add_argument("--runs", type=int, default=1)


if __name__ == "__main__":
    run_alone(__doc__, add_arguments, measure)
