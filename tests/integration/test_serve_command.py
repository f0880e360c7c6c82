"""`editgate serve` as a user runs it: a separate process, ready when it says so."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests

from editgate_local.stack import free_port
from tests.conftest import open_image, sdk_client


@contextlib.contextmanager
def serving(env: dict[str, str], host: str = "127.0.0.1") -> Iterator[tuple[str, list[str]]]:
    """``editgate serve`` in its own process, from start until it says "ready" (its readiness
    signal: no sleeping), then its base URL and what it printed; stopped on exit."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "editgate_local.cli", "serve", "--host", host, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip())
            if line.strip() == "ready":
                break
        assert lines[-1:] == ["ready"], "\n".join(lines)
        yield f"http://127.0.0.1:{port}", lines
    finally:
        process.terminate()
        process.wait(timeout=10)


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
    assert f"base URL: {base_url}/v1" in output
    assert "API key:  sk-served" in output
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


def _outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_given_serve_on_every_interface_then_moto_still_listens_on_loopback_only() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FAL_KEY"}
    with serving(env, host="0.0.0.0") as (_, lines):  # noqa: S104 - the case under test
        moto_url = next(line for line in lines if line.startswith("AWS:")).split()[3]
        port = int(moto_url.rsplit(":", 1)[1])
        assert moto_url.startswith("http://127.0.0.1:")
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code < 500  # it is up
        outward = _outward_address()
        if outward is None:
            pytest.skip("no non-loopback address on this machine to try moto from")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{outward}:{port}/", timeout=5)
