"""The ``editgate`` command: ``serve`` the local stack, run the ``fal-emulator`` alone, ``edit``
an image through an editgate API with the official openai SDK, run ``batch`` edits, or manage
API ``keys``."""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import requests

from editgate_local import batch_cli, keys_cli
from editgate_local.fal_emulator import FalEmulator
from editgate_local.sample import SAMPLE_IMAGE
from editgate_local.stack import BATCH_BUCKET, KEYS_TABLE, LocalStack


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="editgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API on the embedded local stack")
    serve.add_argument(
        "--host", default="127.0.0.1", help="the API's address (moto and the fal emulator stay on 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--fal-latency", type=float, default=0.0, help="emulated fal run time, seconds")

    emulator = commands.add_parser("fal-emulator", help="run the fal queue emulator alone")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8010)
    emulator.add_argument("--latency", type=float, default=0.0, help="seconds before a request completes")
    emulator.add_argument("--key", default=None, help="the fal key it accepts (default: a random one)")

    edit = commands.add_parser("edit", help="edit an image through an editgate API with the openai SDK")
    edit.add_argument("image", type=Path, nargs="?", default=SAMPLE_IMAGE)
    edit.add_argument("--prompt", required=True)
    edit.add_argument("-o", "--output", type=Path, default=Path("out/edit.png"))
    edit.add_argument("--size", default=None)
    edit.add_argument("--n", type=int, default=1)
    edit.add_argument("--model", default="hidream-e1-1")
    edit.add_argument("--response-format", choices=("url", "b64_json"), default="url")
    edit.add_argument("--base-url", default=None, help="an editgate API (default: start the local stack)")
    edit.add_argument("--api-key", default=os.environ.get("EDITGATE_API_KEY", "sk-local"))

    batch_cli.add_parser(commands)
    keys_cli.add_parser(commands)

    args = parser.parse_args(argv)
    if args.command == "batch":
        return batch_cli.main(args)
    if args.command == "keys":
        return keys_cli.main(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "fal-emulator":
        return _emulator(args)
    return _edit(args)


def _api_keys() -> tuple[str, ...]:
    keys = tuple(k.strip() for k in os.environ.get("EDITGATE_API_KEYS", "sk-local").split(",") if k.strip())
    return keys or ("sk-local",)


def _serve(args: argparse.Namespace) -> int:
    with LocalStack(
        host=args.host, port=args.port, api_keys=_api_keys(), fal_latency=args.fal_latency
    ) as stack:
        print(
            "editgate local stack (S3, SQS, DynamoDB, Secrets Manager: moto; "
            "API Gateway: local front, authorizer and usage plan)"
        )
        print(f"fal:      {stack.fal_description}")
        print(f"base URL: {stack.base_url}/v1")
        print(f"API key:  {stack.api_key}  (more: editgate keys --table {KEYS_TABLE} create --owner NAME)")
        print(f"batch:    s3://{BATCH_BUCKET}/incoming/<batch id>/")
        print(
            f"AWS:      moto at {stack.env['AWS_ENDPOINT_URL']} (set AWS_ENDPOINT_URL to it for aws or boto3)"
        )
        with stack.batch_driver(concurrency=4):
            print("ready", flush=True)
            _wait_forever()
    return 0


def _emulator(args: argparse.Namespace) -> int:
    emulator = FalEmulator(host=args.host, port=args.port, key=args.key, latency=args.latency).start()
    print(f"fal emulator at {emulator.url} (FAL_QUEUE_URL={emulator.url})")
    print(f"fal key:  {emulator.key}")
    print("ready", flush=True)
    try:
        _wait_forever()
    finally:
        emulator.stop()
    return 0


def _edit(args: argparse.Namespace) -> int:
    if args.base_url:
        print(f"API:  {args.base_url}")
        return _run_edit(args, args.base_url, args.api_key)
    with LocalStack(api_keys=(args.api_key,)) as stack:
        print(f"API:  the embedded local stack at {stack.base_url}/v1")
        print(f"fal:  {stack.fal_description}")
        return _run_edit(args, f"{stack.base_url}/v1", stack.api_key)


def _run_edit(args: argparse.Namespace, base_url: str, api_key: str) -> int:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key)
    extra = {"size": args.size} if args.size else {}
    try:
        with args.image.open("rb") as image:
            answer = client.images.edit(
                model=args.model,
                image=image,
                prompt=args.prompt,
                n=args.n,
                response_format=args.response_format,
                **extra,
            )
    except openai.APIStatusError as exc:
        print(f"error {exc.status_code}: {exc.message}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for index, item in enumerate(answer.data or []):
        path = args.output if index == 0 else args.output.with_stem(f"{args.output.stem}-{index}")
        if item.url:
            print(f"url:  {item.url}")
            response = requests.get(item.url, timeout=30)
            response.raise_for_status()
            path.write_bytes(response.content)
        else:
            path.write_bytes(base64.b64decode(item.b64_json or ""))
        print(f"saved {path} ({answer.size}, {answer.output_format})")
    extra_fields = answer.model_extra or {}
    cost = extra_fields.get("metadata", {}).get("cost", {}).get("usd")
    print(f"request id: {answer._request_id}  cost: ${cost}")
    return 0


def _wait_forever() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


if __name__ == "__main__":
    raise SystemExit(main())
