"""The embedded local stack: moto's server (S3, Secrets Manager, …), the fal emulator unless
``FAL_KEY`` is set, and the API Gateway front around the real handler."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import boto3
from moto.server import ThreadedMotoServer

from editgate_local.fal_emulator import FalEmulator
from editgate_local.front import ApiFront, load_handler

REPO_ROOT = Path(__file__).resolve().parents[2]
EDIT_API = REPO_ROOT / "functions" / "edit_api" / "app.py"
BUCKET = "editgate-local-results"
IDEMPOTENCY_TABLE = "editgate-local-idempotency"
FAL_KEY_SECRET = "editgate/local/fal-key"  # noqa: S105 - a secret's name, not its value
API_KEYS_SECRET = "editgate/local/api-keys"  # noqa: S105
REGION = "us-east-1"
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LocalStack:
    """Start with ``with LocalStack() as stack:``; ``stack.base_url`` is the API, ``stack.api_key`` a key."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: tuple[str, ...] = ("sk-local",),
        fal_latency: float = 0.0,
        environ: Mapping[str, str] | None = None,
        settings_env: Mapping[str, str] | None = None,
        concurrency: int = 4,
    ) -> None:
        self.host = host
        self.port = port
        self.api_keys = api_keys
        self.fal_latency = fal_latency
        # The function's settings beyond the stack's own (e.g. REQUEST_DEADLINE_SECONDS).
        self.settings_env = dict(settings_env or {})
        # Execution environments of the function: how many requests it serves at once.
        self.concurrency = concurrency
        self._environ = os.environ if environ is None else environ
        self.real_fal_key = self._environ.get("FAL_KEY") or None
        self.emulator: FalEmulator | None = None
        self.moto: ThreadedMotoServer | None = None
        self.front: ApiFront | None = None
        self.env: dict[str, str] = {}

    @property
    def api_key(self) -> str:
        return self.api_keys[0]

    @property
    def base_url(self) -> str:
        assert self.front is not None, "the stack is not started"
        return self.front.url

    @property
    def fal_description(self) -> str:
        if self.emulator is not None:
            return (
                f"fal emulator at {self.emulator.url} (FAL_KEY is not set; no real fal calls, nothing billed)"
            )
        return f"REAL fal at {self.env['FAL_QUEUE_URL']} (FAL_KEY is set: edits are billed to that key)"

    def start(self) -> LocalStack:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        moto_port = free_port(self.host)
        self.moto = ThreadedMotoServer(ip_address=self.host, port=moto_port, verbose=False)
        self.moto.start()
        if self.real_fal_key is None:
            self.emulator = FalEmulator(host=self.host, latency=self.fal_latency).start()
        fal_key = self.real_fal_key or (self.emulator.key if self.emulator else "")
        self.env = {
            **FAKE_AWS,
            "AWS_ENDPOINT_URL": f"http://{self.host}:{moto_port}",
            "RESULTS_BUCKET": BUCKET,
            "FAL_KEY_SECRET_NAME": FAL_KEY_SECRET,
            "API_KEYS_SECRET_NAME": API_KEYS_SECRET,
            "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
            "FAL_QUEUE_URL": self.emulator.url
            if self.emulator
            else self._environ.get("FAL_QUEUE_URL", "https://queue.fal.run"),
            "POWERTOOLS_SERVICE_NAME": "editgate",
            "POWERTOOLS_METRICS_NAMESPACE": "editgate",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self._environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            "POWERTOOLS_METRICS_DISABLED": self._environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
            **self.settings_env,
        }
        # The handler reads settings and boto3 reads its endpoint from the process environment,
        # exactly as in Lambda.
        os.environ.update(self.env)
        os.environ.pop("FAL_KEY", None)  # the function reads the key from Secrets Manager only
        self._provision(fal_key)
        environments = [load_handler(EDIT_API, environment=n) for n in range(self.concurrency)]
        self.front = ApiFront(environments, host=self.host, port=self.port).start()
        return self

    def _provision(self, fal_key: str) -> None:
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=IDEMPOTENCY_TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        manager = boto3.client("secretsmanager", region_name=REGION)
        manager.create_secret(Name=FAL_KEY_SECRET, SecretString=fal_key)
        manager.create_secret(Name=API_KEYS_SECRET, SecretString=",".join(self.api_keys))

    def stop(self) -> None:
        for service in (self.front, self.emulator, self.moto):
            if service is not None:
                service.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
