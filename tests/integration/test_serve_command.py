"""`editgate serve` as a user runs it: a separate process, ready when it says so."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest
import requests

from editgate_local.stack import free_port
from tests.conftest import open_image, sdk_client


@contextlib.contextmanager
def until_ready(
    command: list[str], env: dict[str, str], cwd: Path | None = None
) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """A long-running command in its own process, from start until it prints "ready" (its
    readiness signal: no sleeping), then the process and what it printed; stopped on exit, what it
    printed after "ready" added to the lines."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
    )
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    reader = threading.Thread()
    try:
        for line in stdout:
            lines.append(line.rstrip())
            if line.strip() == "ready":
                break
        assert lines[-1:] == ["ready"], "\n".join(lines)
        # Read on while it runs: a pipe left full (64 KB of logs) would block its writers, and a
        # stop that waits for them would never end.
        reader = threading.Thread(target=lambda: lines.extend(line.rstrip() for line in stdout), daemon=True)
        reader.start()
        yield process, lines
    finally:
        process.terminate()
        process.wait(timeout=60)  # a loaded machine stops the stack slower
        if reader.ident is not None:
            reader.join(timeout=10)


@contextlib.contextmanager
def serving(env: dict[str, str], host: str = "127.0.0.1") -> Iterator[tuple[str, list[str]]]:
    """``editgate serve`` in its own process, ready, then its base URL and what it printed."""
    port = free_port()
    command = [sys.executable, "-m", "editgate_local.cli", "serve", "--host", host, "--port", str(port)]
    with until_ready(command, env) as (_, lines):
        yield f"http://127.0.0.1:{port}", lines


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, list[str]]]:
    env = {k: v for k, v in os.environ.items() if k != "FAL_KEY"}
    env["EDITGATE_API_KEYS"] = "sk-served,sk-other"
    with serving(env) as running:
        yield running


def test_given_serve_then_it_prints_base_url_key_and_which_fal_before_ready(
    served: tuple[str, list[str]],
) -> None:
    base_url, lines = served
    output = "\n".join(lines)
    assert f"base URL:   {base_url}/v1" in output
    assert "API key:    sk-served" in output
    assert "fal emulator" in output
    assert "nothing billed" in output


def test_given_serve_when_the_sdk_edits_then_the_url_serves_the_png(
    served: tuple[str, list[str]], sample_png: Path
) -> None:
    base_url, _ = served
    client = sdk_client(f"{base_url}/v1", "sk-other")
    with sample_png.open("rb") as image:
        answer = client.images.edit(model="hidream-e1-1", image=image, prompt="add fog")
    assert answer.data is not None
    assert open_image(requests.get(answer.data[0].url or "", timeout=10).content).format == "PNG"


def test_given_serve_when_a_key_not_in_editgate_api_keys_is_used_then_401(
    served: tuple[str, list[str]], sample_png: Path
) -> None:
    base_url, _ = served
    client = sdk_client(f"{base_url}/v1", "sk-local")
    with sample_png.open("rb") as image, pytest.raises(openai.AuthenticationError):
        client.images.edit(image=image, prompt="add fog")


def test_given_fal_key_set_then_serve_says_real_fal_is_in_use_without_showing_the_key() -> None:
    # FAL_QUEUE_URL unset: fal's own queue host is the default (the session's stack exports one).
    env = {k: v for k, v in os.environ.items() if k != "FAL_QUEUE_URL"}
    env.update(FAL_KEY="fal-key-id:fal-key-secret-value", EDITGATE_API_KEYS="sk-served")
    with serving(env) as (_, lines):  # no request is sent: nothing reaches the network
        banner = "\n".join(lines)
    assert "REAL fal at https://queue.fal.run (FAL_KEY is set: edits are billed to that key)" in banner
    assert "emulator" not in banner
    assert "fal-key-secret-value" not in banner


def test_given_serve_on_every_interface_then_the_fal_emulator_and_moto_listen_on_loopback_only() -> None:
    """Issue 15: ``editgate serve --host 0.0.0.0`` also exposed the fal emulator's unauthenticated
    control routes. Only the API front takes the requested address; the banner prints each
    server's bound address (no packet is sent to any address but loopback)."""
    env = {k: v for k, v in os.environ.items() if k != "FAL_KEY"}
    with serving(env, host="0.0.0.0") as (_, lines):  # noqa: S104 - the case under test
        banner = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in lines if ":" in line}
        api = urlsplit(banner["base URL"])
        emulator = urlsplit(banner["fal"].split()[3])
        moto = urlsplit(banner["AWS"].split()[2])
        assert api.hostname == "0.0.0.0"  # noqa: S104
        assert (emulator.hostname, moto.hostname) == ("127.0.0.1", "127.0.0.1")
        # Both up, on loopback.
        assert requests.get(f"http://127.0.0.1:{moto.port}/", timeout=5).status_code < 500
        assert requests.get(f"http://127.0.0.1:{emulator.port}/", timeout=5).status_code == 404
