"""The embedded local stack: moto's server (S3, SQS, DynamoDB, Secrets Manager), the fal emulator
unless ``FAL_KEY`` is set, the API Gateway front around the edit API's handler, and the batch
bucket, queue and ledger for the batch function (driven by ``editgate_local.batch_driver``)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from samtranslator.yaml_helper import yaml_parse
from werkzeug.serving import make_server

from editgate.adapters.jobs import UNENDED, UNENDED_INDEX, UNENDED_SINCE
from editgate.adapters.journal import PENDING, PENDING_INDEX, PENDING_SINCE
from editgate.adapters.keys import KeyRecord, KeyTable, WebhookSecrets, key_hash, new_record

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
from editgate_local.batch_driver import QueueDriver, Schedule
from editgate_local.fal_emulator import FalEmulator
from editgate_local.front import ApiFront, Gate, Handler, UsagePlan, load_handler

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"
EDIT_API = REPO_ROOT / "functions" / "edit_api" / "app.py"
BATCH_EDIT = REPO_ROOT / "functions" / "batch_edit" / "app.py"
AUTHORIZER = REPO_ROOT / "functions" / "authorizer" / "app.py"
FAL_WEBHOOK = REPO_ROOT / "functions" / "fal_webhook" / "app.py"
FAL_WEBHOOK_PATH = "/v1/fal/webhook"
KEYS_TABLE = "editgate-local-api-keys"
BUCKET = "editgate-local-results"
BATCH_BUCKET = "editgate-local-batch"
BATCH_TABLE = "editgate-local-batch-ledger"
BATCH_QUEUE = "editgate-local-batch"
BATCH_DEAD_LETTER_QUEUE = "editgate-local-batch-dlq"
# fal's webhooks queue the collect step here (template.yaml: CollectQueue, its dead-letter queue).
COLLECT_QUEUE = "editgate-local-collect"
COLLECT_DEAD_LETTER_QUEUE = "editgate-local-collect-dlq"
# As a deployment with SourceBucketName: the one other bucket batches read images from.
SOURCE_BUCKET = "editgate-local-source"
# As template.yaml: items are retried twice, then dead-lettered; visibility 6 x the timeout.
BATCH_MAX_RECEIVES = 3
IDEMPOTENCY_TABLE = "editgate-local-idempotency"
# Asynchronous jobs (template.yaml: JobsTable, its index listing a key's jobs newest first, and
# the sparse one of the jobs not ended, for the sweeper).
JOBS_TABLE = "editgate-local-jobs"
JOBS_BY_CALLER = "by_caller"
# Callback receivers of a local stack's tests listen on loopback: only here may a callback_url
# reach it (template.yaml never sets CALLBACK_ALLOWED_NETWORKS: public addresses only).
LOCAL_CALLBACK_NETWORKS = '["127.0.0.0/8"]'
FAL_KEY_SECRET = "editgate/local/fal-key"  # noqa: S105 - a secret's name, not its value
REGION = "us-east-1"
WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": REGION}


# moto and the fal emulator answer anyone who reaches them (moto holds the fal key and every AWS
# resource of the stack; the emulator's control routes inject faults and change its latency):
# they listen on loopback only, whatever address the API front is served on.
LOOPBACK = "127.0.0.1"


class MotoServer:
    """moto's server, answering one request at a time. moto's backends take no locks, so requests
    handled side by side can lose a DynamoDB ``ADD`` or hand one SQS message to two receivers;
    AWS does neither (per-item updates are atomic, duplicates rare). moto is bound by the GIL
    anyway, so one at a time costs little. Receives must not long-poll (WaitTimeSeconds=0)."""

    def __init__(self, port: int, middleware: Callable[[WsgiApp], WsgiApp] | None = None) -> None:
        """``middleware``: what wraps moto's application, if anything (a test's recorder)."""
        app = DomainDispatcherApplication(create_backend_app)
        wrapped: WsgiApp = middleware(app) if middleware else app
        lock = threading.Lock()

        def one_at_a_time(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            with lock:
                return list(wrapped(environ, start_response))

        self._server = make_server(
            LOOPBACK, port, one_at_a_time, threaded=True, request_handler=MotoRequestHandler
        )
        self.address: tuple[str, int] = self._server.server_address[:2]  # type: ignore[assignment]
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


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
        batch_timeout: float = 60.0,
        usage_plan: UsagePlan | None = None,
        moto_middleware: Callable[[WsgiApp], WsgiApp] | None = None,
    ) -> None:
        # The API front's address alone: moto and the fal emulator are always on LOOPBACK.
        self.host = host
        self.port = port
        self.api_keys = api_keys
        # Per-key limits of the front's usage plan: the template's defaults unless a test says.
        self.usage_plan = usage_plan or UsagePlan()
        self.fal_latency = fal_latency
        # The function's settings beyond the stack's own (e.g. REQUEST_DEADLINE_SECONDS).
        self.settings_env = dict(settings_env or {})
        # Execution environments of the function: how many requests it serves at once.
        self.concurrency = concurrency
        # The batch function's timeout: each item's deadline, and (x 6) the queue's visibility.
        self.batch_timeout = batch_timeout
        # What wraps moto's application, if anything (a benchmark counting the calls AWS gets).
        self.moto_middleware = moto_middleware
        self.batch_env: dict[str, str] = {}
        self._environ = os.environ if environ is None else environ
        self.real_fal_key = self._environ.get("FAL_KEY") or None
        self.emulator: FalEmulator | None = None
        self.moto: MotoServer | None = None
        self.front: ApiFront | None = None
        self.env: dict[str, str] = {}
        self.collect_queue_url = ""

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
        moto_port = free_port(LOOPBACK)
        self.moto = MotoServer(moto_port, middleware=self.moto_middleware)
        self.moto.start()
        if self.real_fal_key is None:
            self.emulator = FalEmulator(host=LOOPBACK, latency=self.fal_latency).start()
        fal_key = self.real_fal_key or (self.emulator.key if self.emulator else "")
        self.env = {
            **FAKE_AWS,
            "AWS_ENDPOINT_URL": f"http://{LOOPBACK}:{moto_port}",
            "RESULTS_BUCKET": BUCKET,
            "FAL_KEY_SECRET_NAME": FAL_KEY_SECRET,
            "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
            "API_KEYS_TABLE": KEYS_TABLE,
            "KEY_CACHE_SECONDS": "0",
            "FAL_QUEUE_URL": self.emulator.url
            if self.emulator
            else self._environ.get("FAL_QUEUE_URL", "https://queue.fal.run"),
            "POWERTOOLS_SERVICE_NAME": "editgate",
            "POWERTOOLS_METRICS_NAMESPACE": "editgate",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self._environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            "POWERTOOLS_METRICS_DISABLED": self._environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
            # Jobs: the API queues them on the batch queue (its URL once made, below) and admits
            # them with the batch function's time; the batch function runs them into the API's
            # bucket, with the journal a cancel reads (one idempotency table here for both).
            "JOBS_TABLE": JOBS_TABLE,
            "JOBS_BUCKET": BUCKET,
            "JOBS_JOURNAL_TABLE": IDEMPOTENCY_TABLE,
            "JOBS_RUN_TIMEOUT_SECONDS": str(int(self.batch_timeout)),
            "CALLBACK_ALLOWED_NETWORKS": LOCAL_CALLBACK_NETWORKS,
            **self.settings_env,
        }
        # The handler reads settings and boto3 reads its endpoint from the process environment,
        # exactly as in Lambda.
        os.environ.update(self.env)
        os.environ.pop("FAL_KEY", None)  # the function reads the key from Secrets Manager only
        self._provision(fal_key)
        webhook_env = self._webhook_environment()
        self._provision_batch()
        self.env.setdefault("JOBS_QUEUE_URL", self.batch_env["BATCH_QUEUE_URL"])
        os.environ["JOBS_QUEUE_URL"] = self.env["JOBS_QUEUE_URL"]
        environments = [load_handler(EDIT_API, environment=n) for n in range(self.concurrency)]
        webhook = load_handler(FAL_WEBHOOK, env=webhook_env)
        self.front = ApiFront(
            environments, host=self.host, port=self.port, gate=self.gate(),
            open_functions={FAL_WEBHOOK_PATH: webhook},
        ).start()  # fmt: skip
        # As template.yaml: batch items submit with the API's webhook route (the batch function
        # reads it from its environment; a worker process is given the stack's).
        self.env["FAL_WEBHOOK_URL"] = f"{self.front.url}{FAL_WEBHOOK_PATH}"
        os.environ["FAL_WEBHOOK_URL"] = self.batch_env["FAL_WEBHOOK_URL"] = self.env["FAL_WEBHOOK_URL"]
        return self

    def _webhook_environment(self) -> dict[str, str]:
        """The fal webhook function's settings: the emulator's JWKS (fal's own with a real key),
        the journal's table and the collect queue, made here with its dead-letter queue."""
        sqs = boto3.client("sqs", region_name=REGION)
        dead = sqs.create_queue(QueueName=COLLECT_DEAD_LETTER_QUEUE)["QueueUrl"]
        redrive = json.dumps(
            {"deadLetterTargetArn": _queue_arn(sqs, dead), "maxReceiveCount": BATCH_MAX_RECEIVES}
        )
        self.collect_queue_url = sqs.create_queue(
            QueueName=COLLECT_QUEUE, Attributes={"RedrivePolicy": redrive}
        )["QueueUrl"]
        jwks_url = self.emulator.jwks_url if self.emulator is not None else self._environ.get("FAL_JWKS_URL")
        jwks = {"FAL_JWKS_URL": jwks_url} if jwks_url else {}
        return {**jwks, "COLLECT_QUEUE_URL": self.collect_queue_url}

    def _provision(self, fal_key: str) -> None:
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        # As template.yaml's BatchIdempotencyTable (the local stack has one for both functions),
        # with the sparse index of fal requests whose webhook has not come.
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=IDEMPOTENCY_TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": PENDING, "AttributeType": "S"},
                {"AttributeName": PENDING_SINCE, "AttributeType": "N"},
            ],
            GlobalSecondaryIndexes=[{
                "IndexName": PENDING_INDEX,
                "KeySchema": [{"AttributeName": PENDING, "KeyType": "HASH"},
                              {"AttributeName": PENDING_SINCE, "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["edit_key", "call"]},
            }],
            BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        manager = boto3.client("secretsmanager", region_name=REGION)
        manager.create_secret(Name=FAL_KEY_SECRET, SecretString=fal_key)
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=KEYS_TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=JOBS_TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "caller", "AttributeType": "S"},
                {"AttributeName": "listed", "AttributeType": "S"},
                {"AttributeName": UNENDED, "AttributeType": "S"},
                {"AttributeName": UNENDED_SINCE, "AttributeType": "N"},
            ],
            GlobalSecondaryIndexes=[{
                "IndexName": JOBS_BY_CALLER,
                "KeySchema": [{"AttributeName": "caller", "KeyType": "HASH"},
                              {"AttributeName": "listed", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }, {
                "IndexName": UNENDED_INDEX,
                "KeySchema": [{"AttributeName": UNENDED, "KeyType": "HASH"},
                              {"AttributeName": UNENDED_SINCE, "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }],
            BillingMode="PAY_PER_REQUEST",
        )  # fmt: skip
        for index, value in enumerate(self.api_keys):
            self.add_key(f"local-{index}", key=value)

    def add_key(
        self, owner: str, *, key: str | None = None, expires_at: int | None = None
    ) -> tuple[str, KeyRecord]:
        """A key of this stack (as ``editgate keys create`` makes one, webhook secret included):
        the key, and its record."""
        key, record = new_record(owner, key=key, expires_at=expires_at)
        KeyTable(KEYS_TABLE).put(record.key_hash, record.model_dump())
        WebhookSecrets(KEYS_TABLE).rotate(record.key_id)
        return key, record

    def webhook_secret(self, key: str) -> str:
        """The webhook secret of one of this stack's keys (``editgate keys create`` shows it once)."""
        digest = key_hash(key)
        record = next(r for r in KeyTable(KEYS_TABLE).records() if r["key_hash"] == digest)
        secret = WebhookSecrets(KEYS_TABLE).get(record["key_id"])
        assert secret is not None, "every key of a local stack has a webhook secret"
        return secret

    def gate(self, usage_plan: UsagePlan | None = None) -> Gate:
        """API Gateway's authorizer and usage plan, as the template configures them."""
        authorizer = load_handler(AUTHORIZER, env={"API_KEYS_TABLE": KEYS_TABLE, "KEY_CACHE_SECONDS": "0"})
        return Gate(authorizer, usage_plan or self.usage_plan)

    def _provision_batch(self) -> None:
        """As template.yaml: the bucket notifies the queue of manifests and single images (moto
        delivers it, test event first, as S3 does), the queue dead-letters after 3 receives; the
        source bucket. The queue takes messages of 256 KiB at most, as any SQS queue does."""
        sqs = boto3.client("sqs", region_name=REGION)
        dead = sqs.create_queue(QueueName=BATCH_DEAD_LETTER_QUEUE)["QueueUrl"]
        dead_arn = _queue_arn(sqs, dead)
        redrive = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": BATCH_MAX_RECEIVES})
        queue = sqs.create_queue(
            QueueName=BATCH_QUEUE,
            Attributes={
                "RedrivePolicy": redrive,
                "VisibilityTimeout": str(int(6 * self.batch_timeout)),
                "MaximumMessageSize": str(256 * 1024),
            },
        )["QueueUrl"]
        queue_arn = _queue_arn(sqs, queue)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BATCH_BUCKET)
        s3.create_bucket(Bucket=SOURCE_BUCKET)
        rules = batch_notification_filters()
        s3.put_bucket_notification_configuration(
            Bucket=BATCH_BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {
                            "Key": {
                                "FilterRules": [
                                    {"Name": "prefix", "Value": prefix},
                                    {"Name": "suffix", "Value": suffix},
                                ]
                            }
                        },
                    }
                    for prefix, suffix in rules
                ]
            },
        )
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=BATCH_TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.batch_env = batch_environment()

    def set_batch_timeout(self, seconds: float) -> None:
        """Another batch function timeout, and the queue visibility that goes with it (6x)."""
        self.batch_timeout = seconds
        boto3.client("sqs", region_name=REGION).set_queue_attributes(
            QueueUrl=self.batch_env["BATCH_QUEUE_URL"],
            Attributes={"VisibilityTimeout": str(int(6 * seconds))},
        )

    def batch_driver(
        self, concurrency: int, settings_env: Mapping[str, str] | None = None, *, sweep_every: float = 60.0
    ) -> QueueDriver:
        """Lambda's event sources for the batch function: the batch and collect queues
        (``concurrency`` environments each) and the sweeper's schedule (every ``sweep_every`` s)."""
        return batch_driver(concurrency, self.batch_timeout, settings_env, sweep_every=sweep_every)

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


def batch_notification_filters() -> list[tuple[str, str]]:
    """The batch bucket's notification filters, (prefix, suffix) each, read from template.yaml: the
    local bucket notifies the queue of exactly what the deployed one does (case-sensitive, as S3's
    and moto's filters are)."""
    bucket = yaml_parse(TEMPLATE.read_text())["Resources"]["BatchBucket"]["Properties"]
    filters = []
    for notification in bucket["NotificationConfiguration"]["QueueConfigurations"]:
        rules = {rule["Name"]: rule["Value"] for rule in notification["Filter"]["S3Key"]["Rules"]}
        filters.append((rules["prefix"], rules["suffix"]))
    return filters


def batch_environment() -> dict[str, str]:
    """The batch function's own settings on a running local stack (``AWS_ENDPOINT_URL`` set)."""
    sqs = boto3.client("sqs", region_name=REGION)
    return {
        "RESULTS_BUCKET": BATCH_BUCKET,
        "RESULTS_PREFIX": "batches/",
        "BATCH_TABLE": BATCH_TABLE,
        "BATCH_QUEUE_URL": sqs.get_queue_url(QueueName=BATCH_QUEUE)["QueueUrl"],
        "BATCH_DEAD_LETTER_QUEUE_URL": sqs.get_queue_url(QueueName=BATCH_DEAD_LETTER_QUEUE)["QueueUrl"],
        "BATCH_MAX_RECEIVES": str(BATCH_MAX_RECEIVES),
        "SOURCE_BUCKET": SOURCE_BUCKET,
        "COLLECT_QUEUE_URL": sqs.get_queue_url(QueueName=COLLECT_QUEUE)["QueueUrl"],
        "COLLECT_DEAD_LETTER_QUEUE_URL": sqs.get_queue_url(QueueName=COLLECT_DEAD_LETTER_QUEUE)["QueueUrl"],
        "FAL_WEBHOOK_URL": os.environ.get("FAL_WEBHOOK_URL", ""),
    }


def batch_handlers(
    count: int, settings_env: Mapping[str, str] | None = None, *, first: int = 0
) -> list[Handler]:
    """The batch function, imported ``count`` times (one per execution environment, numbered
    from ``first``) with its own settings, as its deployment gives them (and ``settings_env``
    over them)."""
    env = {**batch_environment(), **(settings_env or {})}
    return [load_handler(BATCH_EDIT, environment=first + n, env=env) for n in range(count)]


def batch_driver(
    concurrency: int,
    function_timeout: float,
    settings_env: Mapping[str, str] | None = None,
    *,
    sweep_every: float = 60.0,
) -> QueueDriver:
    """Lambda's event sources for the batch function of a running local stack: the batch queue,
    the collect queue (``concurrency`` environments each, as the template's two mappings) and the
    sweeper's schedule (every ``sweep_every`` seconds, as EventBridge's rate(1 minute))."""
    sqs = boto3.client("sqs", region_name=REGION)
    env = batch_environment()
    collect_url = env["COLLECT_QUEUE_URL"]
    collect = QueueDriver(
        collect_url, _queue_arn(sqs, collect_url),
        batch_handlers(concurrency, settings_env, first=concurrency), function_timeout=function_timeout,
    )  # fmt: skip
    sweeper = batch_handlers(1, settings_env, first=2 * concurrency)[0]
    schedule = Schedule(sweeper, sweep_every, function_timeout)
    queue_url = env["BATCH_QUEUE_URL"]
    return QueueDriver(
        queue_url, _queue_arn(sqs, queue_url), batch_handlers(concurrency, settings_env),
        function_timeout=function_timeout, companions=(collect, schedule),
    )  # fmt: skip


def _queue_arn(sqs: SQSClient, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
