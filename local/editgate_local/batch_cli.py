"""``editgate batch``: run a folder of images as a batch edit and watch it, read a batch's
summary, re-queue its failures. On the embedded stack by default (the same BatchFunction handler,
driven by the local SQS event source); on a deployed stack with ``--stack``; on another local
stack (``editgate serve``) with ``--bucket`` and ``AWS_ENDPOINT_URL``."""

from __future__ import annotations

import argparse
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from PIL import Image, ImageEnhance, ImageOps
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from editgate.adapters.ledger import BatchLedger
from editgate.adapters.objects import ObjectNotFound, ObjectStore
from editgate.adapters.queue import WorkQueue
from editgate.app.batch import layout, redrive
from editgate_local.sample import SAMPLE_IMAGE
from editgate_local.stack import (
    BATCH_BUCKET,
    REGION,
    LocalStack,
    batch_driver,
    batch_environment,
)

console = Console(highlight=False)


@dataclass(frozen=True)
class Deployment:
    """Where a batch stack keeps things."""

    description: str
    bucket: str
    table: str
    queue_url: str
    dead_letter_url: str

    def store(self) -> ObjectStore:
        return ObjectStore(self.bucket, f"{layout.OUTPUT}/", 3600)


@dataclass(frozen=True)
class Upload:
    """A folder as a batch: the manifest, the files uploaded beside it, the files it does not
    edit, and the image each manifest line names (to report a line's failure by its file)."""

    manifest: bytes
    files: list[Path]
    strays: list[str]
    images_by_line: dict[int, str]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("batch", help="batch edits through the batch bucket")
    verbs = parser.add_subparsers(dest="verb", required=True)

    run = verbs.add_parser("run", help="upload a folder and a manifest, then watch the batch")
    run.add_argument("folder", type=Path)
    run.add_argument("--prompt", help="the edit for every image (when the folder has no manifest.jsonl)")
    run.add_argument("--param", action="append", default=[], metavar="K=V", help="another edit parameter")
    run.add_argument("--concurrency", type=int, default=10, help="items edited at once (MaximumConcurrency)")
    run.add_argument("--batch-id", default=None)
    run.add_argument("--output", type=Path, default=None, help="copy the results to this folder")
    run.add_argument("--fal-latency", type=float, default=0.0, help="emulated fal run time (embedded stack)")
    run.add_argument("--timeout", type=float, default=3600.0, help="stop watching after this many seconds")
    _target(run)

    status = verbs.add_parser("status", help="a batch's summary")
    status.add_argument("batch_id")
    _target(status)

    redrive = verbs.add_parser("redrive", help="queue a batch's failed items (and dead letters) again")
    redrive.add_argument("batch_id")
    _target(redrive)

    worker = verbs.add_parser("worker", help="drive a running local stack's batch queue (AWS_ENDPOINT_URL)")
    worker.add_argument("--concurrency", type=int, default=4)
    worker.add_argument("--function-timeout", type=float, default=60.0)

    sample = verbs.add_parser("sample", help="write COUNT variants of the bundled sample image to FOLDER")
    sample.add_argument("folder", type=Path)
    sample.add_argument("--count", type=int, default=20)


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack", default=None, help="a deployed editgate stack (its CloudFormation outputs)"
    )
    parser.add_argument(
        "--bucket", default=None, help=f"a local stack's batch bucket ({BATCH_BUCKET}), with AWS_ENDPOINT_URL"
    )


def main(args: argparse.Namespace) -> int:
    if args.verb == "sample":
        return _sample(args.folder, args.count)
    if args.verb == "worker":
        return _worker(args.concurrency, args.function_timeout)
    if args.verb == "run" and not (args.stack or args.bucket):
        return _run_embedded(args)
    deployment = _deployment(args)
    if args.verb == "run":
        return _run(args, deployment)
    if args.verb == "status":
        return _status(args.batch_id, deployment)
    return _redrive(args.batch_id, deployment)


def _run_embedded(args: argparse.Namespace) -> int:
    """The whole path on the embedded stack: moto's S3 notifies moto's SQS, and the local event
    source drives the BatchFunction handler, ``--concurrency`` invocations at a time."""
    with LocalStack(fal_latency=args.fal_latency) as stack:
        console.print(
            f"stack: the embedded local stack (S3, SQS, DynamoDB: moto at {stack.env['AWS_ENDPOINT_URL']})"
        )
        console.print(f"fal:   {stack.fal_description}")
        with stack.batch_driver(args.concurrency):
            return _run(args, local_deployment("the embedded local stack"))


