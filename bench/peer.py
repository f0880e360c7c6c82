"""Overhead against a peer: LiteLLM's proxy (`litellm[proxy]`, in a venv of its own under .bench/,
never in the project's dependencies) doing the same fal image edit against the same emulator, in
the same run, each path next to its own bare client:

- LiteLLM calls fal's synchronous route (`POST {api_base}/fal-ai/hidream-e1-1/edit` with
  `image_urls`) and hands back fal's URL: its overhead is the openai SDK through the proxy minus
  a bare `requests` call of that route (the result URL downloaded on both paths).
- editgate uses fal's queue and stores the result in the user's bucket: its overhead is the SDK
  through the gateway minus a bare queue client (submit, status, result, download).

LiteLLM stores nothing, so editgate's data movement (download from fal, S3 put, presign: from
Server-Timing) is reported on its own line, and the comparison is of the overhead without it.
PASS when editgate's overhead without the store step is at most LiteLLM's, at p50.
LiteLLM runs offline: LITELLM_LOCAL_MODEL_COST_MAP=True, no database, a random master key.

    .venv/bin/python bench/peer.py [--runs 20] [--warmup 3]

A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import requests
from fal_apart import FalApart
from overhead import CLIENT_DOWNLOAD, bare_edit, fetched, gateway_edit, photo_like
from report import ROOMY, Section, percentile, run_alone, spread

from editgate_local.stack import REPO_ROOT, LocalStack, free_port

VENV = REPO_ROOT / ".bench" / "litellm"
LITELLM = VENV / "bin" / "litellm"
ENDPOINT = "fal-ai/hidream-e1-1"
# What editgate keeps that LiteLLM does not (Server-Timing phases): the result, fetched from fal,
# put in the user's bucket and presigned; the idempotency record and the submission journal.
DATA_MOVEMENT = ("download", "store", "presign")
RECORDS = ("dedupe", "journal")
CONFIG = """model_list:
  - model_name: hidream-edit
    litellm_params: {{model: fal_ai/{endpoint}, api_base: "{api_base}", api_key: "{api_key}"}}
    model_info: {{mode: image_edit}}
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
litellm_settings:
  drop_params: true
"""


def install_litellm() -> None:
    if LITELLM.exists():
        return
    print("installing litellm[proxy] into .bench/litellm (once; about a minute)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "litellm[proxy]"]
    subprocess.run(pip, check=True, stderr=subprocess.DEVNULL)


@contextmanager
def litellm_proxy(fal_url: str, fal_key: str) -> Iterator[tuple[str, str]]:
    """LiteLLM's proxy pointed at the emulator's synchronous host: its URL and master key."""
    master_key = f"sk-bench-{secrets.token_hex(16)}"
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "config.yaml"
        config.write_text(CONFIG.format(endpoint=ENDPOINT, api_base=f"{fal_url}/run", api_key=fal_key))
        env = {**os.environ, "LITELLM_MASTER_KEY": master_key, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        command = [str(LITELLM), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        with subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as proxy:
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until_live(proxy, url)
                yield url, master_key
            finally:
                proxy.terminate()
                proxy.wait(timeout=30)


def wait_until_live(proxy: subprocess.Popen[bytes], url: str) -> None:
    """Poll LiteLLM's liveness route until it answers (about 6 s after launch)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proxy.poll() is not None:
            raise SystemExit(f"litellm exited with {proxy.returncode} before it was ready")
        try:
            if requests.get(f"{url}/health/liveliness", timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.1)  # not listening yet: its port opens once its imports are done
    raise SystemExit("litellm was not ready after 120 s")


def bare_sync_edit(session: requests.Session, fal_url: str, fal_key: str, image: bytes) -> dict[str, float]:
    """What LiteLLM's adapter sends, straight to the emulator's synchronous route."""
    uri = f"data:image/png;base64,{base64.b64encode(image).decode()}"
    payload = {"prompt": "x", "image_urls": [uri], "num_images": 1}
    answer = session.post(f"{fal_url}/run/{ENDPOINT}/edit", json=payload, timeout=60,
                          headers={"Authorization": f"Key {fal_key}"})  # fmt: skip
    return fetched(session, answer.json()["images"][0]["url"])


def bare_queue_edit(session: requests.Session, fal_url: str, fal_key: str, image: bytes) -> dict[str, float]:
    return bare_edit(session, fal_url, fal_key, image, "image/png")


