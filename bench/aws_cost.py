"""AWS's cost of one edit next to fal's $0.06, and how it grows with fal's latency (the function
waits while fal works). The edit API's duration is measured on the local stack (the handler's
own time, emulator latency L for L in --latencies) and priced at the template's memory on arm64;
API Gateway, the authorizer, S3 and DynamoDB requests are counted per edit. PASS when the total
stays at or under 1 % of fal's price for fal latencies up to 20 s.

    .venv/bin/python bench/aws_cost.py [--runs 5] [--latencies 0 2]

Prices: us-east-1 list prices (2026): Lambda arm64 $0.0000133334 per GB-s and $0.20 per million
requests; API Gateway REST $3.50 per million; S3 PUT $0.005 and GET $0.0004 per thousand;
DynamoDB on demand $0.625 per million writes and $0.125 per million reads.
A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import statistics
import uuid

import openai
from fal_apart import FalApart
from overhead import photo_like
from report import ROOMY, Section, run_alone

from editgate_local.stack import LocalStack

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


def requests_cost() -> float:
    return (
        API_REQUEST + 2 * LAMBDA_REQUEST + AUTHORIZER_GB * AUTHORIZER_SECONDS * GB_SECOND
        + WRITES * DDB_WRITE + READS * DDB_READ + PUTS * S3_PUT + GETS * S3_GET
    )  # fmt: skip


def handler_seconds(latencies: list[float], runs: int) -> dict[float, float]:
    """The edit API handler's median duration at each emulator latency."""
    measured = {}
    with FalApart() as fal, LocalStack(environ=fal.environ, usage_plan=ROOMY, concurrency=1) as stack:
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
    measured = handler_seconds(args.latencies, args.runs)
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
    return section


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 2.0])


if __name__ == "__main__":
    run_alone(__doc__, add_arguments, measure)
