"""``editgate smoke``: does a stack answer as it should? With a temporary key (made, then revoked):
its health route, its docs page, ``GET /v1/models`` and a dry-run edit (nothing billed); with
``--paid``, one real edit. For a deployed stack (``--stack``) or a local one (``--base-url``, or
the running ``editgate serve``). Exit 0 when every check passed, 3 when one failed."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from editgate_local.cli_support import (
    FAILED_ITEMS,
    USAGE,
    CliError,
    add_aws_options,
    add_command,
    reachable,
    running_serve,
    stack_outputs,
    use_aws,
)
from editgate_local.keys_cli import LOCAL_TABLE, KeyPlace, create_key, key_place, revoke_key

SAMPLE = Path(__file__).with_name("sample.png")
MODEL = "hidream-e1-1"
Check = Callable[[], str]  # what it saw, or raises Failed


class Failed(Exception):
    """A check that did not pass: what was expected and what came."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands,
        "smoke",
        "check that a stack answers: health, docs, models and a dry-run edit, with a temporary key",
        "  editgate smoke --stack editgate                   (a deployed stack; nothing billed)\n"
        "  editgate smoke --stack editgate --region eu-west-1 --profile deployer\n"
        "  editgate smoke --stack editgate --paid            (and one real edit, about $0.06)\n"
        "  editgate smoke                                    (the running editgate serve)\n"
        "  editgate smoke --base-url https://<api>/api/v1 --api-key sk-eg-...",
    )
    parser.add_argument(
        "--stack",
        default=None,
        metavar="NAME",
        help="a deployed editgate stack's name (default: --base-url, else the running editgate serve)",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help="the API's base URL, ending in /v1 (default: the stack's ApiUrl, else the running serve's)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="a key to use instead of a temporary one (default: make one, revoke it at the end)",
    )
    parser.add_argument(
        "--table",
        default=LOCAL_TABLE,
        help="with --base-url: the local stack's keys table for the temporary key (default: %(default)s)",
    )
    add_aws_options(parser)
    parser.add_argument("--paid", action="store_true", help="also run one real edit, billed by fal")
    parser.add_argument(
        "--key-wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long a new key may take to be accepted (API Gateway) (default: %(default)s)",
    )
    parser.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    base_url, place = _target(args)
    reachable(base_url, "cannot reach the API at {url} ({reason}): check --stack or --base-url")
    print(f"smoke: {base_url}")
    key, key_id = args.api_key, None
    if key is None:
        assert place is not None
        key, record = create_key(place, "editgate-smoke", expires_at=int(time.time()) + 3600)
        key_id = record.key_id
        print(f"key:   a temporary key, {key_id} (revoked at the end)")
    try:
        results = [_run(name, check) for name, check in _checks(base_url, key, args)]
    finally:
        if key_id is not None and place is not None:
            revoke_key(place, key_id)
            print(f"key:   {key_id} revoked")
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return FAILED_ITEMS if failed else 0


def _target(args: argparse.Namespace) -> tuple[str, KeyPlace | None]:
    """The API's base URL, and where a temporary key goes (None: ``--api-key`` is used)."""
    if args.stack:
        use_aws(args.region, args.profile)
        outputs = stack_outputs(args.stack, "ApiUrl")
        place = None if args.api_key else key_place(args.stack, None, args.region, args.profile)
        return (args.base_url or outputs["ApiUrl"]).rstrip("/"), place
    base_url = args.base_url
    if base_url is None:
        serve = running_serve()
        if serve is None:
            raise CliError(
                "say which stack: --stack NAME (deployed), --base-url URL, or start `editgate serve`", USAGE
            )
        base_url = str(serve["base_url"])
    return base_url.rstrip("/"), None if args.api_key else key_place(None, args.table)


def _run(name: str, check: Check) -> bool:
    try:
        seen = check()
    except Failed as failure:
        print(f"FAIL  {name}: {failure}", flush=True)
        return False
    print(f"ok    {name}: {seen}", flush=True)
    return True


