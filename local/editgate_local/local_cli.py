"""``editgate serve``, ``editgate edit`` and ``editgate fal-emulator``: the local stack, one edit
through any editgate API with the official openai SDK, and the fal emulator alone. What each
needs (the stack, moto, openai) is imported when it runs."""

from __future__ import annotations

import argparse
import base64
import contextlib
import errno
import os
import shutil
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from editgate_local.cli_support import (
    USAGE,
    CliError,
    add_command,
    at_least_one,
    http_url,
    key_from_environment,
    non_negative,
    port,
    reachable,
    serve_state,
)

if TYPE_CHECKING:
    import openai

SAMPLE = Path(__file__).with_name("sample.png")  # editgate_local.sample.SAMPLE_IMAGE, without its import
FAL_QUEUE = "https://queue.fal.run"


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = add_command(
        commands,
        "serve",
        "run the API on the embedded local stack (moto, the fal emulator, the API Gateway front)",
        "  editgate serve\n"
        "  editgate serve --port 9000 --fal-latency 2\n"
        "  editgate serve --cors-origin http://localhost:5173   (a browser app on that origin)\n"
        "  EDITGATE_API_KEY=sk-mine editgate serve      (the key clients send)\n"
        "  FAL_KEY=... editgate serve                   (real fal: edits are billed)",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="the API's address; moto and the fal emulator stay on 127.0.0.1 (default: %(default)s)",
    )
    serve.add_argument("--port", type=port, default=8000, help="the API's port (default: %(default)s)")
    serve.add_argument(
        "--fal-latency",
        type=non_negative,
        default=0.0,
        metavar="SECONDS",
        help="the fal emulator's run time per edit (default: %(default)s)",
    )
    serve.add_argument(
        "--api-key",
        action="append",
        default=None,
        metavar="KEY",
        help="a key the API accepts, repeatable (default: $EDITGATE_API_KEY, else sk-local)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="a browser app's origin allowed to call the API (CORS), e.g. http://localhost:5173, "
        "repeatable (default: none, CORS off)",
    )
    serve.set_defaults(run=_serve)

    edit = add_command(
        commands,
        "edit",
        "edit an image through an editgate API with the official openai SDK and save the result",
        '  editgate edit --prompt "turn it into a snowy winter evening"\n'
        '  editgate edit shoe.png --prompt "put the shoe on a marble table" --size 16:9 -o out/shoe.png\n'
        '  editgate edit shoe.png --prompt "add fog" --base-url http://127.0.0.1:8000/v1 --api-key sk-local\n'
        '  OPENAI_BASE_URL=https://<api>/api/v1 EDITGATE_API_KEY=... editgate edit shoe.png --prompt "..."',
    )
    edit.add_argument(
        "image",
        type=Path,
        nargs="?",
        default=SAMPLE,
        help="a PNG, JPEG or WebP file (default: the bundled sample image)",
    )
    edit.add_argument("--prompt", required=True, help="the edit, in words (required)")
    edit.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("out/edit.png"),
        help="where the result is saved, in the format its suffix names (.png, .jpg, .jpeg, .webp); "
        "more images get -1, -2... (default: %(default)s)",
    )
    edit.add_argument(
        "--size", default=None, help="WxH, a ratio such as 16:9, or auto (default: the API's, auto)"
    )
    edit.add_argument(
        "--n", type=at_least_one, default=1, help="how many images, 1-10 (default: %(default)s)"
    )
    edit.add_argument("--model", default="hidream-e1-1", help="the model (default: %(default)s)")
    edit.add_argument(
        "--response-format",
        choices=("url", "b64_json"),
        default="url",
        help="how the API returns the images (default: %(default)s)",
    )
    edit.add_argument(
        "--base-url",
        type=http_url,
        default=os.environ.get("OPENAI_BASE_URL") or None,
        metavar="URL",
        help="an editgate API, e.g. http://127.0.0.1:8000/v1 (default: $OPENAI_BASE_URL, "
        "else a local stack started for this edit alone)",
    )
    edit.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="the editgate key (default: $EDITGATE_API_KEY, else $OPENAI_API_KEY with a base "
        "URL, else sk-local)",
    )
    edit.set_defaults(run=_edit)

    emulator = add_command(
        commands,
        "fal-emulator",
        "run the fal queue emulator alone (fal's queue protocol, deterministic edited images)",
        "  editgate fal-emulator\n  editgate fal-emulator --port 8010 --latency 2 --key my-test-key",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="its address (default: %(default)s)")
    emulator.add_argument("--port", type=port, default=8010, help="its port (default: %(default)s)")
    emulator.add_argument(
        "--latency",
        type=non_negative,
        default=0.0,
        metavar="SECONDS",
        help="seconds before a request completes (default: %(default)s)",
    )
    emulator.add_argument(
        "--key", default=None, help="the fal key it accepts (default: a random one, printed)"
    )
    emulator.set_defaults(run=_emulator)


