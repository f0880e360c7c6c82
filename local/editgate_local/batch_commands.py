"""``editgate batch``'s work: run a folder of images as a batch edit and watch it, read a batch's
summary, re-queue its failures. On the embedded stack by default (the same BatchFunction handler,
driven by the local SQS event source); on a deployed stack with ``--stack``; on a running
``editgate serve`` with ``--bucket`` (found by itself). Piped (not a terminal), it prints plain
lines: no wrapping, no live bar."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageEnhance, ImageOps
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from editgate.adapters.ledger import BatchLedger
from editgate.adapters.objects import ObjectNotFound, ObjectStore
from editgate.adapters.queue import WorkQueue
from editgate.app.batch import layout, redrive
from editgate_local.cli_support import (
    FAILED_ITEMS,
    USAGE,
    CliError,
    local_or_deployed,
    running_serve,
    stack_outputs,
    use_aws,
    use_local_stack,
)
from editgate_local.sample import SAMPLE_IMAGE
from editgate_local.stack import LocalStack, batch_driver, batch_environment

# soft_wrap: a long URL stays on one line whatever the width (80 columns when piped).
console = Console(highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Deployment:
    """Where a batch stack keeps things."""

    description: str
    bucket: str
    table: str
    queue_url: str
    dead_letter_url: str
    # The collect queue (fal's webhooks and the sweeper queue each request's collect step there)
    # and its dead-letter queue.
    collect_queue_url: str
    collect_dead_letter_url: str
    # False for a local stack of the command's own: its bucket is gone when the command ends.
    lasting: bool = True

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


def main(args: argparse.Namespace) -> int:
    if args.verb == "sample":
        return _sample(args.folder, args.count)
    if args.verb == "worker":
        return _worker(args.concurrency, args.function_timeout)
    if args.verb == "run":  # the folder is read and checked before any stack is reached
        batch = _batch(args)
        on_a_stack = args.stack or args.bucket or os.environ.get("AWS_ENDPOINT_URL") or running_serve()
        if not on_a_stack:
            return _run_embedded(args, batch)
        return _run(args, batch, _deployment(args))
    deployment = _deployment(args)
    if args.verb == "status":
        return _status(args.batch_id, deployment, as_json=args.json)
    return _redrive(args.batch_id, deployment)


def _run_embedded(args: argparse.Namespace, batch: tuple[str, Upload]) -> int:
    """The whole path on the embedded stack: moto's S3 notifies moto's SQS, and the local event
    source drives the BatchFunction handler, ``--concurrency`` invocations at a time."""
    with LocalStack(fal_latency=args.fal_latency) as stack:
        console.print(
            f"stack: the embedded local stack (S3, SQS, DynamoDB: moto at {stack.env['AWS_ENDPOINT_URL']})"
        )
        console.print(f"fal:   {stack.fal_description}")
        with stack.batch_driver(args.concurrency):
            return _run(args, batch, local_deployment("the embedded local stack", lasting=False))


def local_deployment(description: str, *, lasting: bool = True) -> Deployment:
    env = batch_environment()
    return Deployment(
        description,
        env["RESULTS_BUCKET"],
        env["BATCH_TABLE"],
        env["BATCH_QUEUE_URL"],
        env["BATCH_DEAD_LETTER_QUEUE_URL"],
        env["COLLECT_QUEUE_URL"],
        env["COLLECT_DEAD_LETTER_QUEUE_URL"],
        lasting,
    )


def _deployment(args: argparse.Namespace) -> Deployment:
    if local_or_deployed(args.stack, args.bucket, "--bucket"):
        serve = use_local_stack()
        where = f"the running editgate serve at {serve['base_url']}" if serve else "the local stack"
        return local_deployment(f"{where} (moto at {os.environ['AWS_ENDPOINT_URL']})")
    use_aws(args.region, args.profile)
    names = ("BatchBucketName", "BatchTableName", "BatchQueueUrl", "BatchDeadLetterQueueUrl",
             "CollectQueueUrl", "CollectDeadLetterQueueUrl")  # fmt: skip
    outputs = stack_outputs(args.stack, *names)
    bucket, table, queue, dead, collect, collect_dead = (outputs[name] for name in names)
    return Deployment(f"stack {args.stack}", bucket, table, queue, dead, collect, collect_dead)


def manifest_for(folder: Path, prompt: str | None, params: list[str]) -> Upload:
    """The folder's own manifest.jsonl, or one made of every image in it (by name, in any case)
    with ``prompt`` and ``params`` as defaults."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    given = folder / layout.MANIFEST_NAME
    if given.exists():
        if prompt or params:
            raise CliError(
                "the folder has its own manifest.jsonl: put --prompt and --param in its defaults line"
            )
        text = given.read_bytes()
        named = {number: str(line.get("image")) for number, line in _json_lines(text)}
        uploads = [p for p in files if p != given]
        strays = [p.name for p in uploads if p.name not in named.values()]
        return Upload(text, uploads, strays, named)
    if not prompt:
        raise CliError("--prompt is required when the folder has no manifest.jsonl (or add one)")
    defaults: dict[str, Any] = {"prompt": prompt}
    for pair in params:
        name, _, value = pair.partition("=")
        defaults[name] = value
    images = [p for p in files if p.suffix.lower() in layout.IMAGE_SUFFIXES]
    if not images:
        raise CliError(
            f"no images in {folder} (PNG, JPEG or WebP files, or a manifest.jsonl): editgate batch "
            "sample makes some",
            USAGE,
        )
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


