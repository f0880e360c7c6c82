"""moto's server in a process of its own, for the least-privilege tests: moto checks IAM for the
whole process (``INITIAL_NO_AUTH_ACTION_COUNT``), which the session's stack must not. It starts
without checks (resources are made first), and ``POST /moto-api/reset-auth`` with ``0`` turns them
on. Every signed request is recorded with its caller's access key and moto's answer:
``GET /_recorded`` lists them, ``DELETE /_recorded`` forgets them.

Run as ``python -m tests.integration.iam_moto``: it prints its port, then ``ready``."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from editgate_local.stack import MotoServer, WsgiApp

RECORDED = "/_recorded"
_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/")
# The services whose requests carry their parameters in the body (JSON or a form), kept for the
# IAM simulator; S3's bodies are the objects, never read here.
_PARAMETERS_IN_BODY = ("dynamodb", "secretsmanager", "sqs", "cloudformation", "apigateway")


class Recorder:
    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == RECORDED:
            return self._recorded(environ, start_response)
        found = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if found is None:  # unsigned: moto's own routes, presigned URLs
            return self._app(environ, start_response)
        access_key, _, service = found.groups()
        call: dict[str, Any] = {
            "access_key": access_key,
            "service": service,
            "method": environ["REQUEST_METHOD"],
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING", ""),
            "target": environ.get("HTTP_X_AMZ_TARGET"),
        }
        if service in _PARAMETERS_IN_BODY:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            call["params"] = _parameters(body, environ.get("CONTENT_TYPE", ""))
        status: list[str] = []

        def recording_start_response(line: str, headers: Any, *rest: Any) -> Any:
            status.append(line)
            return start_response(line, headers, *rest)

        answer = list(self._app(environ, recording_start_response))
        head = b"".join(answer)[:4096]
        call["status"] = int(status[0].split()[0]) if status else 0
        call["denied"] = call["status"] == 403 or b"AccessDenied" in head
        with self._lock:
            self._calls.append(call)
        return answer

    def _recorded(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._lock:
            body = json.dumps(self._calls).encode()
            if environ["REQUEST_METHOD"] == "DELETE":
                self._calls.clear()
        start_response("200 OK", [("content-type", "application/json"), ("content-length", str(len(body)))])
        return [body]


def _parameters(body: bytes, content_type: str) -> Any:
    if not body:
        return {}
    if "json" in content_type:
        return json.loads(body)
    return {name: values[0] for name, values in parse_qs(body.decode()).items()}


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = MotoServer(0, middleware=Recorder)
    print(server.address[1], flush=True)
    server.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
