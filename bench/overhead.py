"""Gateway overhead against the physical limit: the same edit straight to the fal emulator with a
bare ``requests`` client (submit → status → result → image) and through the gateway with the
official openai SDK (the answer's URL downloaded), interleaved, in one run. The emulator answers
with latency L (default 0): what remains is what each path adds.

    .venv/bin/python bench/overhead.py [--runs 20] [--warmup 3] [--sizes 512 1024 2048]
                                       [--formats png jpeg] [--responses url b64_json]

Prints p50/p90/p99 of each path and of the difference, the gateway's phases (its Server-Timing
header, medians), and PASS/FAIL for the issue's target at 1024² PNG, url: overhead p50 <= 80 ms
and p99 <= 200 ms. A benchmark, not a test: `make test` does not run it.
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
from PIL import Image, ImageFilter

from editgate_local.front import LAMBDA_MAX_EVENT, UsagePlan
from editgate_local.stack import LocalStack

TARGET_P50_MS, TARGET_P99_MS = 80.0, 200.0


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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Series:
    bare: list[float] = field(default_factory=list)
    gateway: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def bare_edit(session: requests.Session, emulator_url: str, key: str, image: bytes, mime: str) -> None:
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
    session.get(result["images"][0]["url"], timeout=60).content  # noqa: B018 - the download is the point


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
    if answer.data[0].url:
        session.get(answer.data[0].url, timeout=60).content  # noqa: B018
    return server_timing(raw.headers.get("server-timing", ""))


def server_timing(header: str) -> dict[str, float]:
    phases = {}
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                phases[name] = float(value)
    return phases


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--formats", nargs="+", default=["png", "jpeg"])
    parser.add_argument("--responses", nargs="+", default=["url", "b64_json"])
    args = parser.parse_args()
    roomy = UsagePlan(rate=1e6, burst=10**6, daily_quota=10**9)
    failed = False
    with LocalStack(environ={}, usage_plan=roomy, concurrency=1) as stack:
        assert stack.emulator is not None
        client = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key=stack.api_key, max_retries=0)
        session = requests.Session()
        header = f"{'input':14} {'answer':9} {'bare p50':>9} {'gw p50':>8} {'overhead p50':>13}"
        print(f"{header} {'p90':>7} {'p99':>7}")
        for side in args.sizes:
            for fmt in args.formats:
                image = photo_like(side, fmt)
                mime, name = f"image/{fmt}", f"in.{'png' if fmt == 'png' else 'jpg'}"
                if len(image) * 4 / 3 > LAMBDA_MAX_EVENT:
                    print(
                        f"{side}² {fmt:5} {len(image) / 1e6:4.1f}MB  n/a: as base64, over Lambda's 6 MB event"
                    )
                    continue
                for response in args.responses:
                    series = Series()
                    for run in range(args.warmup + args.runs):
                        started = time.perf_counter()
                        bare_edit(session, stack.emulator.url, stack.emulator.key, image, mime)
                        bare = (time.perf_counter() - started) * 1000
                        started = time.perf_counter()
                        phases = gateway_edit(client, session, image, name, response)
                        gateway = (time.perf_counter() - started) * 1000
                        if run >= args.warmup:
                            series.bare.append(bare)
                            series.gateway.append(gateway)
                            for phase, ms in phases.items():
                                series.phases[phase].append(ms)
                    overhead = [g - b for g, b in zip(series.gateway, series.bare, strict=True)]
                    bare_p50, gateway_p50 = statistics.median(series.bare), statistics.median(series.gateway)
                    p50, p90, p99 = (
                        statistics.median(overhead),
                        percentile(overhead, 0.9),
                        percentile(overhead, 0.99),
                    )
                    line = f"{side}² {fmt:5} {len(image) / 1e6:4.1f}MB {response:9} {bare_p50:8.0f}  "
                    line += f"{gateway_p50:7.0f} {p50:12.0f}  {p90:6.0f}  {p99:6.0f}"
                    if side == 1024 and fmt == "png" and response == "url":
                        ok = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
                        failed |= not ok
                        verdict = "PASS" if ok else "FAIL"
                        line += f"   target p50<={TARGET_P50_MS:.0f} p99<={TARGET_P99_MS:.0f}: {verdict}"
                    print(line, flush=True)
                    if series.phases:
                        print("   phases (ms, median): " + ", ".join(
                            f"{k} {statistics.median(v):.1f}" for k, v in series.phases.items()))  # fmt: skip
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
