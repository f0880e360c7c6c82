"""The batch door's services and limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from editgate.adapters.callbacks import CallbackSender
from editgate.adapters.collect_journal import CollectJournal
from editgate.adapters.jobs import JobTable
from editgate.adapters.keys import WebhookSecrets
from editgate.adapters.ledger import BatchLedger
from editgate.adapters.objects import ObjectStore
from editgate.adapters.queue import WorkQueue
from editgate.adapters.webhook_receipts import WebhookReceipts
from editgate.app.batch.layout import ImageRules
from editgate.app.edit_service import EditService


@dataclass(frozen=True)
class Collecting:
    """How batch items are told that fal has finished: fal's webhook (``webhook_url``, the API's
    ``/v1/fal/webhook``) queues the collect step on ``queue``; the sweeper finds the requests
    whose webhook has not come after ``sweep_after_seconds`` and queues them too."""

    webhook_url: str
    journal: CollectJournal
    queue: WorkQueue
    receipts: WebhookReceipts
    sweep_after_seconds: int
    # How long a webhooked edit's journal and its requests' lookups are kept: as long as fal may
    # still answer (its queue, 2 hours of webhook retries), so a late answer is still collected.
    journal_ttl_seconds: int = 24 * 3600
    # The most requests one sweep looks at (the rest wait for the next minute's).
    sweep_limit: int = 200


@dataclass
class JobRunner:
    """What running asynchronous jobs needs: the edit service storing in the API's results bucket
    (the job's folder there), the jobs' table, the callbacks' secrets and retries, and when the
    jobs' sweeper takes a job for dead."""

    edits: EditService
    table: JobTable
    prefix: str  # the jobs' folders in the results bucket
    callbacks: CallbackSender
    secrets: WebhookSecrets
    # A failed delivery is tried again after this, doubled each time (SQS delays up to 15 minutes).
    callback_retry_seconds: int
    callback_attempts: int
    # The jobs' sweeper fails a job not ended this long after it was queued or started.
    stale_seconds: int
    # The most jobs one sweep ends (the rest wait for the next minute's).
    sweep_limit: int = 100


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
    # How items learn that fal has finished (webhooks, the sweeper).
    collecting: Collecting
    # Asynchronous jobs, when the stack has a jobs' table.
    jobs: JobRunner | None = None
    # When this environment last wrote each batch's summary (time.monotonic()).
    summaries_written: dict[str, float] = field(default_factory=dict)
