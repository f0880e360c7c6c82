"""Where a request's time goes, by phase, for its ``Server-Timing`` header: a phase adds its
wall time to the request being timed (a context variable, so the environments the local front
runs side by side, and the worker threads of one edit, each add to their own request)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from typing import ParamSpec, TypeVar

_current: ContextVar[dict[str, float] | None] = ContextVar("editgate_timings", default=None)
P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    """Time the phases run inside: phase name → milliseconds (summed over repeats and threads)."""
    timings: dict[str, float] = {}
    token = _current.set(timings)
    try:
        yield timings
    finally:
        _current.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        add(name, (time.perf_counter() - started) * 1000)


def add(name: str, milliseconds: float) -> None:
    timings = _current.get()
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + milliseconds


def carried(function: Callable[P, R]) -> Callable[P, R]:
    """``function`` for another thread, adding its phases to this request's timings."""
    context = copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.run(function, *args, **kwargs)

    return run


def header(timings: dict[str, float]) -> str:
    """``Server-Timing``: ``decode;dur=12.3, fal-wait;dur=812.0``."""
    return ", ".join(f"{name};dur={ms:.1f}" for name, ms in timings.items())
