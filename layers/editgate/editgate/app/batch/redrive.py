"""Operator-only (``editgate batch redrive``): a batch's failed items and dead letters queued
again, and the collect queue's dead letters moved back onto it."""

from __future__ import annotations

import json
from typing import Any

from editgate.adapters.ledger import BatchLedger
from editgate.adapters.objects import ObjectStore
from editgate.adapters.queue import WorkQueue
from editgate.app.batch.layout import output_key
from editgate.app.batch.summary import publish_summary


def redrive(
    batch_id: str, store: ObjectStore, ledger: BatchLedger, queue: WorkQueue, dead_letter_url: str | None
) -> tuple[int, int]:
    """Queue the batch's failed items again, and every message of the dead-letter queue. Nothing
    already paid is paid again: each item collects what its earlier attempts submitted. Returns
    how many failed items and dead letters were queued."""
    again = [record["message"] for record in failed_items(batch_id, store) if record.get("message")]
    dead = list(queue.drain(dead_letter_url)) if dead_letter_url else []
    again, dead = _repeats(again), _repeats(dead)
    # An item both failed and dead-lettered goes once: two copies would only race each other.
    unique = {_message_name(message): message for message in again + dead}
    for message in again:
        ledger.settle(batch_id, message["item_id"], "queued")  # pending again, until it settles
    ledger.reopen(batch_id)
    publish_summary(batch_id, ledger, store)
    queue.send(list(unique.values()))
    return len(again), len(dead)


def redrive_collects(collect_queue: WorkQueue, dead_letter_url: str) -> int:
    """Every message of the collect queue's dead-letter queue back on the collect queue, each
    deleted from the dead-letter queue once it is queued again: fal requests whose webhook (or
    sweep) was taken, which no sweep collects again while that receipt lives (a day). Of any
    batch, or job. Each goes as a repeat: the collect step reads the journal first, and one
    collected meanwhile is not collected again. Returns how many were moved."""
    moved = 0
    for message in collect_queue.drain(dead_letter_url):
        collect_queue.send(_repeats([message]))
        moved += 1
    return moved


def failed_items(batch_id: str, store: ObjectStore) -> list[dict[str, Any]]:
    """The item records of a batch that failed."""
    records = (json.loads(store.get(key)) for key in store.keys(output_key(batch_id, "items") + "/"))
    return [record for record in records if record.get("state") == "failed"]


def _repeats(messages: list[Any]) -> list[Any]:
    """Messages queued again maybe long after their edits' records expired: each item asks the
    ledger first whether it already succeeded (a dead letter that is no object goes as it is)."""
    return [{**message, "repeat": True} if isinstance(message, dict) else message for message in messages]


def _message_name(message: dict[str, Any]) -> str:
    if message.get("kind") == "item":
        return f"item:{message.get('batch_id')}:{message.get('item_id')}"
    return json.dumps(message, sort_keys=True)
