"""Where the admission constants come from: seconds per megapixel to finish (resize a 1024²
provider image and encode the answer) for each output format at 1024², 2048² and 4096², on one
CPU as a 1,769 MB Lambda has. Each figure is the median of RUNS. PASS when the constant in
``editgate.normalize.FINISH_SECONDS_PER_MEGAPIXEL`` is at least the slowest measured rate, so the
HTTP API never admits an edit whose finishing cannot end in time.

    .venv/bin/python bench/finish_costs.py [--runs 3] [--sides 1024 2048 4096]

A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from PIL import Image, ImageFilter

from editgate import images
from editgate.images import OUTPUT_FORMATS, Size
from editgate.normalize import FINISH_SECONDS_PER_MEGAPIXEL


def provider_image() -> bytes:
    """A photo-like 1024² PNG, as fal answers: smoothed noise, differently in each channel."""
    noise = Image.effect_noise((1024, 1024), 64).filter(ImageFilter.GaussianBlur(2))
    rgb = Image.merge("RGB", [noise, noise.rotate(90), noise.rotate(180)])
    return images.encode(rgb, "png")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sides", type=int, nargs="+", default=[1024, 2048, 4096])
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one CPU, as the function has
    data = provider_image()
    print(f"{'format':7} " + " ".join(f"{f'{s}² s/MP':>12}" for s in args.sides) + "   constant  verdict")
    failed = False
    for fmt in OUTPUT_FORMATS:
        rates = []
        for side in args.sides:
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                images.finish(data, Size(side, side), fmt, compression=None)
                times.append(time.perf_counter() - started)
            rates.append(statistics.median(times) / (side * side / 1e6))
        constant = FINISH_SECONDS_PER_MEGAPIXEL[fmt]
        ok = constant >= max(rates)
        failed |= not ok
        cells = " ".join(f"{r:12.3f}" for r in rates)
        print(f"{fmt:7} {cells}   {constant:8.2f}  {'PASS' if ok else 'FAIL'}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
