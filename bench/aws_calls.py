"""The AWS calls a batch item costs, by service and action, and how soon a big manifest's first
item is queued, on the local stack.

    .venv/bin/python bench/aws_calls.py [--items 50] [--lines 1000] [--concurrency 10]
                                        [--latency 0.5] [--runs 3] [--timeout 60]

Counted at the AWS boundary, so that the same bench measures the batch code before and after a
change: a WSGI middleware around the local stack's moto server sees every request of the batch
function's execution environments (each its own process, as in bench/batch.py, each with an app
id of its own in its user agent: AWS_SDK_UA_APP_ID) and names it by service and action: DynamoDB
and SQS by their ``X-Amz-Target``, S3 by method, path and query, and S3 keys by the bucket
layout the README documents (inputs, results, item records, summary). The bench's own calls
(uploads, reading the summary) sign with another key and are not counted. Each call is put down
to the message its environment was handling, the one its last ReceiveMessage with a message
returned: an item's (``"kind": "item"``, which submits its fal requests, or ``"kind":
"collect"``, which collects one once fal's webhook has told of its end) or the fan-out of a
manifest (S3's notification, and any other message the fan-out queues for itself). fal's
webhooks reach the fal webhook function in the local front, which signs with the stack's own
key: its calls are the items' too. So an item's path is its submit, its webhook and its collect.
Receives that return nothing are Lambda's event source polling an empty queue: shown, not
counted per item. Calls are counted, not capacity units (a BatchWriteItem of 25 items is one
call; DynamoDB bills 25 writes).

1. Calls per item: a batch of --items photos (768x512 PNG) run to its finished summary with the
   fal emulator's latency --latency and --concurrency environments; every call of the
   environments from the manifest's upload until the queue is empty (fan-out, items, summaries,
   the event source's receives and deletes), divided by the items that succeeded.
   Targets: <= 1 DynamoDB read, <= 1 DynamoDB transaction and <= 2 S3 puts per item.
2. Time to queue: a manifest of --lines items (the same photos in turn) after a defaults line, as
   `editgate batch run` writes one, with the same latency and environments, timed from the start
   of its upload to the first SendMessage(Batch) that carries an item, and to the one that
   carries the last (within --timeout). Target: first item queued <= 2 s. The fan-out runs in an
   environment like any other message, beside the items it has already queued (as on Lambda), so
   every environment runs. Also timed: the first item's record written (the first item done).
   Once the whole manifest is queued, its fan-out done and an item done, the run stops (editing
   every item would measure step 1 again, for minutes): its environments are stopped and the
   queue purged. Each run starts new environments: the manifest reaches a function whose
   environments have started but handled nothing yet. The fan-out's calls are shown too.

On 2 cores the local stand-ins are the limit: the counts are the point, the times are this
machine's. A benchmark, not a test: `make test` does not run it.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import boto3
from batch import environments, finished_summary, photos, upload
from report import Section, run_alone, spread

from editgate_local.stack import (
    BATCH_TABLE,
    FAKE_AWS,
    IDEMPOTENCY_TABLE,
    KEYS_TABLE,
    REGION,
    LocalStack,
    WsgiApp,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

# Who signs a request: the bench itself (not counted), or the batch function's environment n.
BENCH_KEY = "bench"
ENVIRONMENT_KEY = "environment-{}"
WEBHOOK_KEY = FAKE_AWS["AWS_ACCESS_KEY_ID"]  # the fal webhook function's, in the local front
_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/")  # key/date/region/service
_APP_ID = re.compile(r"\bapp/(environment-\d+)")  # botocore's user agent: AWS_SDK_UA_APP_ID
SERVICES = {"dynamodb": "DynamoDB", "s3": "S3", "sqs": "SQS", "secretsmanager": "Secrets Manager"}
TABLES = {BATCH_TABLE: "ledger", IDEMPOTENCY_TABLE: "idempotency", KEYS_TABLE: "keys"}
# The batch bucket's layout, as the README documents it.
LAYOUT = (
    (re.compile(r"^incoming/"), "inputs"),
    (re.compile(r"^batches/[^/]+/results/"), "results"),
    (re.compile(r"^batches/[^/]+/items/"), "item records"),
    (re.compile(r"^batches/[^/]+/summary\.json$"), "summary"),
)
DYNAMODB_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
DYNAMODB_TRANSACTIONS = frozenset({"TransactWriteItems"})
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})
S3_PUTS = frozenset({"PutObject", "CopyObject", "UploadPart"})
FAN_OUT, ITEM, UNATTRIBUTED = "fan-out", "item", "unattributed"
EMPTY_RECEIVE = "SQS ReceiveMessage (empty)"
ITEM_RECORD = "S3 PutObject (item records)"  # an item's record written: that item is done
TARGETS = {"DynamoDB reads": 1, "DynamoDB transactions": 1, "S3 puts": 2}
# This bench's figures on main at 099a224 (before issue 16 was finished, items waited on fal),
# all calls per succeeded item of the 50-item batch: recorded, not measured in this run.
BEFORE = {"DynamoDB reads": 2.10, "DynamoDB transactions": 1.04, "S3 puts": 2.06}
# And on main at 783e7f9 (items submit with fal's webhook; the collect step read the journal again
# and each fal request's lookup was written in a transaction with the journal), the item's path
# (submit, webhook, collect) as this bench counts it now.
BEFORE_WEBHOOKS = {"DynamoDB reads": 2.00, "DynamoDB transactions": 2.00, "S3 puts": 2.00}

FIRST_ITEM_TARGET = 2.0


@dataclass(frozen=True)
class Call:
    """One request AWS got."""

    at: float  # time.monotonic() when it was answered
    service: str  # "DynamoDB", "S3", "SQS", ...
    action: str  # "GetItem", "PutObject", "SendMessageBatch", ...
    where: str  # the table, the part of the bucket's layout, or what a message carried ("" if none)
    work: str  # the message its environment was handling: FAN_OUT, ITEM or UNATTRIBUTED
    refused: bool  # answered with an error (a condition that failed, a missing key...)
    # For the batch as a whole, not for the item being handled: its summary written (and the
    # counters read for it), marked finished, or the finishing settle's second try.
    per_batch: bool = False

    @property
    def name(self) -> str:
        return f"{self.service} {self.action}" + (f" ({self.where})" if self.where else "")


# The groups of calls the targets speak of.
GROUPS: tuple[tuple[str, Callable[[Call], bool]], ...] = (
    ("DynamoDB reads", lambda c: c.service == "DynamoDB" and c.action in DYNAMODB_READS),
    ("DynamoDB transactions", lambda c: c.service == "DynamoDB" and c.action in DYNAMODB_TRANSACTIONS),
    ("DynamoDB other writes", lambda c: c.service == "DynamoDB" and c.action in DYNAMODB_WRITES),
    ("S3 puts", lambda c: c.service == "S3" and c.action in S3_PUTS),
    ("S3 gets", lambda c: c.service == "S3" and c.action == "GetObject"),
    ("S3 heads", lambda c: c.service == "S3" and c.action == "HeadObject"),
    ("SQS sends", lambda c: c.service == "SQS" and c.action.startswith("SendMessage")),
    ("SQS receives", lambda c: c.service == "SQS" and c.action == "ReceiveMessage"),
    ("SQS deletes", lambda c: c.service == "SQS" and c.action.startswith("DeleteMessage")),
)


def by_group(calls: Iterable[Call]) -> dict[str, int]:
    counted = Counter(name for call in calls for name, belongs in GROUPS if belongs(call))
    return {name: counted[name] for name, _ in GROUPS}


class CallRecorder:
    """A WSGI middleware around moto's application: every signed request but the bench's own,
    as a ``Call``, and when each item message was queued. It reads the JSON protocols' bodies
    (DynamoDB's, SQS's) and passes them on unchanged; S3's bodies are the objects, never read."""

    def __init__(self) -> None:
        self._app: WsgiApp | None = None
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._items_queued: list[float] = []
        self._first: dict[str, float] = {}  # call name -> when the first such call was answered
        self._work: dict[str, str] = {}  # access key id -> what its environment is handling

    def wrap(self, app: WsgiApp) -> WsgiApp:
        """For ``LocalStack(moto_middleware=...)``."""
        self._app = app
        return self

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._items_queued.clear()
            self._first.clear()
            self._work.clear()

    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def items_queued(self) -> list[float]:
        """When each item message was sent (time.monotonic()), in order."""
        with self._lock:
            return list(self._items_queued)

    def first(self, name: str) -> float | None:
        """When the first call of that name was answered (time.monotonic()), if there was one."""
        with self._lock:
            return self._first.get(name)

    def handling(self, work: str) -> bool:
        """Whether some environment is handling a message of that work."""
        with self._lock:
            return work in self._work.values()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        assert self._app is not None, "wrap moto's application first"
        found = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if found is None or found[1] == BENCH_KEY:  # unsigned (moto's own routes), or the bench's
            return self._app(environ, start_response)
        app = _APP_ID.search(environ.get("HTTP_USER_AGENT", ""))
        caller, service = (app[1] if app else found[1]), found[2]
        body = b""
        if service != "s3":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []

        def recording_start_response(line: str, headers: Any, *rest: Any) -> Any:
            status.append(line)
            return start_response(line, headers, *rest)

        answer = list(self._app(environ, recording_start_response))
        refused = not status or int(status[0].split()[0]) >= 400
        with self._lock:
            self._record(caller, service, environ, body, b"".join(answer), refused)
        return answer

    def _record(
        self, caller: str, service: str, environ: dict[str, Any], body: bytes, answer: bytes, refused: bool
    ) -> None:
        now = time.monotonic()
        per_batch = False
        if service == "s3":
            action, where = s3_call(environ)
            per_batch = where == "summary"
        else:
            action = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2] or "?"
            params = json.loads(body) if body else {}
            where = ""
            if service == "dynamodb":
                where = "+".join(sorted(TABLES.get(name, name) for name in tables(params)))
                per_batch = for_the_batch(action, params)
            elif service == "sqs" and not refused:
                where = self._sqs_call(caller, action, params, answer, now)
        work = ITEM if caller == WEBHOOK_KEY else self._work.get(caller, UNATTRIBUTED)
        call = Call(now, SERVICES.get(service, service), action, where, work, refused, per_batch)
        self._calls.append(call)
        self._first.setdefault(call.name, now)

    def _sqs_call(self, caller: str, action: str, params: dict[str, Any], answer: bytes, now: float) -> str:
        """What the SQS call carried; a receive also says what its environment handles next."""
        if action == "ReceiveMessage":
            # An environment's process polls the batch queue and the collect queue (and runs the
            # schedule), each in a thread of its own, one message at a time: an empty receive of
            # one poller says nothing of what the other is handling.
            messages = json.loads(answer or b"{}").get("Messages", [])
            if messages:
                self._work[caller] = work_of(messages[0]["Body"])
            return "" if messages else "empty"
        if action in ("SendMessage", "SendMessageBatch"):
            entries = [params] if action == "SendMessage" else params["Entries"]
            kinds = [kind_of(entry["MessageBody"]) for entry in entries]
            self._items_queued += [now] * kinds.count("item")
            return "+".join(sorted({_QUEUED.get(kind, FAN_OUT) for kind in kinds}))
        return ""