def _serve_keys(given: list[str] | None) -> tuple[str, ...]:
    # EDITGATE_API_KEYS (comma-separated): the name before EDITGATE_API_KEY, still read.
    old = [k.strip() for k in os.environ.get("EDITGATE_API_KEYS", "").split(",") if k.strip()]
    return tuple(
        given or ([key_from_environment()] if os.environ.get("EDITGATE_API_KEY") else old) or ["sk-local"]
    )


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CliError(
                    f"port {port} on {host} is in use (another editgate serve?): stop it, or pick "
                    "another with --port"
                ) from None
            raise CliError(f"cannot listen on {host}:{port} ({error.strerror}): check --host") from None


def _serve(args: argparse.Namespace) -> int:
    _check_port_free(args.host, args.port)
    from editgate_local.stack import BATCH_BUCKET, LocalStack

    # `kill` (SIGTERM) ends it as Ctrl-C does: the with-blocks close and the state file goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cors = {"CORS_ALLOW_ORIGINS": ",".join(args.cors_origin)} if args.cors_origin else {}
    stack = LocalStack(
        host=args.host,
        port=args.port,
        api_keys=_serve_keys(args.api_key),
        fal_latency=args.fal_latency,
        settings_env=cors,
    )
    with stack:
        api = stack.base_url
        state = {
            "base_url": f"{api}/v1",
            "aws_endpoint_url": stack.env["AWS_ENDPOINT_URL"],
            "function_environment": stack.env,  # the batch worker's settings (no secret: fal's is in moto)
        }
        editgate = command_name()
        print(
            "editgate local stack (S3, SQS, DynamoDB, Secrets Manager: moto; "
            "API Gateway: local front, authorizer and usage plan)"
        )
        print(f"fal:        {stack.fal_description}")
        print(f"base URL:   {api}/v1")
        print(f"API key:    {stack.api_key}  (more: {editgate} keys create --owner NAME)")
        print(f"playground: {api}/playground")
        print(f"docs:       {api}/docs")
        allowed = (
            f"on for {', '.join(args.cors_origin)}" if cors else "off (--cors-origin ORIGIN turns it on)"
        )
        print(f"CORS:       {allowed}")
        print(f'batch:      {editgate} batch run DIR --prompt "..." (bucket s3://{BATCH_BUCKET}/incoming/)')
        print(
            f"AWS:        moto at {stack.env['AWS_ENDPOINT_URL']} "
            "(the keys, batch and smoke commands find it by themselves)"
        )
        with serve_state(state, args.port) as path, stack.batch_driver(concurrency=4):
            print(f"state:      {path} (removed when this stops)")
            print("ready", flush=True)
            _wait_forever()
    return 0


def command_name() -> str:
    """How to run ``editgate`` from this shell: ``editgate`` when it is on PATH, else the path of
    this one (``.venv/bin/editgate``: a new shell has not activated the venv), else ``python -m``."""
    if shutil.which("editgate"):
        return "editgate"
    running = Path(sys.argv[0])
    if running.name == "editgate":
        with contextlib.suppress(ValueError):
            return str(running.resolve().relative_to(Path.cwd()))
        return str(running)
    return f"{sys.executable} -m editgate_local.cli"


