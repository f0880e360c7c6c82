"""editgate: an OpenAI-compatible image-edit API on AWS, and the tools around it.

Try it locally (no AWS account, no fal key):
  editgate serve                    run the API on http://127.0.0.1:8000/v1 (key sk-local)
  editgate edit --prompt "add fog"  edit the bundled sample image, save it under out/

The commands that reach a stack (keys, batch, smoke) take --stack NAME for a deployed stack, or
find a running editgate serve by themselves (no AWS variables needed locally)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from editgate_local import batch_cli, keys_cli, local_cli, smoke_cli
from editgate_local.cli_support import EXIT_CODES, Help, report


class _Version(argparse.Action):
    """``--version``: the installed package's, read only when asked (metadata is slow to load)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("editgate")
        except PackageNotFoundError:
            found = "unknown (not installed: pip install -e .)"
        print(f"editgate {found}")
        parser.exit()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="editgate", description=__doc__, epilog=EXIT_CODES, formatter_class=Help
    )
    top.add_argument("--version", action=_Version, nargs=0, help="print the version and exit")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local_cli.add_parsers(commands)
    keys_cli.add_parser(commands)
    batch_cli.add_parser(commands)
    smoke_cli.add_parser(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # piped into `head`, which stopped reading: what was left is not shown
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes at exit
        return 1
    except Exception as error:  # a user's mistake or an AWS refusal in one line; a bug keeps its traceback
        return report(error)
    return code


if __name__ == "__main__":
    sys.exit(main())
