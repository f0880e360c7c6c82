"""Fan-out: the wall time of an edit with n=10 (three fal calls of 4, 4 and 2 images, run side by
side) against n=1, at emulator latency L (default 1 s), interleaved, through the gateway with the
official openai SDK (url answers). Where the difference goes comes from the answers'
Server-Timing. PASS when n=10 takes at most 1.25x the time of n=1.

    .venv/bin/python bench/fanout.py [--runs 5] [--latency 1] [--side 1024]

A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections import defaultdict

import openai
from fal_apart import FalApart
from overhead import photo_like, server_timing
from report import ROOMY, Section, run_alone, spread

from editgate_local.stack import LocalStack

TARGET_RATIO = 1.25


def measure(args: argparse.Namespace) -> Section:
    section = Section("Fan-out")
    image = photo_like(args.side, "png")
    walls: dict[int, list[float]] = defaultdict(list)
    phases: dict[int, dict[str, list[float]]] = {1: defaultdict(list), 10: defaultdict(list)}
    with (
        FalApart(latency=args.latency) as fal,
        LocalStack(environ=fal.environ, usage_plan=ROOMY, concurrency=1) as stack,
    ):
        client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=stack.api_key, max_retries=0)
        for run in range(args.runs + 1):  # the first round warms the function up
            for n in (1, 10):
                started = time.perf_counter()
                raw = client.images.with_raw_response.edit(
                    image=("in.png", image),
                    prompt="x",
                    n=n,
                    extra_headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                wall = time.perf_counter() - started
                assert len(raw.parse().data or []) == n
                if run:
                    walls[n].append(wall)
                    for phase, ms in server_timing(raw.headers.get("server-timing", "")).items():
                        phases[n][phase].append(ms)
    section.say(f"{args.side}² PNG in, url answers, fal latency {args.latency:g} s, {args.runs} runs each")
    for n in (1, 10):
        section.say(f"n={n:<3} wall {spread(walls[n], ' ms', 1000)}")
    section.say("phases (Server-Timing, medians in ms):  " + " ".join(f"{'n=1':>7} {'n=10':>7}".split()))
    for phase in phases[10]:
        one = statistics.median(phases[1][phase]) if phases[1][phase] else 0.0
        section.say(f"  {phase:14} {one:7.0f} {statistics.median(phases[10][phase]):7.0f}")
    chart = section.chart("fanout", f"Edit wall time at fal latency {args.latency:g} s", "seconds")
    for n in (1, 10):
        chart.add(f"n={n}", walls[n])
    ratio = statistics.median(walls[10]) / statistics.median(walls[1])
    section.target("n=10 wall / n=1 wall", f"{ratio:.2f}x", f"<= {TARGET_RATIO}x", ratio <= TARGET_RATIO)
    return section


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--side", type=int, default=1024)


if __name__ == "__main__":
    run_alone(__doc__, add_arguments, measure)
