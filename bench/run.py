"""`make bench`: every benchmark with its defaults, one after the other on this machine, then a
table of every target with PASS/FAIL, and docs/benchmarks.md with PNG charts under docs/bench/.
Each benchmark starts what it needs itself (the local stack, the fal emulator in a process of its
own as if it were real fal, LiteLLM's proxy); each figure is a median of repeated runs with its
min and max. Benchmarks are not tests: `make test` does not run them.

    .venv/bin/python bench/run.py [--only overhead fanout ...] [--quick]

--quick runs fewer repetitions (a smoke run of the harness, not figures to publish).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from report import Section, draw, load

from editgate_local.stack import REPO_ROOT

DOCS = REPO_ROOT / "docs"
CHARTS = DOCS / "bench"
# Each in a fresh interpreter of its own, one after the other.
BENCHMARKS = [
    "overhead",
    "peer",
    "cold_start",
    "fanout",
    "finish_costs",
    "memory",
    "aws_cost",
    "batch",
    "aws_calls",
    "cli",
]
QUICK = {
    "overhead": ["--runs", "5", "--warmup", "1", "--sizes", "1024"],
    "peer": ["--runs", "5", "--warmup", "1"],
    "cold_start": ["--runs", "3"],
    "fanout": ["--runs", "2"],
    "finish_costs": ["--runs", "1", "--sides", "1024", "4096"],
    "memory": [],
    "aws_cost": ["--runs", "2"],
    "batch": ["--items", "20", "--latencies", "2"],
    "aws_calls": ["--items", "20", "--runs", "1", "--timeout", "30"],
    "cli": ["--runs", "3"],
}


def run_one(name: str, quick: bool) -> Section:
    print(f"\n=== {name} ===", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        script = Path(__file__).with_name(f"{name}.py")
        command = [sys.executable, str(script), "--report", str(report), *(QUICK[name] if quick else [])]
        done = subprocess.run(command, check=False)  # a FAIL exits 1: its report says which target
        if not report.exists():  # it could not run here (e.g. no native build): the others still do
            section = Section(name)
            section.target("ran to the end", f"exit status {done.returncode}, no report", "a report", False)
            return section
        return load(report)


def write_docs(sections: list[Section], quick: bool) -> Path:
    CHARTS.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))
    lines = [
        "# Benchmarks",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make bench` (`bench/run.py`"
        f"{' --quick' if quick else ''}) on {platform.machine()}, {cores} cores, Python "
        f"{platform.python_version()}. The local stack stands in for AWS and the fal emulator (in a "
        "process of its own) for fal: absolute figures are this machine's, the ratios are the point.",
        "",
        "## Targets",
        "",
        "| benchmark | target | measured | limit | verdict |",
        "|---|---|---|---|---|",
    ]
    for section in sections:
        for target in section.targets:
            verdict = "PASS" if target.passed else "**FAIL**"
            lines.append(
                f"| {section.title} | {target.name} | {target.measured} | {target.limit} | {verdict} |"
            )
    for section in sections:
        lines += ["", f"## {section.title}", "", "```", *section.lines, "```"]
        for chart in section.charts:
            if chart.bars:
                draw(chart, CHARTS / f"{chart.name}.png")
                lines += ["", f"![{chart.title}](bench/{chart.name}.png)"]
    path = DOCS / "benchmarks.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sections = [run_one(name, args.quick) for name in args.only]
    print("\n=== targets ===")
    for section in sections:
        for target in section.targets:
            verdict = "PASS" if target.passed else "FAIL"
            print(f"{verdict}  {section.title}: {target.name}: {target.measured} (target {target.limit})")
    print(f"written: {write_docs(sections, args.quick).relative_to(REPO_ROOT)} and charts in docs/bench/")
    sys.exit(0 if all(section.passed for section in sections) else 1)


if __name__ == "__main__":
    main()
