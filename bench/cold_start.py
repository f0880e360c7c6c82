"""Cold start: a fresh interpreter importing the built edit function (`make build-native`) with
its built layer, set up as Lambda runs it (its reserved variables, the template's settings,
tracing on, code read-only so no bytecode is written), against `import boto3` from a runtime
directory as Lambda's Python ships it (precompiled), interleaved in one run. Also the same import
as a plain `sam build` leaves it (no bytecode: Python compiles every module at each cold start),
and an `-X importtime` breakdown. PASS when the handler's import takes at most 1.5x boto3's.

    .venv/bin/python bench/cold_start.py [--runs 9]

A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

from report import Section, run_alone, spread

from editgate_local.stack import REPO_ROOT

BUILD = REPO_ROOT / ".aws-sam" / "build-native"
FUNCTION, LAYER = BUILD / "EditApiFunction", BUILD / "EditgateLayer" / "python"
# boto3 as the Lambda runtime provides it, installed apart from the project's venv.
RUNTIME = REPO_ROOT / ".bench" / "runtime"
TARGET_RATIO = 1.5
TIMED = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
# What any handler built on the same libraries imports before a line of its own: Powertools (its
# Tracer patches botocore for X-Ray, so botocore comes too), pydantic, pydantic-settings, Pillow,
# requests.
FLOOR = (
    "import time; t = time.perf_counter(); "
    "from aws_lambda_powertools import Logger, Metrics, Tracer; "
    "from aws_lambda_powertools.event_handler import APIGatewayRestResolver; "
    "import pydantic, pydantic_settings, PIL.Image, requests; "
    "Tracer(); Logger(); Metrics(); APIGatewayRestResolver(); "
    "print(time.perf_counter() - t)"
)


def lambda_environment() -> dict[str, str]:
    """What a deployed EditApiFunction's process has: Lambda's reserved variables (X-Ray and
    Powertools read them) and the template's Globals and function variables."""
    return {
        "PATH": os.environ["PATH"],
        "LAMBDA_TASK_ROOT": str(FUNCTION),
        "LAMBDA_RUNTIME_DIR": str(RUNTIME),
        "AWS_LAMBDA_FUNCTION_NAME": "editgate-EditApiFunction",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "_HANDLER": "app.lambda_handler",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
        "POWERTOOLS_SERVICE_NAME": "editgate",
        "POWERTOOLS_METRICS_NAMESPACE": "editgate",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "RESULTS_BUCKET": "editgate-results",
        "RESULTS_PREFIX": "results/",
        "PRESIGN_EXPIRY_SECONDS": "3600",
        "FAL_KEY_SECRET_NAME": "editgate/fal-key",
        "FAL_QUEUE_URL": "https://queue.fal.run",
        "REQUEST_DEADLINE_SECONDS": "27",
        "IDEMPOTENCY_TABLE": "editgate-idempotency",
        "IDEMPOTENCY_TTL_SECONDS": "3600",
        # As the template sets them: the edit API queues jobs on the batch queue (issue 17).
        "JOBS_TABLE": "editgate-jobs",
        "JOBS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/editgate-batch",
        "JOBS_RUN_TIMEOUT_SECONDS": "300",
        "JOBS_JOURNAL_TABLE": "editgate-batch-idempotency",
        "PYTHONPATH": os.pathsep.join(map(str, (FUNCTION, LAYER, RUNTIME))),
        # Lambda's code and layers are read-only: nothing is ever written beside them.
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def install_runtime() -> None:
    if (RUNTIME / "boto3").exists():
        return
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(RUNTIME), "boto3"]
    subprocess.run(pip, check=True, stderr=subprocess.DEVNULL)
    # Lambda's own boto3 is precompiled.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(RUNTIME)], check=True)


def timed_import(module: str, *flags: str) -> float:
    """Seconds a fresh interpreter (no site-packages: only Lambda's paths) takes to import ``module``."""
    return timed(TIMED.format(module=module), *flags)


def timed(code: str, *flags: str) -> float:
    command = [sys.executable, "-S", *flags, "-c", code]
    done = subprocess.run(command, env=lambda_environment(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{code!r} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def breakdown(top: int) -> list[tuple[str, float]]:
    """Where the handler's import goes, by distribution (the modules' own times summed, in ms),
    from ``-X importtime``."""
    done = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", "-c", "import app"],
        env=lambda_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    totals: dict[str, float] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", line)
        if match:
            package = match.group(2).split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(match.group(1)) / 1000
    return sorted(totals.items(), key=lambda row: -row[1])[:top]


def measure(args: argparse.Namespace) -> Section:
    section = Section("Cold start")
    if not FUNCTION.exists():
        raise SystemExit("no native build: run `make build-native` first")
    install_runtime()
    handler, boto3, uncompiled, floor = [], [], [], []
    with tempfile.TemporaryDirectory() as empty:
        for _ in range(args.runs):
            handler.append(timed_import("app"))
            boto3.append(timed_import("boto3"))
            floor.append(timed(FLOOR))
            # An empty bytecode cache: what a plain `sam build` artifact costs on Lambda.
            uncompiled.append(timed_import("app", "-X", f"pycache_prefix={empty}"))
    ratio = statistics.median(handler) / statistics.median(boto3)
    section.say(f"import boto3 (runtime, precompiled): {spread(boto3, ' ms', 1000)}")
    section.say(f"import the handler (built artifact): {spread(handler, ' ms', 1000)}")
    section.say(f"  the same, no bytecode in the artifact: {spread(uncompiled, ' ms', 1000)}")
    share = statistics.median(floor) / statistics.median(boto3)
    libraries = "the libraries alone (Powertools with X-Ray, pydantic, pydantic-settings, Pillow, requests)"
    section.say(f"{libraries}: {spread(floor, ' ms', 1000)} = {share:.2f}x boto3")
    section.say("where the handler's import goes, by package (-X importtime, own times summed):")
    for name, ms in breakdown(args.top):
        section.say(f"  {name:55} {ms:7.0f} ms")
    chart = section.chart("cold_start", "Cold import, fresh interpreter", "seconds")
    chart.add("import boto3", boto3)
    chart.add("the libraries alone", floor)
    chart.add("import handler (make build)", handler)
    chart.add("import handler (plain sam build)", uncompiled)
    section.target("cold import of the handler / import boto3", f"{ratio:.2f}x", f"<= {TARGET_RATIO}x",
                   ratio <= TARGET_RATIO)  # fmt: skip
    return section


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--top", type=int, default=12)


if __name__ == "__main__":
    run_alone(__doc__, add_arguments, measure)
