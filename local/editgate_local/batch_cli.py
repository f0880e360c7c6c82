"""``editgate batch``'s options: run a folder of images as a batch edit and watch it, read a
batch's summary, re-queue its failures, drive a local stack's queue, make sample images. The
work is in ``batch_commands``, imported when a verb runs (``editgate --help`` stays fast)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from editgate_local.cli_support import (
    USAGE,
    CliError,
    add_aws_options,
    add_command,
    at_least_one,
    check_local_name,
    positive,
)

LOCAL_BUCKET = "editgate-local-batch"  # stack.BATCH_BUCKET, without importing the stack


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands,
        "batch",
        "batch edits through the batch bucket (a folder in, results out)",
        '  editgate batch sample photos --count 20 && editgate batch run photos --prompt "add snow"\n'
        "      (on the running editgate serve, else on a local stack of its own)\n"
        '  editgate batch run photos --prompt "add snow" --param size=1024x1024 --stack editgate\n'
        "  editgate batch status photos-20250101-120000 --stack editgate --json\n"
        "  editgate batch redrive photos-20250101-120000 --stack editgate",
    )
    _target(parser, argparse_default=None)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    run = add_command(
        verbs,
        "run",
        "upload a folder and its manifest, then watch the batch",
        '  editgate batch run photos --prompt "add snow"\n'
        '  editgate batch run photos --prompt "add snow" --param size=1024x1024 --output out/snowy\n'
        "  editgate batch run photos --stack editgate --region eu-west-1   (photos/manifest.jsonl)",
    )
    run.add_argument("folder", type=Path, help="the images (and a manifest.jsonl, if it has its own)")
    run.add_argument(
        "--prompt", help="the edit for every image (required when the folder has no manifest.jsonl)"
    )
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        type=_param,
        help="another edit parameter for every image, repeatable (default: none)",
    )
    run.add_argument(
        "--concurrency",
        type=at_least_one,
        default=10,
        help="items edited at once, 1 or more, on a local stack of its own (default: %(default)s)",
    )
    run.add_argument(
        "--batch-id", default=None, help="the batch's id (default: the folder's name and the time)"
    )
    run.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="copy the results to this folder (default: leave them in the bucket; on a local stack "
        "of its own, which stops with the command: out/batch-<batch id>)",
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
        type=positive,
        default=3600.0,
        metavar="SECONDS",
        help="stop watching after this long (default: %(default)s)",
    )

    status = add_command(
        verbs,
        "status",
        "a batch's summary",
        "  editgate batch status photos-20250101-120000\n"
        "  editgate batch status photos-20250101-120000 --stack editgate --json",
    )
    status.add_argument("batch_id", help="the batch's id, as batch run printed it")
    status.add_argument(
        "--json", action="store_true", help="the summary.json as it is (default: a few lines)"
    )

    redrive = add_command(
        verbs,
        "redrive",
        "queue a batch's failed items again, and every dead letter of the batch and collect queues",
        "  editgate batch redrive photos-20250101-120000\n"
        "  editgate batch redrive photos-20250101-120000 --stack editgate",
    )
    redrive.add_argument("batch_id", help="the batch's id, as batch run printed it")

    worker = add_command(
        verbs,
        "worker",
        "drive a running editgate serve's batch queue from this process (serve drives it already)",
        "  editgate batch worker --concurrency 8",
    )
    worker.add_argument(
        "--concurrency",
        type=at_least_one,
        default=4,
        help="execution environments, each one item at a time (default: %(default)s)",
    )
    worker.add_argument(
        "--function-timeout",
        type=positive,
        default=60.0,
        metavar="SECONDS",
        help="the batch function's timeout (default: %(default)s)",
    )

    sample = add_command(
        verbs,
        "sample",
        "write variants of the bundled sample image to a folder",
        "  editgate batch sample photos --count 20",
    )
    sample.add_argument("folder", type=Path, help="where the images go (made if missing)")
    sample.add_argument(
        "--count", type=at_least_one, default=20, help="how many images, 1 or more (default: %(default)s)"
    )

    for verb in (run, status, redrive):
        _target(verb, argparse_default=argparse.SUPPRESS)  # also accepted after the verb
    parser.set_defaults(run=main)


def _param(text: str) -> str:
    """An argparse type: ``NAME=VALUE`` (``size`` alone, without its value, is a usage error)."""
    name, equals, _ = text.partition("=")
    if not (name.strip() and equals):
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=VALUE, e.g. size=1024x1024")
    return text


def _target(parser: argparse.ArgumentParser, argparse_default: Any) -> None:
    parser.add_argument(
        "--stack",
        default=argparse_default,
        metavar="NAME",
        help="a deployed editgate stack's name (default: the running editgate serve; for run, "
        "without one: a local stack of its own)",
    )
    parser.add_argument(
        "--bucket",
        default=argparse_default,
        help=f"the local stack's batch bucket, {LOCAL_BUCKET} (default: the running editgate serve's)",
    )
    add_aws_options(parser, argparse_default)


def main(args: argparse.Namespace) -> int:
    if args.verb in ("run", "status", "redrive"):
        if args.stack and args.bucket:
            raise CliError(
                "give --stack (a deployed stack) or --bucket (a running editgate serve), not both", USAGE
            )
        check_local_name(args.bucket, LOCAL_BUCKET, "--bucket")
    if args.verb == "run" and not args.folder.is_dir():
        raise CliError(f"no folder {args.folder}: give a folder of images (editgate batch sample makes one)")
    from editgate_local import batch_commands

    return batch_commands.main(args)