def local_deployment(description: str) -> Deployment:
    env = batch_environment()
    return Deployment(
        description,
        env["RESULTS_BUCKET"],
        env["BATCH_TABLE"],
        env["BATCH_QUEUE_URL"],
        env["BATCH_DEAD_LETTER_QUEUE_URL"],
    )


def _deployment(args: argparse.Namespace) -> Deployment:
    if args.bucket:
        return local_deployment(f"the stack at {boto3.client('s3', region_name=REGION).meta.endpoint_url}")
    stacks = boto3.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return Deployment(
        f"stack {args.stack}",
        outputs["BatchBucketName"],
        outputs["BatchTableName"],
        outputs["BatchQueueUrl"],
        outputs["BatchDeadLetterQueueUrl"],
    )


def manifest_for(folder: Path, prompt: str | None, params: list[str]) -> Upload:
    """The folder's own manifest.jsonl, or one made of every image in it (by name, in any case)
    with ``prompt`` and ``params`` as defaults."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    given = folder / layout.MANIFEST_NAME
    if given.exists():
        if prompt or params:
            raise SystemExit(
                "the folder has its own manifest.jsonl: put --prompt and --param in its defaults line"
            )
        text = given.read_bytes()
        named = {number: str(line.get("image")) for number, line in _json_lines(text)}
        uploads = [p for p in files if p != given]
        strays = [p.name for p in uploads if p.name not in named.values()]
        return Upload(text, uploads, strays, named)
    if not prompt:
        raise SystemExit("--prompt is required when the folder has no manifest.jsonl")
    defaults: dict[str, Any] = {"prompt": prompt}
    for pair in params:
        name, _, value = pair.partition("=")
        defaults[name] = value
    images = [p for p in files if p.suffix.lower() in layout.IMAGE_SUFFIXES]
    ids = item_ids([p.name for p in images])
    lines = [{"defaults": defaults}] + [{"id": ids[p.name], "image": p.name} for p in images]
    manifest = "".join(json.dumps(line) + "\n" for line in lines).encode()
    strays = [p.name for p in files if p not in images]
    return Upload(manifest, images, strays, {number: p.name for number, p in enumerate(images, start=2)})


def item_ids(names: list[str]) -> dict[str, str]:
    """An item id for each file name: its stem made valid (``layout.safe_id``), with its extension
    and then a number added where that is taken (``dup.jpg`` and ``dup.png``: ``dup`` and
    ``dup-png``). Linear in the names: a folder of 100,000 images is named at once."""
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        stem, _, extension = name.rpartition(".")
        base = layout.safe_id(stem or name, fallback="image")
        with_extension = f"{base}-{re.sub(r'[^A-Za-z0-9]+', '', extension)}".rstrip("-")
        numbered = (f"{base}-{n}" for n in itertools.count(2))
        ids[name] = next(c for c in itertools.chain((base, with_extension), numbered) if c not in taken)
        taken.add(ids[name])
    return ids


def _json_lines(text: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    """The lines of a manifest that are JSON objects, by number (the batch reports the others)."""
    for number, raw in enumerate(text.split(b"\n"), start=1):
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            yield number, line


def _run(args: argparse.Namespace, deployment: Deployment) -> int:
    batch_id = args.batch_id or _batch_id(args.folder)
    if not layout.manifest_batch_id(batch_id):
        raise SystemExit(
            f"--batch-id {batch_id!r}: 1 to 128 letters, digits, '.', '_' or '-', from a letter or digit "
            "(not 'single' nor 's3job-…')"
        )
    upload = manifest_for(args.folder, args.prompt, args.param)
    store = deployment.store()
    console.print(f"batch: {batch_id} on {deployment.description}, bucket {deployment.bucket}")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda p: store.put(f"{layout.INCOMING}/{batch_id}/{p.name}", p.read_bytes(), ""),
                upload.files,
            )
        )
    # The manifest goes last: its arrival starts the batch.
    store.put(f"{layout.INCOMING}/{batch_id}/{layout.MANIFEST_NAME}", upload.manifest, "application/x-ndjson")
    console.print(f"uploaded {len(upload.files)} file(s) and the manifest")
    summary = _watch(batch_id, store, args.timeout)
    _report(batch_id, summary, store, upload)
    if args.output:
        _download(batch_id, store, args.output)
    return 0 if summary and summary["finished"] and not summary["error"] else 1


def _watch(batch_id: str, store: ObjectStore, timeout: float) -> dict[str, Any] | None:
    """A live bar from the batch's summary.json, until the batch finishes."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn(
            "{task.completed:.0f}/{task.fields[items]} done · {task.fields[failed]} failed · "
            "{task.fields[images]} images · ${task.fields[cost]:.2f} · {task.fields[rate]:.1f} items/s"
        ),
        TimeElapsedColumn(),
    )
    summary = None
    started = time.monotonic()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(batch_id, total=None, items="?", failed=0, images=0, cost=0.0, rate=0.0)
        while time.monotonic() - started < timeout:
            summary = read_summary(batch_id, store)
            if summary is not None:
                counts = summary["counts"]
                done = counts["succeeded"] + counts["failed"]
                progress.update(
                    task,
                    completed=done,
                    total=summary["items"] if summary["manifest_read"] else None,
                    items=summary["items"] if summary["manifest_read"] else f"{summary['items']}+",
                    failed=counts["failed"],
                    images=summary["images"],
                    cost=summary["cost"]["usd"],
                    rate=done / max(time.monotonic() - started, 1e-6),
                )
                if summary["finished"]:
                    break
            time.sleep(0.25)
    return summary