def _batch(args: argparse.Namespace) -> tuple[str, Upload]:
    """The batch's id and what to upload, checked."""
    batch_id = args.batch_id or _batch_id(args.folder)
    if not layout.manifest_batch_id(batch_id):
        raise CliError(
            f"--batch-id {batch_id!r}: 1 to 128 letters, digits, '.', '_' or '-', from a letter or digit "
            "(not 'single' nor 's3job-…')"
        )
    return batch_id, manifest_for(args.folder, args.prompt, args.param)


def _run(args: argparse.Namespace, batch: tuple[str, Upload], deployment: Deployment) -> int:
    batch_id, upload = batch
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
    _report(batch_id, summary, store, upload, deployment)
    output = args.output or (None if deployment.lasting else Path("out") / f"batch-{batch_id}")
    if output:
        _download(batch_id, store, output)
    if summary is None or not summary["finished"]:
        later = (
            f"`editgate batch status {batch_id}` shows it later"
            if deployment.lasting
            else "the local stack of this command stops now, and the batch with it: give a longer "
            "--timeout, or run it on `editgate serve`"
        )
        raise CliError(f"batch {batch_id} did not finish within --timeout {args.timeout:g} s: {later}")
    return FAILED_ITEMS if summary["error"] or summary["counts"]["failed"] else 0


def _watch(batch_id: str, store: ObjectStore, timeout: float) -> dict[str, Any] | None:
    """The batch's summary.json, read until the batch finishes, shown as it goes."""
    summary = None
    started = time.monotonic()
    with _live_bar(batch_id) if console.is_terminal else _plain_lines(batch_id) as show:
        while time.monotonic() - started < timeout:
            summary = read_summary(batch_id, store)
            if summary is not None:
                show(summary, time.monotonic() - started)
                if summary["finished"]:
                    break
            time.sleep(0.25)
    return summary


Show = Callable[[dict[str, Any], float], None]


