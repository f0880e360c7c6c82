"""An edit handed to fal (a batch item's, an asynchronous job's): prepared (normalized and checked,
as any edit), each provider call submitted with fal's webhook and journaled with what collecting
it needs. Nothing waits on fal: the collect step (``editgate.app.batch.collect``) finishes the
edit when fal says it is done."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from editgate.adapters.collect_journal import CollectState, Held
from editgate.adapters.journal import EditJournal, SubmittedRequest
from editgate.app.batch.messages import ItemMessage
from editgate.app.batch.runtime import BatchRuntime, Collecting
from editgate.app.fal_webhooks import collect_message
from editgate.app.preparing import Prepared, prepare
from editgate.app.provider_calls import payload_digest
from editgate.app.services import Services
from editgate.domain import identity
from editgate.domain.errors import IdempotencyKeyReused, RequestInProgress
from editgate.domain.identity import EditIdentity
from editgate.domain.models import EditRequest, Plan

logger = Logger(child=True)


def submit_item(
    item: ItemMessage, request: EditRequest, image: bytes, runtime: BatchRuntime, deadline: float
) -> int:
    """Submit a batch item's provider calls; how many were submitted now (see ``submit_edit``)."""
    edit = identity.for_item(item.batch_id, item.item_id, request, [image])
    owner = {"item": item.model_dump(mode="json")}
    return submit_edit(edit, owner, request, image, runtime.edits.services, runtime.collecting, deadline)


def submit_edit(
    edit: EditIdentity, owner: dict[str, Any], request: EditRequest, image: bytes, services: Services,
    collecting: Collecting, deadline: float,
) -> int:  # fmt: skip
    """Submit the edit's provider calls (those its journal does not already hold: a redelivery
    pays nothing again), with what the collect step needs: ``owner``, whose edit it is (a batch
    item's message, ``{"item": …}``, or a job's id, ``{"job": …}``), and the plan. How many were
    submitted now. ``RequestInProgress`` while another delivery of the edit is submitting."""
    prepared = prepare(request, [image], services, deadline)
    plan = prepared.plan
    work = {**owner, "calls": len(plan.calls), "model": plan.model.id,
            "alpha": prepared.alpha is not None, "plan": compact_plan(plan)}  # fmt: skip
    # As long as fal may still answer for its requests (its queue, its webhook's retries), not
    # only as long as the edit's name lasts: a lookup gone is a request never collected.
    ttl = max(services.deduplicator.ttl_seconds(edit), collecting.journal_ttl_seconds)
    lease = max(1.0, deadline - time.monotonic())
    state = collecting.journal.begin(edit.key, edit.digest, work, lease_seconds=lease, ttl_seconds=ttl)
    if isinstance(state, Held) and state.other_edit:
        # Its fal requests were made for what the name meant then: never paid again for another.
        raise IdempotencyKeyReused(
            "This edit was submitted before with other parameters or another image; give it a new id."
        )
    if isinstance(state, Held):
        raise RequestInProgress("The edit is being submitted by another delivery.", retry_after=2)
    try:
        _collect_again(edit.key, state, collecting)
        journal = collecting.journal.edit_journal(edit.key, edit.digest, state, ttl)
        submitted = _submit_calls(edit.key, state, journal, prepared, work, services, collecting, deadline)
    finally:
        collecting.journal.release(edit.key, state)
    logger.info("edit submitted", extra={"owner": list(owner), "calls": len(plan.calls)})
    return submitted


def _submit_calls(
    edit_key: str, state: CollectState, journal: EditJournal, prepared: Prepared, work: dict[str, Any],
    services: Services, collecting: Collecting, deadline: float,
) -> int:  # fmt: skip
    plan, submitted, unwatched = prepared.plan, 0, []
    for index, payload in enumerate(plan.payloads(prepared.image_uri)):
        digest = payload_digest(payload)
        known = journal.get(index)
        if index in state.done or (known is not None and known.get("payload") == digest):
            # Submitted by an earlier delivery: its webhook (or the sweeper) collects it, unless
            # that delivery waited on fal (an earlier version): then it is collected now.
            if known is not None and index not in state.done and not known.get("webhook"):
                unwatched.append(index)
            continue
        submission = services.fal.submit(
            plan.model.endpoint_id, payload, deadline, webhook_url=collecting.webhook_url
        )
        entry = {"payload": digest, "submission": submission.model_dump(mode="json"), "webhook": True}
        journal.record(index, entry, collected_with={"work": work})
        submitted += 1
    if unwatched:
        _queue_collects(edit_key, {call: journal.get(call) or {} for call in unwatched}, work, collecting)
    return submitted


def _collect_again(edit_key: str, state: CollectState, collecting: Collecting) -> None:
    """A redrive of an edit whose calls fal made but could not be collected: collected now, from
    the same fal requests (nothing paid again)."""
    again = [call for call, outcome in state.done.items() if any(f["retryable"] for f in outcome["failures"])]
    if not again:
        return
    collecting.journal.reopen(edit_key, again)
    _queue_collects(edit_key, {call: state.entries[call] for call in again}, state.work, collecting)


def _queue_collects(
    edit_key: str, entries: dict[int, dict[str, Any]], work: dict[str, Any], collecting: Collecting
) -> None:
    """The collect steps of calls fal has (or had) at work, queued now, as the sweeper would."""
    messages = [
        collect_message(entry["submission"]["request_id"],
                        SubmittedRequest(entry["submission"]["request_id"], edit_key, call,
                                         {"work": work, "submission": entry["submission"]}),
                        "POLLED").model_dump(mode="json")
        for call, entry in entries.items()
    ]  # fmt: skip
    collecting.queue.send(messages)


def compact_plan(plan: Plan) -> dict[str, Any]:
    """The plan as the journal keeps it: without the model (named in the work) and the payloads."""
    return plan.model_dump(mode="json", exclude={"model": True, "calls": {"__all__": {"payload"}}})


def plan_from(work: dict[str, Any], runtime: BatchRuntime) -> Plan:
    """The plan ``compact_plan`` kept, whole again (the payloads empty: they were sent)."""
    compact = work["plan"]
    calls = [{**call, "payload": {}} for call in compact["calls"]]
    spec = runtime.edits.services.model(work["model"])
    return Plan.model_validate({**compact, "model": spec, "calls": calls})