def _checks(base_url: str, key: str, args: argparse.Namespace) -> list[tuple[str, Check]]:
    smoke = Smoke(base_url, key, args.key_wait)
    checks: list[tuple[str, Check]] = [
        ("health", smoke.health),
        ("docs", smoke.docs),
        ("models", smoke.models),
        ("dry-run edit", lambda: smoke.edit(dry_run=True)),
    ]
    if args.paid:
        checks.append(("paid edit", lambda: smoke.edit(dry_run=False)))
    return checks


class Smoke:
    """The checks, each as a client (or a load balancer) would call the API."""

    def __init__(self, base_url: str, key: str, key_wait: float) -> None:
        self.base_url = base_url
        self.root = base_url.removesuffix("/v1")
        self.auth = {"Authorization": f"Bearer {key}"}
        self.key_wait = key_wait

    def health(self) -> str:
        answer = _call("GET", f"{self.base_url}/health")
        if answer.status_code in (401, 403, 404):  # no such route (before it existed), or behind the key
            with_key = _call("GET", f"{self.base_url}/health", headers=self.auth)
            if with_key.status_code == 200:
                raise Failed(f"it answers {answer.status_code} without a key: a load balancer sends none")
            statuses = f"{answer.status_code}, {with_key.status_code} with a key"
            return f"no /v1/health route on this stack ({statuses}): skipped"
        body = _json(answer, 200)
        if body.get("status") != "ok":
            raise Failed(f"status {body.get('status')!r}, fal key readable: {body.get('fal_key_readable')}")
        return f"version {body.get('version')}, fal key readable: {body.get('fal_key_readable')}"

    def docs(self) -> str:
        answer = _call("GET", f"{self.root}/docs", headers=self.auth)
        if answer.status_code != 200 or "html" not in answer.headers.get("content-type", ""):
            raise Failed(
                f"{self.root}/docs answered {answer.status_code} {answer.headers.get('content-type')}"
            )
        return f"{self.root}/docs serves the Swagger UI page"

    def models(self) -> str:
        deadline = time.monotonic() + self.key_wait
        answer = _call("GET", f"{self.base_url}/models", headers=self.auth)
        while answer.status_code in (401, 403) and time.monotonic() < deadline:  # a new key settling in
            time.sleep(2)
            answer = _call("GET", f"{self.base_url}/models", headers=self.auth)
        ids = [model.get("id") for model in _json(answer, 200).get("data", [])]
        if MODEL not in ids:
            raise Failed(f"{MODEL} not among the models: {ids}")
        return ", ".join(str(i) for i in ids)

    def edit(self, *, dry_run: bool) -> str:
        url = f"{self.base_url}/images/edits" + ("?dry_run=true" if dry_run else "")
        form = {"model": MODEL, "prompt": "editgate smoke check: add a small red dot", "size": "512x512"}
        files = {"image": ("smoke.png", SAMPLE.read_bytes(), "image/png")}
        body = _json(_call("POST", url, headers=self.auth, data=form, files=files, timeout=120), 200)
        if dry_run:
            if body.get("object") != "edit.dry_run":
                raise Failed(f"not a dry run's answer: {str(body)[:200]}")
            return (
                f"would send {body.get('endpoint_id')} at {body.get('provider_size')}, ${body['cost']['usd']}"
            )
        image = _call("GET", body["data"][0]["url"])
        if image.status_code != 200 or not image.content:
            raise Failed(f"the result's URL answered {image.status_code}")
        return f"{body.get('size')}, {len(image.content):,} bytes, ${body['metadata']['cost']['usd']}"


def _call(method: str, url: str, *, timeout: float = 30, **options: Any) -> Any:
    import requests

    try:
        return requests.request(method, url, timeout=timeout, **options)
    except requests.RequestException as error:
        raise Failed(f"no answer from {url}: {error}") from None


def _json(answer: Any, status: int) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code != status or not isinstance(body, dict):
        raise Failed(f"{answer.request.method} {answer.url} answered {_error_line(answer, body)}")
    return body


def _error_line(answer: Any, body: Any) -> str:
    """``401 invalid_api_key (param x): message``: an OpenAI-shaped error's fields, else the text."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return f"{answer.status_code}: {answer.text[:200]}"
    code = f" {error['code']}" if error.get("code") else ""
    param = f" (param {error['param']})" if error.get("param") else ""
    return f"{answer.status_code}{code}{param}: {error.get('message')}"
