"""A batch's ``summary.json``, written from the ledger's counters."""

from __future__ import annotations

import time
from typing import Any

from editgate.adapters.ledger import BatchLedger, Tally
from editgate.adapters.objects import ObjectStore
from editgate.app.batch.layout import output_key
from editgate.app.batch.messages import ChunkMessage
from editgate.app.batch.runtime import BatchRuntime
from editgate.domain.errors import InvalidRequest

# How often one execution environment rewrites a summary that is not final: a batch's items take
# seconds each, so a shorter interval rewrites it for nearly every item.
_SUMMARY_INTERVAL_SECONDS = 5.0


def publish_progress(batch_id: str, runtime: BatchRuntime, *, due: bool, may_finish: bool = False) -> None:
    """The summary after items settled or a chunk was fanned out: rewritten when it is ``due``, or
    when the batch ``may_finish`` (it may have finished, or changed once finished), else at most
    every few seconds by one environment, counted from when it first saw the batch (the fan-out
    wrote one before any item was queued). Deciding reads nothing."""
    now = time.monotonic()
    due = due or may_finish
    if not due and now - runtime.summaries_written.setdefault(batch_id, now) < _SUMMARY_INTERVAL_SECONDS:
        return
    runtime.summaries_written[batch_id] = now
    publish_summary(batch_id, runtime.ledger, runtime.store, may_finish=may_finish)


def publish_summary(
    batch_id: str, ledger: BatchLedger, store: ObjectStore, *, may_finish: bool = False
) -> None:
    """Write ``summary.json`` from the ledger's counters. A batch that ``may_finish`` is marked
    finished first, which answers its counters (no read) when it has. Else they are read; writers
    race, so one that wrote before the batch finished looks again and, if it has finished
    meanwhile, writes the final summary."""
    key = output_key(batch_id, "summary.json")
    finished = ledger.mark_finished(batch_id) if may_finish else None
    if finished is not None:
        store.put_json(key, summary(batch_id, finished))
        return
    tally = ledger.tally(batch_id)
    if tally is None:
        return
    if tally.done and tally.finished_at is None:
        tally = ledger.mark_finished(batch_id) or tally
    store.put_json(key, summary(batch_id, tally))
    if tally.finished_at is None:
        after = ledger.tally(batch_id)
        if after is not None and after.finished_at is not None:
            store.put_json(key, summary(batch_id, after))


def summary(batch_id: str, tally: Tally) -> dict[str, Any]:
    finished = tally.finished_at is not None
    return {
        "batch_id": batch_id,
        "items": tally.total,
        "counts": {
            "succeeded": tally.succeeded,
            "failed": tally.failed,
            "pending": max(0, tally.total - tally.succeeded - tally.failed),
        },
        "images": tally.images,
        "cost": {"usd": tally.cost_usd},
        "started_at": tally.started_at,
        "finished_at": tally.finished_at,
        "finished": finished,
        "manifest_read": tally.manifest_done,
        "error": tally.error,
    }


def stop_reading(chunk: ChunkMessage, runtime: BatchRuntime, why: str) -> None:
    """No more of the manifest is read: the summary's ``error`` says why, and the batch finishes
    once the items already queued settle."""
    error = InvalidRequest(f"The manifest {chunk.key} cannot be read: {why}.", code="invalid_manifest")
    runtime.ledger.stop_reading(chunk.batch_id, error.body()["error"])
    publish_summary(chunk.batch_id, runtime.ledger, runtime.store)
