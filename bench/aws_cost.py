"""AWS's cost of one edit next to fal's $0.06, and how it grows with fal's latency (the function
waits while fal works). The edit API's duration is measured on the local stack (the handler's
own time, emulator latency L for L in --latencies) and priced at the template's memory on arm64;
API Gateway, the authorizer, S3 and DynamoDB requests are counted per edit. PASS when the total
stays at or under 1 % of fal's price for fal latencies up to 20 s.

A batch item at fal latency --batch-latency (10 s: a real HiDream edit), measured from handler
durations: before, the item waited on fal (main's way until issue 17: the same edit as the edit
API's, which still waits, so measured on that path, at 1769 MB); after, the item submits and
returns, and fal's webhook (512 MB) queues the collect step (1769 MB). An S3 Batch Operations
task submits and returns as an item does: its duration is shown beside. PASS when after's
GB-seconds are at most 15 % of before's.

    .venv/bin/python bench/aws_cost.py [--runs 5] [--latencies 0 2] [--batch-runs 4] [--batch-latency 10]

Prices: us-east-1 list prices (2026): Lambda arm64 $0.0000133334 per GB-s and $0.20 per million
requests; API Gateway REST $3.50 per million; S3 PUT $0.005 and GET $0.0004 per thousand;
DynamoDB on demand $0.625 per million writes and $0.125 per million reads; SQS $0.40 per million.
A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import openai
from fal_apart import FalApart
from overhead import photo_like
from report import ROOMY, Section, run_alone

from editgate_local.front import Handler, LambdaContext
from editgate_local.stack import (
    BATCH_BUCKET,
    FAL_WEBHOOK_PATH,
    REGION,
    SOURCE_BUCKET,
    LocalStack,
    batch_handlers,
)

FAL_PRICE = 0.06
MEMORY_GB = 1769 / 1024  # template.yaml: EditApiFunction
AUTHORIZER_GB, AUTHORIZER_SECONDS = 512 / 1024, 0.05  # at most once per key per 5 minutes
GB_SECOND, LAMBDA_REQUEST = 0.0000133334, 0.20 / 1e6
API_REQUEST = 3.50 / 1e6
S3_PUT, S3_GET = 0.005 / 1000, 0.0004 / 1000
DDB_WRITE, DDB_READ = 0.625 / 1e6, 0.125 / 1e6
# Per edit: the idempotency record written, completed (2 writes) and read; the journal written
# once and read once; one result put, and one get by the client through its presigned URL.
WRITES, READS, PUTS, GETS = 3, 2, 1, 1
WEBHOOK_GB = 512 / 1024  # template.yaml: FalWebhookFunction
SQS_REQUEST = 0.40 / 1e6
# A batch item's requests besides Lambda's time. Before: its SQS message received and deleted;
# the idempotency record written twice and read, the journal read and written (a transaction with
# the falreq# lookup: 2 writes each), the image read, its result and record put, the ledger's
# settle (a transaction of 2). After, besides: the journal's work written, the webhook's receipt
# and its collect message (sent, received, deleted), the call marked collected, the falreq#
# lookup no longer pending, fal's webhook through API Gateway and one more Lambda request each
# for the webhook and the collect step; no idempotency record.
BATCH_BEFORE = {"sqs": 2, "writes": 2 + 4 + 2, "reads": 2, "gets": 1, "puts": 2, "lambda": 1, "api": 0}
BATCH_AFTER = {"sqs": 5, "writes": 1 + 4 + 1 + 1 + 1 + 2, "reads": 2, "gets": 1, "puts": 2, "lambda": 3,
               "api": 1}  # fmt: skip


def requests_cost() -> float:
    return (
        API_REQUEST + 2 * LAMBDA_REQUEST + AUTHORIZER_GB * AUTHORIZER_SECONDS * GB_SECOND
        + WRITES * DDB_WRITE + READS * DDB_READ + PUTS * S3_PUT + GETS * S3_GET
    )  # fmt: skip


def handler_seconds(
    fal: FalApart, stack: LocalStack, latencies: list[float], runs: int
) -> dict[float, float]:
    """The edit API handler's median duration at each emulator latency."""
    measured = {}
    assert stack.front is not None
    client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=stack.api_key, max_retries=0)
    image = photo_like(1024, "png")
    for latency in latencies:
        fal.set_latency(latency)
        stack.front.durations.clear()
        for _ in range(runs + 1):
            client.images.edit(image=("in.png", image), prompt="x",
                               extra_headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        measured[latency] = statistics.median(list(stack.front.durations)[1:])
    return measured


def measure(args: argparse.Namespace) -> Section:
    section = Section("AWS cost per edit")
    with FalApart() as fal, LocalStack(environ=fal.environ, usage_plan=ROOMY, concurrency=1) as stack:
        measured = handler_seconds(fal, stack, args.latencies, args.runs)
        measure_prices(measured, section)
        measure_batch(args, fal, stack, section)
    return section


def measure_prices(measured: dict[float, float], section: Section) -> None:
    for latency, seconds in measured.items():
        section.say(f"measured: fal latency {latency:4.1f} s -> handler {seconds * 1000:7.0f} ms")
    # The function's own time beyond fal's: what the handler adds at latency 0 (polling included).
    own = min(seconds - latency for latency, seconds in measured.items())
    section.say(
        f"the function's own time per edit: {own * 1000:.0f} ms; requests and storage: ${requests_cost():.7f}"
    )
    section.say(f"{'fal latency':>12} {'Lambda':>10} {'total AWS':>10} {'of $0.06':>9}")
    chart = section.chart("aws_cost", "AWS cost per edit as a share of fal's $0.06", "%")
    for latency in (0, 5, 10, 15, 20, 25):
        lambda_cost = MEMORY_GB * (latency + own) * GB_SECOND
        total = lambda_cost + requests_cost()
        share = total / FAL_PRICE
        section.say(f"{latency:10.0f} s ${lambda_cost:9.6f} ${total:9.6f} {share:8.2%}")
        chart.add(f"fal latency {latency} s", [share * 100])
        if latency == 20:
            section.target("AWS cost per edit at 20 s of fal latency", f"{share:.2%} of $0.06", "<= 1 %",
                           share <= 0.01)  # fmt: skip


def batch_requests_cost(counts: dict[str, int]) -> float:
    return (
        counts["sqs"] * SQS_REQUEST + counts["writes"] * DDB_WRITE + counts["reads"] * DDB_READ
        + counts["gets"] * S3_GET + counts["puts"] * S3_PUT + counts["lambda"] * LAMBDA_REQUEST
        + counts["api"] * API_REQUEST
    )  # fmt: skip


def timed(handler: Handler, durations: list[float]) -> Handler:
    def invoke(event: dict[str, Any], context: Any) -> Any:
        started = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            durations.append(time.perf_counter() - started)

    return invoke


def task_event(key: str) -> dict[str, Any]:
    """An S3 Batch Operations task: one item, submitted to fal."""
    task = {"taskId": uuid.uuid4().hex, "s3Key": key, "s3VersionId": None, "s3Bucket": SOURCE_BUCKET}
    return {"invocationSchemaVersion": "2.0", "invocationId": uuid.uuid4().hex, "tasks": [task],
            "job": {"id": uuid.uuid4().hex[:12], "userArguments": {"prompt": "x"}}}  # fmt: skip


def batch_item_seconds(fal: FalApart, stack: LocalStack, runs: int, latency: float) -> dict[str, list[float]]:
    """Handler durations of batch items at fal latency ``latency``: ``waiting`` (an edit that
    waits on fal), ``item`` (an item's invocation: it submits), ``task`` (an S3 Batch Operations
    task's), ``webhook`` and ``collect``."""
    seconds: dict[str, list[float]] = {"waiting": [], "task": [], "webhook": []}
    image = photo_like(1024, "png")
    seconds["waiting"] = [handler_seconds(fal, stack, [latency], runs)[latency]]  # sets the latency
    assert stack.front is not None
    webhook = stack.front.open_functions[FAL_WEBHOOK_PATH]
    stack.front.open_functions[FAL_WEBHOOK_PATH] = timed(webhook, seconds["webhook"])
    s3 = boto3.client("s3", region_name=REGION)
    batch_id = f"bench-{uuid.uuid4().hex[:8]}"
    for index in range(runs):
        s3.put_object(Bucket=BATCH_BUCKET, Key=f"incoming/{batch_id}/{index}.png", Body=image)
    manifest = "".join(
        json.dumps({"id": f"i{k}", "image": f"{k}.png", "prompt": "x"}) + "\n" for k in range(runs)
    )
    with stack.batch_driver(runs) as driver:
        s3.put_object(Bucket=BATCH_BUCKET, Key=f"incoming/{batch_id}/manifest.jsonl", Body=manifest.encode())
        _until(lambda: _finished(s3, batch_id) and driver.idle())
    seconds["item"] = [d for kind, d in driver.durations if kind == "item"]
    seconds["collect"] = [d for kind, d in driver.companions[0].durations if kind == "collect"]
    stack.front.open_functions[FAL_WEBHOOK_PATH] = webhook  # the tasks' webhooks are not the items'
    task = timed(batch_handlers(1, first=100)[0], seconds["task"])
    for _ in range(runs):
        key = f"bench/{uuid.uuid4().hex}.png"
        s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=image)
        answer = task(task_event(key), LambdaContext("BatchFunction", timeout_seconds=900))
        assert answer["results"][0]["resultCode"] == "Succeeded", answer
    return seconds