def litellm_edit(client: openai.OpenAI, session: requests.Session, image: bytes) -> dict[str, float]:
    answer = client.images.edit(model="hidream-edit", image=("in.png", image), prompt="x")
    assert answer.data
    return fetched(session, answer.data[0].url or "")


def measure(args: argparse.Namespace) -> Section:
    section = Section("Overhead against a peer (LiteLLM)")
    install_litellm()
    image = photo_like(1024, "png")
    # Until the answer, without the client's download of the result (timed apart: the same bytes,
    # from fal on three paths and from the user's bucket on editgate's).
    timed: dict[str, list[float]] = {"bare sync": [], "litellm": [], "bare queue": [], "editgate": []}
    downloads: dict[str, list[float]] = {name: [] for name in timed}
    moved: list[float] = []
    recorded: list[float] = []
    with (
        FalApart() as fal,
        LocalStack(environ=fal.environ, usage_plan=ROOMY, concurrency=1) as stack,
        litellm_proxy(fal.environ["FAL_QUEUE_URL"], fal.environ["FAL_KEY"]) as (proxy_url, master_key),
    ):
        fal_url, fal_key = fal.environ["FAL_QUEUE_URL"], fal.environ["FAL_KEY"]
        session = requests.Session()
        peer = openai.OpenAI(base_url=f"{proxy_url}/v1", api_key=master_key, max_retries=0)
        gateway = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=stack.api_key, max_retries=0)
        paths: dict[str, Callable[[], dict[str, float]]] = {
            "bare sync": lambda: bare_sync_edit(session, fal_url, fal_key, image),
            "litellm": lambda: litellm_edit(peer, session, image),
            "bare queue": lambda: bare_queue_edit(session, fal_url, fal_key, image),
            "editgate": lambda: gateway_edit(gateway, session, image, "in.png", "url"),
        }
        for run in range(args.warmup + args.runs):
            for name, path in paths.items():
                started = time.perf_counter()
                phases = path()
                if run >= args.warmup:
                    downloads[name].append(phases[CLIENT_DOWNLOAD])
                    timed[name].append((time.perf_counter() - started) * 1000 - phases[CLIENT_DOWNLOAD])
                    if name == "editgate":
                        moved.append(sum(phases.get(phase, 0.0) for phase in DATA_MOVEMENT))
                        recorded.append(sum(phases.get(phase, 0.0) for phase in RECORDS))
    litellm = [p - b for p, b in zip(timed["litellm"], timed["bare sync"], strict=True)]
    editgate = [g - b for g, b in zip(timed["editgate"], timed["bare queue"], strict=True)]
    unmoved = [o - m for o, m in zip(editgate, moved, strict=True)]
    handling = [o - r for o, r in zip(unmoved, recorded, strict=True)]
    section.say(f"1024² PNG (1.5 MB), n=1, url; {args.runs} runs after {args.warmup} warm-up, interleaved")
    for name, values in timed.items():
        answer, download = spread(values, " ms"), spread(downloads[name], " ms")
        section.say(f"  {name:12} answered in {answer:24} then its result downloaded in {download}")
    for name, values in (("LiteLLM overhead", litellm), ("editgate overhead", editgate),
                         ("  of which the result's data movement (fal download, S3 put, presign)", moved),
                         ("  of which the idempotency record and journal (DynamoDB)", recorded),
                         ("editgate overhead without the data movement", unmoved),
                         ("editgate overhead without the store step (both)", handling)):  # fmt: skip
        section.say(f"  {name:72} p50 {statistics.median(values):4.0f}  p90 {percentile(values, 0.9):4.0f}")
    chart = section.chart("peer", "Overhead over each path's bare client, 1024² PNG", "ms")
    chart.add("LiteLLM proxy", litellm)
    chart.add("editgate, without the store step", handling)
    chart.add("editgate: result data movement", moved)
    chart.add("editgate: idempotency and journal", recorded)
    ours, theirs = statistics.median(handling), statistics.median(litellm)
    figures = f"{ours:.0f} ms vs {theirs:.0f} ms"
    name = "editgate overhead without the store step vs LiteLLM's overhead, p50"
    section.target(name, figures, "<= LiteLLM's", ours <= theirs)
    return section


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)


if __name__ == "__main__":
    run_alone(__doc__, add_arguments, measure)
