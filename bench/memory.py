"""Memory: the peak RSS of the edit function's process for its heaviest kind of edit, a 4096²
input with n=4 and avif output, against the function's configured memory (template.yaml). The
handler runs alone in a fresh process (its peak is the process's), invoked with the API Gateway
event for the edit; the fal emulator and moto run in other processes. The HTTP deadline refuses
this edit (its finishing takes minutes), so the process gets batch's time: a 15-minute deadline.
PASS when the peak is at most 60 % of the configured memory.

    .venv/bin/python bench/memory.py [--side 4096] [--n 4] [--format avif]

A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from fal_apart import FalApart
from overhead import photo_like
from PIL import Image
from report import ROOMY, Section, run_alone

from editgate_local.events import multipart_event
from editgate_local.front import LambdaContext, load_handler
from editgate_local.stack import EDIT_API, LocalStack

MEMORY_MB = 1769  # template.yaml: EditApiFunction's MemorySize
TARGET_SHARE = 0.60
LONG = {"REQUEST_DEADLINE_SECONDS": "890"}


def input_jpeg(side: int) -> bytes:
    """A photo-like input as a JPEG: a 4096² PNG would not fit Lambda's 6 MB event."""
    out = io.BytesIO()
    Image.open(io.BytesIO(photo_like(1024, "png"))).resize((side, side)).save(out, "JPEG", quality=90)
    return out.getvalue()


def run_child(event_path: Path) -> None:
    """In the measured process: import the handler, answer the event, report the peak RSS."""
    handler = load_handler(EDIT_API)
    answer = handler(json.loads(event_path.read_text()), LambdaContext(timeout_seconds=900))
    body = json.loads(answer["body"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"status": answer["statusCode"], "images": len(body.get("data", [])),
                      "error": body.get("error"), "peak_mb": peak_mb}))  # fmt: skip


def measure(args: argparse.Namespace) -> Section:
    section = Section("Memory")
    image = input_jpeg(args.side)
    fields = [("image", ("in.jpg", image, "image/jpeg")), ("prompt", "x"), ("n", str(args.n)),
              ("output_format", args.format)]  # fmt: skip
    with (
        FalApart() as fal,
        LocalStack(environ=fal.environ, usage_plan=ROOMY, concurrency=1, settings_env=LONG) as stack,
        tempfile.TemporaryDirectory() as scratch,
    ):
        event_path = Path(scratch) / "event.json"
        event_path.write_text(json.dumps(multipart_event("/v1/images/edits", fields)))
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(event_path)],
            env={**stack.env, "PATH": "", **dict(item.split("=", 1) for item in args.env)},
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"the handler's process failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != 200:
        raise SystemExit(f"the edit failed: {result}")
    share = result["peak_mb"] / MEMORY_MB
    edit = f"{args.side}² JPEG in ({len(image) / 1e6:.1f} MB), n={args.n}, {args.format} out"
    section.say(f"{edit}: {result['images']} images; peak RSS {result['peak_mb']:.0f} MB of {MEMORY_MB} MB")
    section.target(f"peak RSS, {args.side}² n={args.n} {args.format}", f"{share:.0%} of {MEMORY_MB} MB",
                   f"<= {TARGET_SHARE:.0%}", share <= TARGET_SHARE)  # fmt: skip
    return section


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--format", default="avif")
    # template.yaml's Globals set it for every function: Lambda starts the process with it.
    parser.add_argument("--env", nargs="*", default=["MALLOC_MMAP_THRESHOLD_=1048576"],
                        help="NAME=VALUE for the handler's process")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        run_child(Path(sys.argv[2]))
    else:
        run_alone(__doc__, add_arguments, measure)