def _finished(s3: Any, batch_id: str) -> bool:
    try:
        body = s3.get_object(Bucket=BATCH_BUCKET, Key=f"batches/{batch_id}/summary.json")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return False
    return bool(json.loads(body).get("finished"))


def _until(condition: Callable[[], bool], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the batch did not finish")
        threading.Event().wait(0.2)


def measure_batch(args: argparse.Namespace, fal: FalApart, stack: LocalStack, section: Section) -> None:
    seconds = batch_item_seconds(fal, stack, args.batch_runs, args.batch_latency)
    median = {kind: statistics.median(values) for kind, values in seconds.items()}
    per_item = {kind: len(values) / args.batch_runs for kind, values in seconds.items()}
    before = MEMORY_GB * median["waiting"]
    after_parts = {"item": MEMORY_GB * median["item"] * per_item["item"],
                   "webhook": WEBHOOK_GB * median["webhook"] * per_item["webhook"],
                   "collect": MEMORY_GB * median["collect"] * per_item["collect"]}  # fmt: skip
    after = sum(after_parts.values())
    section.say(
        f"a batch item at fal latency {args.batch_latency:.0f} s, handler medians over {args.batch_runs}:"
    )
    section.say(f"  before (waits on fal; main's way, measured on the edit API, which still waits): "
                f"{median['waiting'] * 1000:7.0f} ms x 1.73 GB = {before:.3f} GB-s")  # fmt: skip
    for kind, gb_seconds in after_parts.items():
        section.say(f"  after, {kind:8}: {median[kind] * 1000:7.0f} ms x {per_item[kind]:.1f} per item "
                    f"= {gb_seconds:.4f} GB-s")  # fmt: skip
    section.say(f"  after, in all: {after:.4f} GB-s ({after / before:.1%} of before)")
    task = MEMORY_GB * median["task"]
    section.say(f"  an S3 Batch Operations task (it submits, as an item does): {median['task'] * 1000:7.0f} "
                f"ms x 1.73 GB = {task:.4f} GB-s, then its webhook and collect")  # fmt: skip
    cost_before = before * GB_SECOND + batch_requests_cost(BATCH_BEFORE)
    cost_after = after * GB_SECOND + batch_requests_cost(BATCH_AFTER)
    section.say(f"AWS cost per batch edit: before ${cost_before:.7f} "
                f"({cost_before / FAL_PRICE:.3%} of $0.06), after ${cost_after:.7f} "
                f"({cost_after / FAL_PRICE:.3%})")  # fmt: skip
    section.target(f"batch item GB-s at fal latency {args.batch_latency:.0f} s, after vs before",
                   f"{after / before:.1%}", "<= 15 %", after <= 0.15 * before)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 2.0])
    parser.add_argument(
        "--batch-runs", type=int, default=4, help="batch items measured each way (default: 4)"
    )
    parser.add_argument(
        "--batch-latency", type=float, default=10.0, help="fal latency for them (default: 10 s)"
    )


if __name__ == "__main__":
    run_alone(__doc__, add_arguments, measure)