_QUEUED = {"item": "items", "collect": "collects"}


def work_of(message_body: str) -> str:
    """An item's message (its submit, or the collect of one of its fal requests), or anything
    else the batch queue carries (S3's notifications, the manifest's further chunks): the fan-out."""
    return ITEM if kind_of(message_body) in _QUEUED else FAN_OUT


def kind_of(message_body: str) -> str:
    try:
        document = json.loads(message_body)
    except json.JSONDecodeError:
        return ""
    return str(document.get("kind", "")) if isinstance(document, dict) else ""


def for_the_batch(action: str, params: Mapping[str, Any]) -> bool:
    """A ledger call for the batch as a whole: its counters read (for a summary), the batch marked
    finished, or a settle's second try, made without the condition that the batch still runs
    (that is the settle that may have finished it: tried once more, once per batch)."""
    if params.get("TableName") == BATCH_TABLE and action == "GetItem":
        return "#item#" not in params.get("Key", {}).get("id", {}).get("S", "")
    if params.get("TableName") == BATCH_TABLE and action == "UpdateItem":  # not count_items' REMOVE
        return str(params.get("UpdateExpression", "")).startswith("SET #finished")
    if action == "TransactWriteItems":
        updates = [entry.get("Update", {}) for entry in params.get("TransactItems", [])]
        batches = [u for u in updates if "#item#" not in u.get("Key", {}).get("id", {}).get("S", "#item#")]
        settles = [u for u in updates if u.get("UpdateExpression", "").startswith("SET #state")]
        return bool(settles) and any("ConditionExpression" not in batch for batch in batches)
    return False


