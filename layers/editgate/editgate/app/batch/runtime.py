"""The batch door's services and limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from editgate.adapters.callbacks import CallbackSender
from editgate.adapters.jobs import JobTable
from editgate.adapters.keys import WebhookSecrets
from editgate.adapters.ledger import BatchLedger
from editgate.adapters.objects import ObjectStore
from editgate.adapters.queue import WorkQueue
from editgate.app.batch.layout import ImageRules
from editgate.app.edit_service import EditService


@dataclass
class JobRunner:
    """What running asynchronous jobs needs: the edit service storing in the API's results bucket
    (the job's folder there), the jobs' table, and the callbacks' secrets and retries."""

    edits: EditService
    table: JobTable
    prefix: str  # the jobs' folders in the results bucket
    callbacks: CallbackSender
    secrets: WebhookSecrets
    # A failed delivery is tried again after this, doubled each time (SQS delays up to 15 minutes).
    callback_retry_seconds: int
    callback_attempts: int


@dataclass
class BatchRuntime:
    """What the batch door needs, built once per cold start by ``editgate.wiring``."""

    edits: EditService
    store: ObjectStore
    ledger: BatchLedger
    queue: WorkQueue
    rules: ImageRules
    # SQS's maxReceiveCount: on the last receive a failing item is recorded failed, not retried.
    max_receives: int
    # Manifest lines fanned out by one invocation before it hands the rest to the next message.
    chunk_lines: int
    # The stack's BATCH_DEFAULTS, under every item's own parameters.
    defaults: dict[str, Any]
    max_image_bytes: int
    # Asynchronous jobs, when the stack has a jobs' table.
    jobs: JobRunner | None = None
    # When this environment last wrote each batch's summary (time.monotonic()).
    summaries_written: dict[str, float] = field(default_factory=dict)