@contextlib.contextmanager
def _live_bar(batch_id: str) -> Iterator[Show]:
    """On a terminal: a bar redrawn in place."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn(
            "{task.completed:.0f}/{task.fields[items]} done · {task.fields[failed]} failed · "
            "{task.fields[images]} · ${task.fields[cost]:.2f} · {task.fields[rate]:.1f} items/s"
        ),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(
            batch_id, total=None, items="?", failed=0, images="0 images", cost=0.0, rate=0.0
        )

        def show(summary: dict[str, Any], elapsed: float) -> None:
            done = summary["counts"]["succeeded"] + summary["counts"]["failed"]
            progress.update(
                task,
                completed=done,
                total=summary["items"] if summary["manifest_read"] else None,
                items=_items(summary),
                failed=summary["counts"]["failed"],
                images=counted(summary["images"], "image"),
                cost=summary["cost"]["usd"],
                rate=done / max(elapsed, 1e-6),
            )

        yield show


@contextlib.contextmanager
def _plain_lines(batch_id: str) -> Iterator[Show]:
    """Piped: a whole line when the counts change (at most every 2 s, and the last), never cut."""
    shown: dict[str, Any] = {"counts": None, "at": -2.0}

    def show(summary: dict[str, Any], elapsed: float) -> None:
        counts = (summary["counts"], summary["items"], summary["finished"])
        if counts == shown["counts"] or (elapsed - shown["at"] < 2 and not summary["finished"]):
            return
        shown.update(counts=counts, at=elapsed)
        done = summary["counts"]["succeeded"] + summary["counts"]["failed"]
        print(
            f"{batch_id}: {done}/{_items(summary)} done · {summary['counts']['failed']} failed · "
            f"{counted(summary['images'], 'image')} · ${summary['cost']['usd']:.2f} · "
            f"{done / max(elapsed, 1e-6):.1f} items/s · {elapsed:.0f} s",
            flush=True,
        )

    yield show


def _items(summary: dict[str, Any]) -> str:
    return str(summary["items"]) if summary["manifest_read"] else f"{summary['items']}+"


def read_summary(batch_id: str, store: ObjectStore) -> dict[str, Any] | None:
    try:
        summary: dict[str, Any] = json.loads(store.get(layout.output_key(batch_id, "summary.json")))
    except ObjectNotFound:
        return None
    return summary


def _report(
    batch_id: str, summary: dict[str, Any] | None, store: ObjectStore, upload: Upload, deployment: Deployment
) -> None:
    if summary is None:
        console.print("[red]no summary yet: the batch has not started (is the manifest where it should be?)")
        return
    if summary["error"]:
        console.print(f"[red]the manifest was not read whole: {summary['error']['message']}")
    counts = summary["counts"]
    console.print(
        f"{counts['succeeded']} succeeded, {counts['failed']} failed, {counts['pending']} pending; "
        f"{counted(summary['images'], 'image')}, ${summary['cost']['usd']:.2f}"
    )
    rows = [
        (upload.images_by_line.get(r.get("line") or 0, ""), r["id"], str(r.get("line") or ""),
         str(r["error"]["code"]), r["error"]["message"])
        for r in sorted(redrive.failed_items(batch_id, store), key=lambda r: r.get("line") or 0)
    ]  # fmt: skip
    if rows and console.is_terminal:
        table = Table("file", "item", "line", "code", "message", title="failed items")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for file, item, line, code, message in [] if console.is_terminal else rows:
        print(f"failed: {file or '-'} (item {item}, line {line or '-'}): {code}: {message}")
    for name in upload.strays:
        console.print(f"[yellow]not in the manifest, so not edited: {name}")
    if not deployment.lasting:  # the bucket dies with this command: only the copies are named
        return
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


def _status(batch_id: str, deployment: Deployment, *, as_json: bool) -> int:
    summary = read_summary(batch_id, deployment.store())
    if summary is None:
        raise CliError(f"no batch {batch_id} on {deployment.description}: check the id (batch run prints it)")
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    counts = summary["counts"]
    state = "finished" if summary["finished"] else "running"
    print(f"batch {batch_id} on {deployment.description}: {state}")
    print(
        f"items:  {_items(summary)}; {counts['succeeded']} succeeded, {counts['failed']} failed, "
        f"{counts['pending']} pending"
    )
    print(f"images: {summary['images']}, ${summary['cost']['usd']:.2f}")
    if summary["error"]:
        print(f"error:  the manifest was not read whole: {summary['error']['message']}")
    return 0


def _redrive(batch_id: str, deployment: Deployment) -> int:
    failed, dead = redrive.redrive(
        batch_id,
        deployment.store(),
        BatchLedger(deployment.table),
        WorkQueue(deployment.queue_url),
        deployment.dead_letter_url,
    )
    collects = redrive.redrive_collects(
        WorkQueue(deployment.collect_queue_url), deployment.collect_dead_letter_url
    )
    console.print(
        f"queued again: {failed} failed item(s), {dead} dead-lettered message(s), "
        f"{collects} dead-lettered collect step(s)"
    )
    return 0


def _worker(concurrency: int, function_timeout: float) -> int:
    """The batch function's execution environments on the stack the environment names (its moto
    endpoint and the functions' settings, as a test's stack exports them), else on the stack a
    running ``editgate serve`` holds, with the settings its functions have (its state file keeps
    them): a named stack wins over a serve found by itself, as for every other command."""
    if not (os.environ.get("AWS_ENDPOINT_URL") and os.environ.get("FAL_KEY_SECRET_NAME")):
        serve = running_serve()
        if serve is None or "function_environment" not in serve:
            raise CliError(
                "no running editgate serve found: start one with `editgate serve` in another terminal"
            )
        os.environ.update(serve["function_environment"])
    use_local_stack()
    with batch_driver(concurrency, function_timeout):
        print("ready", flush=True)
        threading.Event().wait()
    return 0


def counted(number: int, thing: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{number} {thing}{'' if number == 1 else 's'}"


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
    console.print(f"wrote {counted(count, 'image')} to {folder}/")
    return 0