def _emulator(args: argparse.Namespace) -> int:
    _check_port_free(args.host, args.port)
    from editgate_local.fal_emulator import FalEmulator

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    emulator = FalEmulator(host=args.host, port=args.port, key=args.key, latency=args.latency).start()
    print(f"fal emulator at {emulator.url} (FAL_QUEUE_URL={emulator.url})")
    print(f"fal key:  {emulator.key}")
    print("ready", flush=True)
    try:
        _wait_forever()
    finally:
        emulator.stop()
    return 0


OUTPUT_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}


def _edit(args: argparse.Namespace) -> int:
    if args.image.is_dir():
        raise CliError(f"{args.image} is a folder: give an image file (editgate batch run edits a folder)")
    if not args.image.is_file():
        raise CliError(f"image not found: {args.image} (give a PNG, JPEG or WebP file that exists)")
    if args.output.suffix.lower() not in OUTPUT_FORMATS:
        raise CliError(f"-o {args.output}: end it in .png, .jpg, .jpeg or .webp (the format saved)", USAGE)
    if args.base_url:
        key = (
            args.api_key
            or os.environ.get("EDITGATE_API_KEY")
            or os.environ.get("OPENAI_API_KEY")
            or "sk-local"
        )
        reachable(args.base_url, "cannot reach the API at {url} ({reason}): is it running? check --base-url")
        print(f"API:  {args.base_url}")
        return _run_edit(args, args.base_url, key, keep_urls=True)
    if os.environ.get("FAL_KEY"):
        reachable(
            os.environ.get("FAL_QUEUE_URL", FAL_QUEUE),
            "cannot reach fal at {url} ({reason}): FAL_KEY is set, so edits go to real fal; check "
            "the network, or unset FAL_KEY to use the fal emulator",
        )
    from editgate_local.stack import LocalStack

    key = args.api_key or key_from_environment()
    with LocalStack(api_keys=(key,)) as stack:
        print(f"API:  the embedded local stack at {stack.base_url}/v1 (it stops when this command ends)")
        print(f"fal:  {stack.fal_description}")
        return _run_edit(args, f"{stack.base_url}/v1", key, keep_urls=False)


def api_error_line(error: openai.APIStatusError) -> str:
    """``400 invalid_value (param size): <message>`` (after ``editgate: error``): the API's own
    fields, once each (the SDK's message repeats the status and the whole body)."""
    body = error.body if isinstance(error.body, dict) else {}
    message = body.get("message") or error.message
    code = f" {error.code}" if error.code else ""
    param = f" (param {error.param})" if error.param else ""
    return f"{error.status_code}{code}{param}: {message}"


def _run_edit(args: argparse.Namespace, base_url: str, api_key: str, *, keep_urls: bool) -> int:
    import openai
    import requests

    # The embedded stack has nothing transient to retry; a remote API gets the SDK's retries.
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=2 if keep_urls else 0)
    extra: dict[str, Any] = {"size": args.size} if args.size else {}
    extra["output_format"] = OUTPUT_FORMATS[args.output.suffix.lower()]
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
    except openai.APIStatusError as error:
        raise CliError(api_error_line(error)) from None
    except openai.APIConnectionError as error:
        raise CliError(
            f"the API at {base_url} did not answer ({error}): is it running? check --base-url"
        ) from None
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for index, item in enumerate(answer.data or []):
        path = args.output if index == 0 else args.output.with_stem(f"{args.output.stem}-{index}")
        if item.url:
            if keep_urls:  # the embedded stack's URLs die with it: only the saved file is shown
                print(f"url:  {item.url}")
            response = requests.get(item.url, timeout=30)
            response.raise_for_status()
            path.write_bytes(response.content)
        else:
            path.write_bytes(base64.b64decode(item.b64_json or ""))
        print(f"saved {path} ({answer.size}, {answer.output_format})")
    cost = (answer.model_extra or {}).get("metadata", {}).get("cost", {}).get("usd")
    print(f"request id: {answer._request_id}  cost: ${cost}")
    return 0


def _wait_forever() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
