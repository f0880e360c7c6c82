"""Gateway overhead against the physical limit: the same edit straight to the fal emulator with a
bare ``requests`` client (submit → status, polled continuously → result → image) and through the
gateway with the official openai SDK (the answer's URL downloaded), interleaved, in one run. The
emulator runs in its own process, as fal would. At fal latency 0 what remains is what each path
adds; at fal's real run times (3 s, 10 s) it also shows how late the gateway learns that fal has
finished, which the bare client, polling without pause, learns at once.

    .venv/bin/python bench/overhead.py [--runs 20] [--warmup 3] [--sizes 512 1024 2048]
                                       [--formats png jpeg] [--responses url b64_json]
                                       [--latencies 0 3 10]

At latency 0, every size, format and answer; at each other latency, 1024² PNG with a url answer,
``--runs`` samples of each path, several under way at once (staggered, so that no two start or
finish together: one every 1.5 s at most) so that 20 samples at 10 s take under two minutes.
There the bare client sleeps through fal's known run time less 0.25 s, then polls without pause:
it learns of completion as soon as a client polling all along would, without loading the shared
CPU for seconds.

Prints p50/p90/p99 of each path and of the difference, the gateway's phases (its Server-Timing
header, medians), how many answers re-encoded an image (Server-Timing's encode-input and
encode-output phases), and PASS/FAIL for the targets: at 1024² PNG, url, overhead p50 <= 80 ms
and p99 <= 200 ms at every latency; no image re-encoded when nothing changes (same format and
size in and out). A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import statistics
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, cast

import openai
import requests
from fal_apart import FalApart
from PIL import Image, ImageFilter
from report import ROOMY, Chart, Section, percentile, run_alone

from editgate_local.fal_emulator import WORKING_AREA
from editgate_local.front import LAMBDA_MAX_EVENT
from editgate_local.stack import LocalStack

TARGET_P50_MS, TARGET_P99_MS = 80.0, 200.0
# The client's download of the answer's image, timed apart from the phases the gateway reports.
CLIENT_DOWNLOAD = "client-download"
# At fal latencies above 0: samples under way at once start or finish at most this often.
SAMPLE_GAP_SECONDS = 1.5
# The bare client starts polling this long before fal's known run time ends.
POLL_LEAD_SECONDS = 0.25


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
    session: requests.Session, emulator_url: str, key: str, image: bytes, mime: str, latency: float = 0.0
) -> dict[str, float]:
    headers = {"Authorization": f"Key {key}"}
    uri = f"data:{mime};base64,{base64.b64encode(image).decode()}"
    # The payload the gateway sends for this edit: fal's work (a PNG answer) is the same on both paths.
    payload = {"prompt": "x", "image_url": uri, "num_images": 1, "output_format": "png"}
    submitted = session.post(
        f"{emulator_url}/fal-ai/hidream-e1-1", json=payload, headers=headers, timeout=60
    ).json()
    time.sleep(max(0.0, latency - POLL_LEAD_SECONDS))  # fal's clock started before its answer came
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
    at_once = max(map(samples_at_once, args.latencies))
    with FalApart() as fal, LocalStack(environ=fal.environ, usage_plan=ROOMY, concurrency=at_once) as stack:
        client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=stack.api_key, max_retries=0)
        paths = Paths(client, requests.Session(), fal.environ["FAL_QUEUE_URL"], fal.environ["FAL_KEY"])
        paths.warm(stack.concurrency)
        by_latency: dict[float, Series] = {}
        for latency in args.latencies:
            fal.set_latency(latency)
            if latency == 0:
                by_latency[latency] = every_case(section, chart, paths, args)
                continue
            image = photo_like(1024, "png")
            by_latency[latency] = paths.staggered(image, latency, args.runs, samples_at_once(latency))
            chart.add(f"1024² png url, fal {latency:g} s", by_latency[latency].overhead)
    report_latencies(section, by_latency, args.runs)
    return section


def samples_at_once(latency: float) -> int:
    """How many samples may be under way together at this fal latency (their edits start and
    finish ``SAMPLE_GAP_SECONDS`` apart at least); 1 at latency 0."""
    return max(1, int(latency / SAMPLE_GAP_SECONDS))


def every_case(section: Section, chart: Chart, paths: Paths, args: argparse.Namespace) -> Series:
    """At fal latency 0: each size, format and answer, one run after the other; the 1024² PNG url
    series is returned (the targets are set on it, beside the other latencies')."""
    header = f"{'input':14} {'answer':9} {'bare p50':>9} {'gw p50':>8} {'overhead p50':>13}"
    section.say(f"At fal latency 0 ({args.runs} runs after {args.warmup} warm-up, one at a time):")
    section.say(f"{header} {'p90':>7} {'p99':>7}   (ms)")
    reencoded = answers = 0
    target = Series()
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
                    series = paths.series(image, fmt, response, args.warmup, args.runs, unchanged=unchanged)
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
                    target = series
                    phases_chart(section, series)
    section.target("answers with an image re-encoded, of those that change nothing (up to 1024²)",
                   f"{reencoded} of {answers}", "0", reencoded == 0)  # fmt: skip
    return target


def phases_chart(section: Section, series: Series) -> None:
    phases = section.chart("phases", "Where the gateway's time goes, 1024² PNG, url (median)", "ms")
    for phase, values in series.phases.items():
        if phase != "fal-wait":
            phases.add(phase, values)


def report_latencies(section: Section, by_latency: dict[float, Series], runs: int) -> None:
    """The 1024² PNG url edit at each fal latency, side by side, and the targets at each."""
    section.say()
    section.say(f"1024² PNG, url answer, by fal latency (ms; {runs} runs each; at 0 one at a time, above")
    section.say(f"it several at once, starting {SAMPLE_GAP_SECONDS} s apart at least):")
    section.say(f"{'fal latency':>11} {'at once':>7} {'bare p50':>9} {'gw p50':>8} {'gw/bare':>7} "
                f"{'overhead p50':>13} {'p90':>6} {'p99':>6} {'fal-wait - latency p50':>23}")  # fmt: skip
    for latency, series in by_latency.items():
        if not series.gateway:
            continue  # 1024² PNG url was not among the cases asked for
        p50, p90, p99 = (percentile(series.overhead, q) for q in (0.5, 0.9, 0.99))
        bare, gateway = statistics.median(series.bare), statistics.median(series.gateway)
        late = statistics.median(series.phases["fal-wait"]) - latency * 1000
        section.say(f"{latency:>10g}s {samples_at_once(latency):>7} {bare:9.0f} {gateway:8.0f} "
                    f"{gateway / bare:7.3f} {p50:13.0f} {p90:6.0f} {p99:6.0f} {late:23.0f}")  # fmt: skip
    for latency, series in by_latency.items():
        if not series.gateway:
            continue
        p50, p99 = percentile(series.overhead, 0.5), percentile(series.overhead, 0.99)
        case = f"1024² PNG, url, fal latency {latency:g} s"
        section.target(f"overhead p50, {case}", f"{p50:.0f} ms", f"<= {TARGET_P50_MS:.0f} ms",
                       p50 <= TARGET_P50_MS)  # fmt: skip
        section.target(f"overhead p99, {case}", f"{p99:.0f} ms", f"<= {TARGET_P99_MS:.0f} ms",
                       p99 <= TARGET_P99_MS)  # fmt: skip


@dataclass
class Paths:
    """The two ways to the same edit: the gateway through the SDK, and bare to the emulator."""

    client: openai.OpenAI
    session: requests.Session
    fal_url: str
    fal_key: str

    def warm(self, environments: int) -> None:
        """One edit for each of the function's execution environments (the front hands requests
        to them in turn), so that no measured run is an environment's first."""
        for _ in range(environments):
            gateway_edit(self.client, self.session, photo_like(256, "png"), "warm.png", "url")

    def staggered(self, image: bytes, latency: float, runs: int, at_once: int) -> Series:
        """``runs`` samples at fal latency ``latency`` (1024² PNG, url): each a bare edit then the
        gateway's, ``at_once`` samples under way together. Each edit lasts about ``latency``, so
        starts spread evenly over one latency keep every start and finish apart from the others'."""
        series, lock, numbers = Series(), threading.Lock(), itertools.count()
        at_once = min(at_once, runs)

        def worker(index: int) -> None:
            time.sleep(index * latency / at_once)
            session = requests.Session()
            while next(numbers) < runs:
                started = time.perf_counter()
                bare_edit(session, self.fal_url, self.fal_key, image, "image/png", latency)
                bare = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                phases = gateway_edit(self.client, session, image, "in.png", "url")
                gateway = (time.perf_counter() - started) * 1000
                with lock:
                    series.bare.append(bare)
                    series.gateway.append(gateway)
                    for phase, ms in phases.items():
                        series.phases[phase].append(ms)

        with ThreadPoolExecutor(max_workers=at_once) as pool:
            list(pool.map(worker, range(at_once)))
        return series

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
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.0, 3.0, 10.0])


if __name__ == "__main__":
    run_alone(__doc__, add_arguments, measure)