def tables(params: Mapping[str, Any]) -> set[str]:
    """The tables a DynamoDB call names: one, or several in a batch or a transaction."""
    names = {params["TableName"]} if "TableName" in params else set()
    names.update(params.get("RequestItems", {}))
    for entry in params.get("TransactItems", []):
        names.update(operation["TableName"] for operation in entry.values())
    return names


def s3_call(environ: Mapping[str, Any]) -> tuple[str, str]:
    """An S3 request's action, and which part of the bucket's layout its key is in (path-style
    addressing, as boto3 uses with the local endpoint)."""
    _, _, key = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    method = environ["REQUEST_METHOD"]
    if not key:
        return ("ListObjectsV2" if "list-type" in query else f"{method} bucket"), ""
    if "uploads" in query or "uploadId" in query:
        action = {"POST": "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload",
                  "PUT": "UploadPart"}.get(method, f"{method} multipart")  # fmt: skip
    elif method == "PUT" and "HTTP_X_AMZ_COPY_SOURCE" in environ:
        action = "CopyObject"
    else:
        action = {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(
            method, f"{method} object"
        )
    where = next((part for pattern, part in LAYOUT if pattern.match(key)), "other")
    return action, where


@dataclass(frozen=True)
class Queueing:
    """One run of the big manifest: seconds from the start of its upload, None if not seen."""

    first_item: float | None
    all_items: float | None
    first_record: float | None  # the first item's record written: the first item done
    fan_out: list[Call]


def calls_of_a_batch(
    stack: LocalStack, recorder: CallRecorder, images: list[bytes], concurrency: int
) -> tuple[list[Call], dict[str, Any]]:
    """Every call of the environments for one batch run to its end, and its summary."""
    s3, sqs = bench_clients()
    with environments(concurrency, stack, environment_keys(concurrency)):
        recorder.reset()
        upload(s3, "calls", images)
        summary = finished_summary(s3, "calls")
        wait_until_empty(sqs, stack.batch_env["BATCH_QUEUE_URL"])  # the last deletes counted too
        return recorder.calls(), summary


def time_to_queue(
    stack: LocalStack, recorder: CallRecorder, images: list[bytes], args: argparse.Namespace, run: int
) -> Queueing:
    s3, sqs = bench_clients()
    with environments(args.concurrency, stack, environment_keys(args.concurrency)):
        recorder.reset()
        started = upload(s3, f"queue-{run}", images, args.lines)
        while time.monotonic() < started + args.timeout:
            fanned_out = len(recorder.items_queued()) >= args.lines and not recorder.handling(FAN_OUT)
            if fanned_out and recorder.first(ITEM_RECORD) is not None:
                break
            threading.Event().wait(0.02)
        queued, calls, first_record = recorder.items_queued(), recorder.calls(), recorder.first(ITEM_RECORD)
    # The environments are gone: what they left in the queue goes with them, in flight or not.
    sqs.purge_queue(QueueUrl=stack.batch_env["BATCH_QUEUE_URL"])
    return Queueing(
        first_item=queued[0] - started if queued else None,
        all_items=queued[args.lines - 1] - started if len(queued) >= args.lines else None,
        first_record=first_record - started if first_record is not None else None,
        fan_out=[call for call in calls if call.work == FAN_OUT],
    )


def bench_clients() -> tuple[S3Client, SQSClient]:
    """S3 and SQS clients signing as the bench: their calls are not counted."""
    session = boto3.Session(aws_access_key_id=BENCH_KEY, aws_secret_access_key=BENCH_KEY, region_name=REGION)
    return session.client("s3"), session.client("sqs")


def environment_keys(count: int) -> list[str]:
    return [ENVIRONMENT_KEY.format(n) for n in range(count)]


def wait_until_empty(sqs: SQSClient, queue_url: str) -> None:
    """Until every message has been deleted (none waiting, none in flight)."""
    names: list[Any] = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    while True:
        counts = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        if all(counts.get(name, "0") == "0" for name in names):
            return
        threading.Event().wait(0.05)


def measure(args: argparse.Namespace) -> Section:
    section = Section("AWS calls per batch item")
    recorder = CallRecorder()
    images = photos(args.items)
    with LocalStack(environ={}, batch_timeout=120, moto_middleware=recorder.wrap) as stack:
        assert stack.emulator is not None
        stack.emulator.latency = args.latency
        section.say(f"fal: {stack.fal_description}")
        calls, summary = calls_of_a_batch(stack, recorder, images, args.concurrency)
        report_calls(section, calls, summary, args)
        runs = [time_to_queue(stack, recorder, images, args, run) for run in range(args.runs)]
    report_queueing(section, runs, args)
    return section


def report_calls(
    section: Section, calls: list[Call], summary: dict[str, Any], args: argparse.Namespace
) -> None:
    succeeded = summary["counts"]["succeeded"]
    cores = os.cpu_count() or 1
    section.say(
        f"a batch of {args.items} items (768x512 PNG), fal latency {args.latency:g} s, C={args.concurrency}, "
        f"{cores} cores: the calls of the batch function's environments from the manifest's upload "
        "until the queue is empty, by the message they were handling (the fan-out of the manifest, "
        "or an item) and, for an item, whether the call was for the item itself (its path) or for "
        "the batch as a whole (its summary written and the counters read for it, the batch marked "
        "finished, the finishing settle's second try: per batch, however many items)"
    )
    counted = [call for call in calls if call.name != EMPTY_RECEIVE]
    fan_out = [call for call in counted if call.work == FAN_OUT]
    item_path = [call for call in counted if call.work != FAN_OUT and not call.per_batch]
    per_batch = [call for call in counted if call.work != FAN_OUT and call.per_batch]
    columns = [Counter(call.name for call in part) for part in (fan_out, item_path, per_batch)]
    section.say(f"{'call':<46} {'fan-out':>8} {'item path':>10} {'per batch':>10} {'item path/item':>15}")
    for name in sorted(set().union(*columns)):
        counts = [column[name] for column in columns]
        row = "".join(f" {n:>{w}}" for n, w in zip(counts, (8, 10, 10), strict=True))
        section.say(f"{name:<46}{row} {counts[1] / succeeded:>15.2f}")
    row = "".join(f" {c.total():>{w}}" for c, w in zip(columns, (8, 10, 10), strict=True))
    section.say(f"{'all':<46}{row} {columns[1].total() / succeeded:>15.2f}")
    idle = len(calls) - len(counted)
    unattributed = sum(1 for call in counted if call.work == UNATTRIBUTED)
    refused = Counter(f"{call.name} ({call.work})" for call in counted if call.refused)
    section.say(
        f"not per item: {idle} receives of Lambda's event source that found the queue empty; "
        f"{unattributed} calls before an environment's first message; {refused.total()} of the calls "
        "above answered with an error (a condition that failed, a key not there)"
        + (": " + ", ".join(f"{name} x{n}" for name, n in sorted(refused.items())) if refused else "")
    )
    parts = {"item path": item_path, "fan-out": fan_out, "per batch": per_batch, "all": counted}
    groups = {name: by_group(part) for name, part in parts.items()}
    section.say(f"per succeeded item, by group: {'before (all)':>13} " + " ".join(f"{n:>10}" for n in groups))
    for group in groups["all"]:
        before = f"{BEFORE[group]:>13.2f}" if group in BEFORE else f"{'':>13}"
        after = " ".join(f"{groups[part][group] / succeeded:>10.2f}" for part in groups)
        section.say(f"  {group:<28}{before} {after}")
    section.say(
        "before: recorded on main at 099a224 by this bench (all calls of the batch per succeeded "
        "item, as the 'all' column): the item's state read before its edit, the summaries read "
        "the counters before and after writing; per batch here: "
        + ", ".join(f"{name} {n}" for name, n in groups["per batch"].items() if n)
        + f" (for {args.items} items, not growing with them)"
    )
    chart = section.chart("aws_calls", f"AWS calls per succeeded batch item ({args.items} items)", "calls")
    for name, count in groups["item path"].items():
        chart.add(f"{name} (item path)", [count / succeeded])
    section.target(
        "batch items that succeeded", f"{succeeded} of {args.items}", "all", succeeded == args.items
    )
    for name, limit in TARGETS.items():
        per_item = groups["item path"][name] / succeeded
        beside = (
            f"; all calls {groups['all'][name] / succeeded:.2f}; before: {BEFORE_WEBHOOKS[name]:.2f} "
            f"on its path (783e7f9), {BEFORE[name]:.2f} all calls (099a224)"
        )
        section.target(
            f"{name} per succeeded item, on its path",
            f"{per_item:.2f}{beside}",
            f"<= {limit}",
            per_item <= limit,
        )


def report_queueing(section: Section, runs: list[Queueing], args: argparse.Namespace) -> None:
    section.say()
    section.say(
        f"a {args.lines:,}-line manifest, fal latency {args.latency:g} s, C={args.concurrency}, "
        f"{len(runs)} run(s): seconds from the start of its upload"
    )
    chart = section.chart("aws_calls_queue", f"{args.lines:,}-line manifest: from its upload", "s")
    for label, values in (
        ("first item queued", [run.first_item for run in runs]),
        ("whole manifest queued", [run.all_items for run in runs]),
        ("first item's record written", [run.first_record for run in runs]),
    ):
        seen = [value for value in values if value is not None]
        missing = len(values) - len(seen)
        shown = spread(seen, " s", digits=2) if seen else "-"
        section.say(
            f"{label:<28} {shown}"
            + (f" ({missing} run(s): not within {args.timeout:g} s)" if missing else "")
        )
        if seen:
            chart.add(label, seen)
    fan_out = Counter(call.name for call in runs[-1].fan_out)
    section.say(f"{'the fan-out, in the last run until it stopped:':<62} {'calls':>8} {'per line':>9}")
    for name, count in sorted(fan_out.items()):
        section.say(f"  {name:<60} {count:>8} {count / args.lines:>9.3f}")
    firsts = [run.first_item for run in runs]
    if all(first is not None for first in firsts):
        median = statistics.median(first for first in firsts if first is not None)
        measured = f"{median:.2f} s"
    else:
        median, measured = math.inf, f"not within {args.timeout:g} s"
    section.target(f"first item of a {args.lines:,}-line manifest queued", measured,
                   f"<= {FIRST_ITEM_TARGET:g} s", median <= FIRST_ITEM_TARGET)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--items", type=int, default=50, help="the batch whose calls are counted")
    parser.add_argument(
        "--lines", type=int, default=1000, help="items of the manifest whose queueing is timed"
    )
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.5, help="the fal emulator's, in seconds")
    parser.add_argument("--runs", type=int, default=3, help="of the manifest's queueing")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one queueing run may take")


if __name__ == "__main__":
    run_alone(__doc__, add_arguments, measure)
