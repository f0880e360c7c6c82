"""The fal emulator in a process of its own, and the local stack pointed at it as if it were real
fal (``FAL_KEY`` and ``FAL_QUEUE_URL``): its CPU and its GIL are not the function's, as fal's GPUs
are not Lambda's. Its latency can be changed while it runs.

    with FalApart(latency=1.0) as fal, LocalStack(environ=fal.environ, ...) as stack: ...
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from types import TracebackType

from editgate_local.fal_emulator import FalEmulator


class FalApart:
    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.environ: dict[str, str] = {}
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> FalApart:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--latency", str(self.latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        url, key = self._answer().split()  # its first line, once it is listening
        self.environ = {"FAL_KEY": key, "FAL_QUEUE_URL": url}
        return self

    def set_latency(self, seconds: float) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(f"{seconds}\n")
        self._process.stdin.flush()
        self._answer()
        self.latency = seconds

    def _answer(self) -> str:
        assert self._process is not None
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the fal emulator's process ended")
        return line.strip()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)


def serve(latency: float) -> None:
    emulator = FalEmulator(latency=latency).start()
    print(emulator.url, emulator.key, flush=True)
    for line in sys.stdin:  # one latency in seconds per line, acknowledged
        emulator.latency = float(line)
        print("ok", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.0)
    serve(parser.parse_args().latency)
