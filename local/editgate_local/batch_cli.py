"""``editgate batch``'s options: run a folder of images as a batch edit and watch it, read a
batch's summary, re-queue its failures, drive a local stack's queue, make sample images. The
work is in ``batch_commands``, imported when a verb runs (``editgate --help`` stays fast)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from editgate_local.cli_support import USAGE, CliError, add_command

LOCAL_BUCKET = "editgate-local-batch"  # stack.BATCH_BUCKET, without importing the stack


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands,
        "batch",
        "batch edits through the batch bucket (a folder in, results out)",
        '  editgate batch sample photos --count 20 && editgate batch run photos --prompt "add snow"\n'
        f'  editgate batch run photos --prompt "add snow" --bucket {LOCAL_BUCKET}   (a running serve)\n'
        '  editgate batch run photos --prompt "add snow" --param size=1024x1024 --stack editgate\n'
        "  editgate batch status photos-20250101-120000 --stack editgate --json\n"
        "  editgate batch redrive photos-20250101-120000 --stack editgate",
    )
    _target(parser, argparse_default=None)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    run = verbs.add_parser("run", help="upload a folder and its manifest, then watch the batch")
    run.add_argument("folder", type=Path, help="the images (and a manifest.jsonl, if it has its own)")
    run.add_argument(
        "--prompt", help="the edit for every image (required when the folder has no manifest.jsonl)"
    )
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="another edit parameter for every image, repeatable (default: none)",
    )
    run.add_argument(
        "--concurrency",
        type=int,
        default=10,
        help="items edited at once, the embedded stack's (default: %(default)s)",
    )
    run.add_argument(
        "--batch-id", default=None, help="the batch's id (default: the folder's name and the time)"
    )
    run.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="copy the results to this folder (default: leave them in the bucket)",
    )
    run.add_argument(
        "--fal-latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the fal emulator's run time per edit, embedded stack (default: %(default)s)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="stop watching after this long (default: %(default)s)",
    )

    status = verbs.add_parser("status", help="a batch's summary")
    status.add_argument("batch_id", help="the batch's id, as batch run printed it")
    status.add_argument(
        "--json", action="store_true", help="the summary.json as it is (default: a few lines)"
    )

    redrive = verbs.add_parser("redrive", help="queue a batch's failed items (and dead letters) again")
    redrive.add_argument("batch_id", help="the batch's id, as batch run printed it")

    worker = verbs.add_parser("worker", help="drive a running editgate serve's batch queue from this process")
    worker.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="execution environments, each one item at a time (default: %(default)s)",
    )
    worker.add_argument(
        "--function-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="the batch function's timeout (default: %(default)s)",
    )

    sample = verbs.add_parser("sample", help="write variants of the bundled sample image to a folder")
    sample.add_argument("folder", type=Path, help="where the images go (made if missing)")
    sample.add_argument("--count", type=int, default=20, help="how many images (default: %(default)s)")

    for verb in (run, status, redrive):
        _target(verb, argparse_default=argparse.SUPPRESS)  # also accepted after the verb
    parser.set_defaults(run=main)


def _target(parser: argparse.ArgumentParser, argparse_default: Any) -> None:
    parser.add_argument(
        "--stack",
        default=argparse_default,
        metavar="NAME",
        help="a deployed editgate stack's name (status, redrive: this or --bucket is required)",
    )
    parser.add_argument(
        "--bucket",
        default=argparse_default,
        help=f"a running editgate serve's batch bucket, {LOCAL_BUCKET} (default for run: a local "
        "stack of its own)",
    )


def main(args: argparse.Namespace) -> int:
    if args.stack and args.bucket:
        raise CliError(
            "give --stack (a deployed stack) or --bucket (a running editgate serve), not both", USAGE
        )
    if args.verb == "run":
        if not args.folder.is_dir():
            raise CliError(
                f"no folder {args.folder}: give a folder of images (editgate batch sample makes one)"
            )
    elif args.verb in ("status", "redrive") and not (args.stack or args.bucket):
        raise CliError(
            f"say where the batch is: --stack NAME (a deployed stack) or --bucket {LOCAL_BUCKET} "
            "(a running editgate serve)",
            USAGE,
        )
    from editgate_local import batch_commands

    return batch_commands.main(args)