def read_summary(batch_id: str, store: ObjectStore) -> dict[str, Any] | None:
    try:
        summary: dict[str, Any] = json.loads(store.get(layout.output_key(batch_id, "summary.json")))
    except ObjectNotFound:
        return None
    return summary


def _report(batch_id: str, summary: dict[str, Any] | None, store: ObjectStore, upload: Upload) -> None:
    if summary is None:
        console.print("[red]no summary yet: the batch has not started (is the manifest where it should be?)")
        return
    if summary["error"]:
        console.print(f"[red]the manifest was not read whole: {summary['error']['message']}")
    counts = summary["counts"]
    console.print(
        f"{counts['succeeded']} succeeded, {counts['failed']} failed, {counts['pending']} pending; "
        f"{summary['images']} images, ${summary['cost']['usd']:.2f}"
    )
    failed = redrive.failed_items(batch_id, store)
    if failed:
        table = Table("file", "item", "line", "code", "message", title="failed items")
        for record in sorted(failed, key=lambda r: r.get("line") or 0):
            error = record["error"]
            file = upload.images_by_line.get(record.get("line") or 0, "")
            table.add_row(
                file, record["id"], str(record.get("line") or ""), str(error["code"]), error["message"]
            )
        console.print(table)
    for name in upload.strays:
        console.print(f"[yellow]not in the manifest, so not edited: {name}")
    folder = layout.output_key(batch_id)
    console.print(f"results: s3://{store.bucket}/{folder}/results/")
    console.print(f"records: s3://{store.bucket}/{folder}/items/ and summary.json")


def _download(batch_id: str, store: ObjectStore, output: Path) -> None:
    prefix = layout.output_key(batch_id, "results") + "/"
    count = 0
    for key in store.keys(prefix):
        path = output / key.removeprefix(prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get(key))
        count += 1
    console.print(f"copied {count} result(s) to {output}/")


def _status(batch_id: str, deployment: Deployment) -> int:
    summary = read_summary(batch_id, deployment.store())
    if summary is None:
        console.print(f"no batch {batch_id} on {deployment.description}")
        return 1
    console.print_json(json.dumps(summary))
    return 0


def _redrive(batch_id: str, deployment: Deployment) -> int:
    failed, dead = redrive.redrive(
        batch_id,
        deployment.store(),
        BatchLedger(deployment.table),
        WorkQueue(deployment.queue_url),
        deployment.dead_letter_url,
    )
    console.print(f"queued again: {failed} failed item(s), {dead} dead-lettered message(s)")
    return 0


def _worker(concurrency: int, function_timeout: float) -> int:
    """The batch function's execution environments on a local stack another process runs."""
    with batch_driver(concurrency, function_timeout):
        print("ready", flush=True)
        threading.Event().wait()
    return 0


def _batch_id(folder: Path) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name).strip("-._") or "batch"
    return f"{name[:80]}-{stamp}"


def _sample(folder: Path, count: int) -> int:
    """Distinct images from the bundled sample: mirrored, rotated and recoloured."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(SAMPLE_IMAGE) as opened:
        source = opened.convert("RGB")
    for index in range(count):
        image = ImageOps.mirror(source) if index % 2 else source
        image = image.rotate((index // 2) * 7, expand=False, fillcolor=(255, 255, 255))
        image = ImageEnhance.Color(image).enhance(0.4 + (index % 5) * 0.3)
        image.save(folder / f"photo-{index:03d}.png")
    console.print(f"wrote {count} images to {folder}/")
    return 0
