"""The batch door's services and limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from editgate.adapters.ledger import BatchLedger
from editgate.adapters.objects import ObjectStore
from editgate.adapters.queue import WorkQueue
from editgate.app.batch.layout import ImageRules
from editgate.app.edit_service import EditService


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
    # When this environment last wrote each batch's summary (time.monotonic()).
    summaries_written: dict[str, float] = field(default_factory=dict)
