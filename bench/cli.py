"""The command's start-up: `editgate --help` (and `editgate --version`) against a bare `python -c
pass` in the same interpreter, each a fresh process, run in turn so both see the same machine.
The command imports boto3, Powertools, rich and openai only when a command runs, so its help
costs little more than Python's own start. PASS when the help's median is at most 0.5 s.

    .venv/bin/python bench/cli.py [--runs 15]

A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import Section, run_alone, spread

LIMIT_SECONDS = 0.5


def command() -> list[str]:
    """`editgate` as a user runs it: the venv's console script, else the module."""
    script = Path(sys.executable).with_name("editgate")
    found = str(script) if script.exists() else shutil.which("editgate")
    return [found] if found else [sys.executable, "-m", "editgate_local.cli"]


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=os.environ)
    return time.perf_counter() - started


def measure(args: argparse.Namespace) -> Section:
    section = Section("cli")
    editgate = command()
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "editgate --help": [*editgate, "--help"],
        "editgate --version": [*editgate, "--version"],
        "editgate batch --help": [*editgate, "batch", "--help"],
    }
    for argv in cases.values():  # warm the file cache once
        timed(argv)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, argv in cases.items():
            times[name].append(timed(argv))
    bare = statistics.median(times["python -c pass"])
    chart = section.chart("cli_start", "start-up of the editgate command", "ms")
    section.say(f"{args.runs} runs each, in turn; {' '.join(editgate)}")
    for name, values in times.items():
        ratio = statistics.median(values) / bare
        section.say(f"{name:24} {spread(values, ' ms', 1000)}   {ratio:4.1f}x python -c pass")
        chart.add(name, [v * 1000 for v in values])
    help_median = statistics.median(times["editgate --help"])
    section.target(
        "editgate --help, median",
        f"{help_median:.3f} s ({help_median / bare:.1f}x python -c pass, {bare:.3f} s)",
        f"<= {LIMIT_SECONDS} s",
        help_median <= LIMIT_SECONDS,
    )
    return section


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=15, help="runs of each (default: %(default)s)")


if __name__ == "__main__":
    run_alone(__doc__, add_arguments, measure)
