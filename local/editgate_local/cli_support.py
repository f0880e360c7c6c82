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
    """Descriptions and examples (epilogs) printed as written."""


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


def state_file() -> Path:
    """Where a running ``editgate serve`` leaves its endpoints (removed when it stops)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "editgate" / "serve.json"


@contextlib.contextmanager
def serve_state(state: dict[str, Any]) -> Iterator[Path]:
    """The state file for as long as the block runs (another serve's later file is left alone)."""
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**state, "pid": os.getpid()}, indent=2) + "\n")
    try:
        yield path
    finally:
        if _read(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)


def running_serve() -> dict[str, Any] | None:
    """The state of the running ``editgate serve``, if one is (a stale file is ignored)."""
    state = _read(state_file())
    pid = state.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    return state


def _read(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def use_local_stack() -> str:
    """Point boto3 at a local stack's moto: ``AWS_ENDPOINT_URL`` if set, else the running
    ``editgate serve``'s. A loopback endpoint gets dummy credentials and the stack's region (moto
    takes any; real credentials are never sent to it). Returns the endpoint."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        state = running_serve()
        if state is None:
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
    return endpoint


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
            return f"AWS refused: {details.get('Code')}: {details.get('Message')}"
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
