"""The fal emulator in a process of its own (`editgate fal-emulator`), and the local stack pointed
at it as if it were real fal (``FAL_KEY`` and ``FAL_QUEUE_URL``): its CPU and its GIL are not the
function's, as fal's GPUs are not Lambda's. Its latency can be changed while it runs.

    with FalApart(latency=1.0) as fal, LocalStack(environ=fal.environ, ...) as stack: ...
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from types import TracebackType

import requests

from editgate_local.stack import free_port


class FalApart:
    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.url = f"http://127.0.0.1:{free_port()}"
        self.key = f"bench-{secrets.token_hex(8)}"
        # Its webhooks are signed with its own key, whose JWKS it serves.
        self.environ = {"FAL_KEY": self.key, "FAL_QUEUE_URL": self.url,
                        "FAL_JWKS_URL": f"{self.url}/.well-known/jwks.json"}  # fmt: skip
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> FalApart:
        port = self.url.rsplit(":", 1)[1]
        command = [sys.executable, "-m", "editgate_local.cli", "fal-emulator", "--port", port,
                   "--key", self.key, "--latency", str(self.latency)]  # fmt: skip
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        for line in self._process.stdout:  # it prints "ready" once it listens
            if line.strip() == "ready":
                return self
        raise RuntimeError("the fal emulator's process ended before it was ready")

    def set_latency(self, seconds: float) -> None:
        answer = requests.post(f"{self.url}/_emulator/latency", json={"seconds": seconds}, timeout=10)
        answer.raise_for_status()
        self.latency = seconds

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
