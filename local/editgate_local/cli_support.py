"""What every ``editgate`` command shares: its exit codes, its one-line errors, its help layout,
and how a command finds a running ``editgate serve`` (the state file it leaves) and talks to its
moto with dummy credentials. Imports nothing heavy: ``editgate --help`` must stay fast."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import socket
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The exit codes, as `editgate --help` documents them.
OK, ERROR, USAGE, FAILED_ITEMS = 0, 1, 2, 3
EXIT_CODES = "exit codes: 0 done, 1 error, 2 usage error, 3 finished with failed items or checks"
LOCAL_REGION = "us-east-1"  # the local stack's resources are made there (stack.REGION)
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


class CliError(Exception):
    """A user's mistake or a refusal: one line saying what went wrong and what to do."""

    def __init__(self, message: str, code: int = ERROR) -> None:
        super().__init__(message)
        self.code = code


class Help(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples (epilogs) printed as written; option help wrapped at spaces only,
    never inside a hyphenated name such as ``editgate-local-api-keys``."""

    def _split_lines(self, text: str, width: int) -> list[str]:  # argparse's one wrapping hook
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def port(text: str) -> int:
    """An argparse type: a TCP port, 1-65535 (a usage error otherwise)."""
    number = whole_number(text)
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a port: give 1-65535")
    return number


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def at_least_one(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    number = whole_number(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number}: give 1 or more")
    return number


def positive(text: str) -> float:
    """An argparse type: a number above 0."""
    number = _number(text)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{text}: give a number above 0")
    return number


def non_negative(text: str) -> float:
    """An argparse type: a number of 0 or more."""
    number = _number(text)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"{text}: give 0 or more")
    return number


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def http_url(text: str) -> str:
    """An argparse type: an http(s) URL whose port, if given, is one (1-65535)."""
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - urllib checks the port when it is read
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: its port is not 1-65535") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL, e.g. http://127.0.0.1:8000/v1")
    return text


def not_blank(text: str) -> str:
    """An argparse type: some text, not only spaces."""
    if not text.strip():
        raise argparse.ArgumentTypeError("it is empty: give a name")
    return text


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, examples: str
) -> argparse.ArgumentParser:
    """A command whose help starts with ``summary`` and ends with its ``examples``."""
    return commands.add_parser(
        name, help=summary, description=summary, epilog=f"examples:\n{examples}", formatter_class=Help
    )


def key_from_environment(default: str = "sk-local") -> str:
    """The editgate key: ``EDITGATE_API_KEY`` (``EDITGATE_KEY``, the README's old name, still read)."""
    return os.environ.get("EDITGATE_API_KEY") or os.environ.get("EDITGATE_KEY") or default


# --- the running `editgate serve`, found through the state file it leaves -----------------------


def state_folder() -> Path:
    """Where each running ``editgate serve`` leaves its endpoints, one file per port (removed when
    it stops)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "editgate"


@contextlib.contextmanager
def serve_state(state: dict[str, Any], port: int) -> Iterator[Path]:
    """This serve's state file for as long as the block runs: its own, by port, so another serve
    on another port neither overwrites it nor loses its own when this one stops."""
    path = state_folder() / f"serve-{port}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**state, "pid": os.getpid(), "started": time.time()}, indent=2) + "\n")
    try:
        yield path
    finally:
        if _read(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)


def running_serve() -> dict[str, Any] | None:
    """The state of the running ``editgate serve`` (the newest, if several run); files left by
    one that died (its process gone) are ignored."""
    live = [state for path in state_folder().glob("serve-*.json") if _alive(state := _read(path))]
    return max(live, key=lambda state: float(state.get("started", 0)), default=None)


def _alive(state: dict[str, Any]) -> bool:
    pid = state.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def _read(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def use_local_stack() -> dict[str, Any]:
    """Point boto3 at a local stack's moto: ``AWS_ENDPOINT_URL`` if set, else the running
    ``editgate serve``'s. A loopback endpoint gets dummy credentials and the stack's region (moto
    takes any; real credentials are never sent to it). Returns the serve's state ({} when
    ``AWS_ENDPOINT_URL`` named the endpoint)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    state: dict[str, Any] = {}
    if not endpoint:
        state = running_serve() or {}
        if not state:
            raise CliError(
                "no running editgate serve found: start one with `editgate serve` in another terminal "
                "(or set AWS_ENDPOINT_URL to a moto endpoint)"
            )
        endpoint = str(state["aws_endpoint_url"])
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    if is_loopback(endpoint):
        os.environ.update(DUMMY_CREDENTIALS)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = LOCAL_REGION
    return state


def local_or_deployed(stack: str | None, local_name: str | None, option: str) -> bool:
    """Whether a command's target is a local stack (``option``, e.g. ``--table``, given, or no
    ``--stack`` and a running serve) rather than the deployed ``--stack``; a usage error when it
    is neither or both."""
    if stack and local_name:
        raise CliError(
            f"give --stack (a deployed stack) or {option} (a running editgate serve), not both", USAGE
        )
    if stack:
        return False
    if local_name or os.environ.get("AWS_ENDPOINT_URL") or running_serve():
        return True
    raise CliError(
        "say which stack: --stack NAME (a deployed stack), or start `editgate serve` (found by itself)",
        USAGE,
    )


def check_local_name(given: str | None, local: str, option: str) -> None:
    """A local stack has one keys table and one batch bucket: another name is a usage error."""
    if given and given != local:
        raise CliError(f"{option} {given}: the local stack's is {local} (or leave {option} out)", USAGE)


def add_aws_options(parser: argparse.ArgumentParser, argparse_default: Any = None) -> None:
    """``--region`` and ``--profile`` for a deployed stack (``--stack``)."""
    parser.add_argument(
        "--region",
        default=argparse_default,
        help="the deployed stack's AWS region (default: $AWS_REGION, else your AWS config's)",
    )
    parser.add_argument(
        "--profile",
        default=argparse_default,
        help="the AWS CLI profile to use (default: $AWS_PROFILE, else the default profile)",
    )


def use_aws(region: str | None, profile: str | None) -> None:
    """boto3's default session, with the region and profile given (else boto3's own lookup)."""
    if region or profile:
        import boto3

        boto3.setup_default_session(region_name=region, profile_name=profile)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- errors a user can act on, in one line ----------------------------------------------------


def explain(error: BaseException) -> str | None:
    """One line for an error from AWS's client or the network, or None for anything else (a bug:
    its traceback is worth seeing)."""
    if "botocore" in sys.modules:
        from botocore import exceptions as aws

        if isinstance(error, aws.NoRegionError):
            return "no AWS region: set AWS_REGION (or run `aws configure`)"
        if isinstance(error, aws.NoCredentialsError | aws.PartialCredentialsError | aws.ProfileNotFound):
            return f"no usable AWS credentials ({error}): run `aws configure` or `aws sso login`"
        if isinstance(error, aws.EndpointConnectionError):
            return f"cannot reach AWS ({error}): check the network, AWS_ENDPOINT_URL and the region"
        if isinstance(error, aws.ClientError):
            details = error.response.get("Error", {})
            hint = (
                " (check the name given: --stack, --table, --bucket; and --region)"
                if details.get("Code") in ("ResourceNotFoundException", "NoSuchBucket", "ValidationError")
                else ""
            )
            return f"AWS refused: {details.get('Code')}: {details.get('Message')}{hint}"
    if isinstance(error, FileNotFoundError):
        return f"no such file or folder: {error.filename}"
    return None


def report(error: BaseException, prog: str = "editgate") -> int:
    """Print ``error`` as one line on stderr and return the exit code, or raise it again."""
    if isinstance(error, CliError):
        message, code = str(error), error.code
    else:
        explained = explain(error)
        if explained is None:
            raise error
        message, code = explained, ERROR
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def stack_outputs(stack: str, *names: str) -> dict[str, str]:
    """A deployed stack's CloudFormation outputs, checked to hold ``names``."""
    import boto3

    found = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    missing = [name for name in names if name not in outputs]
    if missing:
        raise CliError(
            f"stack {stack} has no output {', '.join(missing)}: is it an editgate stack, deployed whole?"
        )
    return outputs


def reachable(url: str, failure: str) -> None:
    """A TCP connection to ``url``'s host within 5 s, or ``failure`` (with the reason) at once:
    not the SDK's retries over a dead address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"{url!r} is not an http(s) URL: give one such as http://127.0.0.1:8000/v1")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=5).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise CliError(failure.format(url=url, reason=reason)) from None
