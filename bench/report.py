"""What every benchmark reports: its lines (printed as they come), its targets with PASS/FAIL,
and its charts; `bench/run.py` gathers them into docs/benchmarks.md and PNG charts."""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NoReturn

from PIL import Image, ImageDraw, ImageFont

from editgate_local.front import UsagePlan

# Benchmarks send many requests quickly: the local usage plan must not be what they measure.
ROOMY = UsagePlan(rate=1e6, burst=10**6, daily_quota=10**9)


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    limit: str
    passed: bool


@dataclass(frozen=True)
class Bar:
    label: str
    median: float
    low: float
    high: float


@dataclass
class Chart:
    """Horizontal bars, each a median with a min-max whisker."""

    name: str  # the PNG's file stem under docs/bench/
    title: str
    unit: str
    bars: list[Bar] = field(default_factory=list)

    def add(self, label: str, values: Sequence[float]) -> None:
        self.bars.append(Bar(label, statistics.median(values), min(values), max(values)))


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def target(self, name: str, measured: str, limit: str, passed: bool) -> None:
        self.targets.append(Target(name, measured, limit, passed))
        self.say(f"{'PASS' if passed else 'FAIL'}  {name}: {measured} (target {limit})")

    def chart(self, name: str, title: str, unit: str) -> Chart:
        self.charts.append(Chart(name, title, unit))
        return self.charts[-1]

    @property
    def passed(self) -> bool:
        return all(target.passed for target in self.targets)


def spread(values: Sequence[float], unit: str = "", scale: float = 1.0, digits: int = 0) -> str:
    """'median (min-max)' of repeated runs."""

    def shown(value: float) -> str:
        return f"{value * scale:,.{digits}f}"

    return f"{shown(statistics.median(values))}{unit} ({shown(min(values))}-{shown(max(values))})"


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_alone(
    description: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    measure: Callable[[argparse.Namespace], Section],
) -> NoReturn:
    """A benchmark run on its own: its arguments, its report, exit 1 if a target failed."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=description, formatter_class=formatter)
    add_arguments(parser)
    parser.add_argument("--report", type=Path, help="also write the report here, as JSON (bench/run.py)")
    args = parser.parse_args()
    section = measure(args)
    if args.report:
        args.report.write_text(json.dumps(asdict(section)))
    raise SystemExit(0 if section.passed else 1)


def load(path: Path) -> Section:
    """A report that ``--report`` wrote."""
    data = json.loads(path.read_text())
    charts = [
        Chart(c["name"], c["title"], c["unit"], [Bar(**bar) for bar in c["bars"]]) for c in data["charts"]
    ]
    return Section(data["title"], data["lines"], [Target(**t) for t in data["targets"]], charts)


def draw(chart: Chart, path: Path) -> None:
    """The chart as a PNG, drawn with Pillow (no plotting library in the project). Bars start at
    zero; a whisker may reach below it (an overhead's fastest run can beat the bare client's)."""
    font = ImageFont.load_default(size=15)
    labels = [plain(bar.label) for bar in chart.bars]
    label_width = max(int(font.getlength(label)) for label in labels) + 20
    plot_width, row, top = 560, 30, 44
    width, height = label_width + plot_width + 110, top + row * len(chart.bars) + 36
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    pen.text((10, 10), plain(f"{chart.title} ({chart.unit})"), fill="black", font=font)
    lowest = min(0.0, *(bar.low for bar in chart.bars))
    scale = plot_width / max(max(bar.high for bar in chart.bars) - lowest, 1e-9)
    zero = label_width - lowest * scale

    def x(value: float) -> float:
        return zero + value * scale

    for index, (bar, label) in enumerate(zip(chart.bars, labels, strict=True)):
        y = top + index * row
        mid = y + row // 2
        pen.text((10, y + 6), label, fill="black", font=font)
        pen.rectangle(
            (min(zero, x(bar.median)), y + 4, max(zero, x(bar.median)), y + row - 6), fill=(70, 120, 200)
        )
        pen.line((x(bar.low), mid, x(bar.high), mid), fill="black", width=2)
        for end in (bar.low, bar.high):
            pen.line((x(end), mid - 6, x(end), mid + 6), fill="black", width=2)
        pen.text((x(bar.high) + 8, y + 6), f"{bar.median:,.3g}", fill="black", font=font)
    pen.line((zero, top - 4, zero, height - 30), fill="gray")
    note = "bars: median; whiskers: min-max of the runs"
    pen.text((label_width, height - 26), note, fill="gray", font=font)
    image.save(path)


def plain(text: str) -> str:
    """Pillow's built-in font has no superscript two: 1024² is written 1024x1024."""
    return re.sub(r"(\d+)²", r"\1x\1", text)
