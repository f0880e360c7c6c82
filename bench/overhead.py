"""Gateway overhead against the physical limit: the same edit straight to the fal emulator with a
bare ``requests`` client (submit → status → result → image) and through the gateway with the
official openai SDK (the answer's URL downloaded), interleaved, in one run. The emulator runs in
its own process, as fal would, and answers with latency 0: what remains is what each path adds.

    .venv/bin/python bench/overhead.py [--runs 20] [--warmup 3] [--sizes 512 1024 2048]
                                       [--formats png jpeg] [--responses url b64_json]

Prints p50/p90/p99 of each path and of the difference, the gateway's phases (its Server-Timing
header, medians), how many answers re-encoded an image (Server-Timing's encode-input and
encode-output phases), and PASS/FAIL for the targets: at 1024² PNG, url, overhead p50 <= 80 ms
and p99 <= 200 ms; no image re-encoded when nothing changes (same format and size in and out).
A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal, cast

import openai
import requests
from fal_apart import FalApart
from PIL import Image, ImageFilter
from report import ROOMY, Section, percentile, run_alone

from editgate_local.fal_emulator import WORKING_AREA
from editgate_local.front import LAMBDA_MAX_EVENT
from editgate_local.stack import LocalStack

TARGET_P50_MS, TARGET_P99_MS = 80.0, 200.0
# The client's download of the answer's image, timed apart from the phases the gateway reports.
CLIENT_DOWNLOAD = "client-download"


def photo_like(side: int, fmt: str) -> bytes:
    """A photo-like image: smooth gradients under fine noise (about 1.5 MB as a 1024² PNG)."""
    ramp = Image.linear_gradient("L").resize((side, side))
    channels = [ramp, ramp.rotate(90), ramp.rotate(225).resize((side, side))]
    noise = Image.effect_noise((side, side), 24)
    rgb = Image.merge("RGB", [Image.blend(c, noise.rotate(90 * i), 0.12) for i, c in enumerate(channels)])
    out = io.BytesIO()
    rgb.filter(ImageFilter.GaussianBlur(0.5)).save(
        out, format="PNG" if fmt == "png" else "JPEG", **({} if fmt == "png" else {"quality": 90})
    )
    return out.getvalue()


@dataclass
class Series:
    bare: list[float] = field(default_factory=list)
    gateway: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    reencoded: int = 0  # answers whose Server-Timing shows an image encoded again

    @property
    def overhead(self) -> list[float]:
        return [g - b for g, b in zip(self.gateway, self.bare, strict=True)]


def fetched(session: requests.Session, url: str) -> dict[str, float]:
    """Download a result as a client does; the time it took, as a pseudo-phase."""
    started = time.perf_counter()
    session.get(url, timeout=60).content  # noqa: B018 - the download is the point
    return {CLIENT_DOWNLOAD: (time.perf_counter() - started) * 1000}


def bare_edit(
    session: requests.Session, emulator_url: str, key: str, image: bytes, mime: str
) -> dict[str, float]:
    headers = {"Authorization": f"Key {key}"}
    uri = f"data:{mime};base64,{base64.b64encode(image).decode()}"
    # The payload the gateway sends for this edit: fal's work (a PNG answer) is the same on both paths.
    payload = {"prompt": "x", "image_url": uri, "num_images": 1, "output_format": "png"}
    submitted = session.post(
        f"{emulator_url}/fal-ai/hidream-e1-1", json=payload, headers=headers, timeout=60
    ).json()
    while session.get(submitted["status_url"], headers=headers, timeout=60).json()["status"] != "COMPLETED":
        pass
    result = session.get(submitted["response_url"], headers=headers, timeout=60).json()
    return fetched(session, result["images"][0]["url"])


def gateway_edit(
    client: openai.OpenAI, session: requests.Session, image: bytes, name: str, response: str
) -> dict[str, float]:
    raw = client.images.with_raw_response.edit(
        image=(name, image),
        prompt="x",
        response_format=cast(Literal["url", "b64_json"], response),
        extra_headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    answer = raw.parse()
    assert answer.data
    phases = server_timing(raw.headers.get("server-timing", ""))
    return {**phases, **fetched(session, answer.data[0].url)} if answer.data[0].url else phases


def server_timing(header: str) -> dict[str, float]:
    phases = {}
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                phases[name] = float(value)
    return phases


def measure(args: argparse.Namespace) -> Section:
    section = Section("Overhead against the physical limit")
    chart = section.chart("overhead", "Gateway overhead over a bare client, per run", "ms")
    header = f"{'input':14} {'answer':9} {'bare p50':>9} {'gw p50':>8} {'overhead p50':>13}"
    section.say(f"{header} {'p90':>7} {'p99':>7}   (ms; {args.runs} runs after {args.warmup} warm-up)")
    reencoded = answers = 0
    with FalApart() as fal, LocalStack(environ=fal.environ, usage_plan=ROOMY, concurrency=1) as stack:
        client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=stack.api_key, max_retries=0)
        paths = Paths(client, requests.Session(), fal.environ["FAL_QUEUE_URL"], fal.environ["FAL_KEY"])
        for side in args.sizes:
            for fmt in args.formats:
                image = photo_like(side, fmt)
                case = f"{side}² {fmt:5} {len(image) / 1e6:4.1f}MB"
                if len(image) * 4 / 3 > LAMBDA_MAX_EVENT:
                    section.say(f"{case}  n/a: as base64, over Lambda's 6 MB event")
                    continue
                for response in args.responses:
                    try:
                        unchanged = side * side <= WORKING_AREA  # fal edits it at its own size
                        series = paths.series(
                            image, fmt, response, args.warmup, args.runs, unchanged=unchanged
                        )
                    except openai.BadRequestError as refused:  # e.g. a b64_json answer over 6 MB
                        section.say(f"{case} {response:9} n/a: {refused.message}")
                        continue
                    answers += args.runs if unchanged else 0
                    reencoded += series.reencoded
                    p50, p90, p99 = (percentile(series.overhead, q) for q in (0.5, 0.9, 0.99))
                    bare, gateway = statistics.median(series.bare), statistics.median(series.gateway)
                    section.say(
                        f"{case} {response:9} {bare:8.0f}  {gateway:7.0f} {p50:12.0f}  {p90:6.0f}  {p99:6.0f}"
                    )
                    section.say("   phases (ms, median): " + ", ".join(
                        f"{k} {statistics.median(v):.1f}" for k, v in series.phases.items()))  # fmt: skip
                    chart.add(f"{side}² {fmt} {response}", series.overhead)
                    if (side, fmt, response) == (1024, "png", "url"):
                        report_target(section, series, p50, p99)
    section.target("answers with an image re-encoded, of those that change nothing (up to 1024²)",
                   f"{reencoded} of {answers}", "0", reencoded == 0)  # fmt: skip
    return section


def report_target(section: Section, series: Series, p50: float, p99: float) -> None:
    phases = section.chart("phases", "Where the gateway's time goes, 1024² PNG, url (median)", "ms")
    for phase, values in series.phases.items():
        if phase != "fal-wait":
            phases.add(phase, values)
    section.target("overhead p50, 1024² PNG, url", f"{p50:.0f} ms", f"<= {TARGET_P50_MS:.0f} ms",
                   p50 <= TARGET_P50_MS)  # fmt: skip
    section.target("overhead p99, 1024² PNG, url", f"{p99:.0f} ms", f"<= {TARGET_P99_MS:.0f} ms",
                   p99 <= TARGET_P99_MS)  # fmt: skip


@dataclass
class Paths:
    """The two ways to the same edit: the gateway through the SDK, and bare to the emulator."""

    client: openai.OpenAI
    session: requests.Session
    fal_url: str
    fal_key: str

    def series(
        self, image: bytes, fmt: str, response: str, warmup: int, runs: int, *, unchanged: bool
    ) -> Series:
        """``unchanged``: the edit needs no image changed (fal works at the input's size, and
        answers in the asked format): then no re-encode may happen."""
        mime, name = f"image/{fmt}", f"in.{'png' if fmt == 'png' else 'jpg'}"
        series = Series()
        for run in range(warmup + runs):
            started = time.perf_counter()
            bare_edit(self.session, self.fal_url, self.fal_key, image, mime)
            bare = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            phases = gateway_edit(self.client, self.session, image, name, response)
            gateway = (time.perf_counter() - started) * 1000
            if run < warmup:
                continue
            series.bare.append(bare)
            series.gateway.append(gateway)
            for phase, ms in phases.items():
                series.phases[phase].append(ms)
            if unchanged:
                series.reencoded += "encode-input" in phases or "encode-output" in phases
        return series


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--formats", nargs="+", default=["png", "jpeg"])
    parser.add_argument("--responses", nargs="+", default=["url", "b64_json"])


if __name__ == "__main__":
    run_alone(__doc__, add_arguments, measure)
