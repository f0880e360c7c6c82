"""What collecting a webhooked edit keeps in the edit's journal item (``journal#<edit key>``,
beside its calls): the edit's ``work`` (what finishing needs), the submit's lease (one attempt
submits at a time), and each call's outcome (``done_<k>``) with how many calls are collected
(``collected``), written once per call by a conditional update: each fal request is collected
once, and the collector that brings the count to the number of calls finishes the edit. The
lookups of fal requests whose webhook has not come are found by the sparse ``pending`` index."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from editgate.adapters.aws import conditional_failure, dynamodb_client, get_item
from editgate.adapters.journal import (
    PENDING,
    PENDING_INDEX,
    PENDING_SINCE,
    EditJournal,
    SubmittedRequest,
    journal_item_id,
    request_item_id,
)
from editgate.domain.json_values import json_text


@dataclass(frozen=True)
class CollectState:
    """An edit's journal as the collect step reads it: its work, its calls' submissions, and the
    outcomes of the calls collected so far (by call index)."""

    work: dict[str, Any]
    entries: dict[int, dict[str, Any]]
    done: dict[int, dict[str, Any]]
    lease_until: str | None = None  # the submit lease, as written (a DynamoDB number)

    @property
    def calls(self) -> int:
        return int(self.work["calls"])

    @property
    def complete(self) -> bool:
        return len(self.done) >= self.calls


@dataclass(frozen=True)
class Held:
    """``begin`` refused: another attempt holds the submit lease, or (``other_edit``) the journal
    is of another edit by the same name."""

    other_edit: bool


class CollectJournal:
    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def begin(
        self, edit_key: str, digest: str, work: dict[str, Any], *, lease_seconds: float, ttl_seconds: int
    ) -> CollectState | Held:
        """Take the edit's submit lease for ``lease_seconds`` and write its work: the journal as
        it is then; or ``Held`` while another attempt holds the lease (two deliveries at once),
        or when fal was paid for another edit by the same name (``digest``: what makes it that
        edit, written with its first fal request: a batch item's line changed since)."""
        now = time.time()
        until = str(now + lease_seconds)
        try:
            answer = dynamodb_client().update_item(
                TableName=self._table,
                Key={"id": {"S": journal_item_id(edit_key)}},
                UpdateExpression="SET #work = :work, #lease = :until, #expiration = :expiration",
                ConditionExpression="(attribute_not_exists(#lease) OR #lease < :now) "
                "AND (attribute_not_exists(#digest) OR #digest = :digest)",
                ExpressionAttributeNames={
                    "#work": "work",
                    "#digest": "digest",
                    "#lease": "lease_until",
                    "#expiration": "expiration",
                },
                ExpressionAttributeValues={
                    ":work": {"S": json_text(work)},
                    ":digest": {"S": digest},
                    ":until": {"N": until},
                    ":now": {"N": str(now)},
                    ":expiration": {"N": str(int(now) + ttl_seconds)},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not conditional_failure(exc):
                raise
            held: Any = exc.response.get("Item", {})  # the item as it is (not in botocore's types)
            other = held.get("digest", {}).get("S")
            return Held(other_edit=other is not None and other != digest)
        state = _state(dict(answer.get("Attributes", {})))
        assert state is not None, "the work was just written"
        return state

    def release(self, edit_key: str, state: CollectState) -> None:
        """The submit lease ``begin`` took for ``state`` given back (if it still holds it): the
        next delivery need not wait for it to run out."""
        if state.lease_until is None:
            return
        try:
            dynamodb_client().update_item(
                TableName=self._table,
                Key={"id": {"S": journal_item_id(edit_key)}},
                UpdateExpression="REMOVE #lease",
                ConditionExpression="#lease = :until",
                ExpressionAttributeNames={"#lease": "lease_until"},
                ExpressionAttributeValues={":until": {"N": state.lease_until}},
            )
        except ClientError as exc:
            if not conditional_failure(exc):
                raise

    def edit_journal(self, edit_key: str, digest: str, state: CollectState, ttl_seconds: int) -> EditJournal:
        """The edit's journal of calls as ``begin`` answered it (no second read); the first call
        it records keeps the edit's ``digest`` too (``begin`` then refuses another edit's)."""
        entries = {str(call): entry for call, entry in state.entries.items()}
        return EditJournal(self._table, journal_item_id(edit_key), ttl_seconds, entries, digest=digest)

    def reopen(self, edit_key: str, calls: Sequence[int]) -> None:
        """Calls recorded not collected (fal made their images; a redrive collects them now)."""
        dynamodb_client().update_item(
            TableName=self._table,
            Key={"id": {"S": journal_item_id(edit_key)}},
            UpdateExpression="REMOVE "
            + ", ".join(f"#done{call}" for call in calls)
            + " ADD #collected :less",
            ExpressionAttributeNames={"#collected": "collected"} | {f"#done{c}": f"done_{c}" for c in calls},
            ExpressionAttributeValues={":less": {"N": str(-len(calls))}},
        )

    def state(self, edit_key: str) -> CollectState | None:
        """The edit's journal; None when there is none with work (expired, or not webhooked)."""
        return _state(get_item(self._table, journal_item_id(edit_key)))

    def mark(self, edit_key: str, call: int, outcome: dict[str, Any]) -> CollectState | None:
        """Call ``call`` collected with ``outcome``: the journal after it, or None when it was
        collected before (a redelivery, a sweep and a webhook both)."""
        return self._update_if(
            edit_key,
            "SET #done = :outcome ADD #collected :one",
            "attribute_exists(#work) AND attribute_not_exists(#done)",
            {"#done": f"done_{call}", "#collected": "collected", "#work": "work"},
            {":outcome": {"S": json_text(outcome)}, ":one": {"N": "1"}},
        )

    def forget(self, edit_key: str) -> None:
        """An edit that made nothing: a later attempt (a redrive) submits it anew (fal bills none)."""
        dynamodb_client().delete_item(TableName=self._table, Key={"id": {"S": journal_item_id(edit_key)}})

    def collected(self, request_id: str) -> None:
        """The fal request is no longer pending: the sweeper passes it by."""
        try:
            dynamodb_client().update_item(
                TableName=self._table,
                Key={"id": {"S": request_item_id(request_id)}},
                UpdateExpression="REMOVE #pending, #since",
                ConditionExpression="attribute_exists(id)",
                ExpressionAttributeNames={"#pending": PENDING, "#since": PENDING_SINCE},
            )
        except ClientError as exc:
            if not conditional_failure(exc):
                raise

    def pending(self, submitted_before: float, limit: int) -> list[SubmittedRequest]:
        """Up to ``limit`` fal requests submitted with a webhook before ``submitted_before`` and
        not collected, oldest first."""
        found: list[SubmittedRequest] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": PENDING_INDEX,
            "KeyConditionExpression": "#pending = :pending AND #since < :before",
            "ExpressionAttributeNames": {"#pending": PENDING, "#since": PENDING_SINCE},
            "ExpressionAttributeValues": {
                ":pending": {"S": "falreq"},
                ":before": {"N": str(int(submitted_before))},
            },
        }
        while len(found) < limit:
            page = dynamodb_client().query(**query, Limit=limit - len(found))
            found += [
                SubmittedRequest(
                    item["id"]["S"].removeprefix("falreq#"), item["edit_key"]["S"], int(item["call"]["N"])
                )
                for item in page.get("Items", [])
                if "edit_key" in item and "call" in item
            ]
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found

    def _update_if(
        self, edit_key: str, update: str, condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> CollectState | None:
        """The journal after ``update``, or None when ``condition`` did not hold."""
        try:
            answer = dynamodb_client().update_item(
                TableName=self._table,
                Key={"id": {"S": journal_item_id(edit_key)}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if conditional_failure(exc):
                return None
            raise
        return _state(dict(answer.get("Attributes", {})))


def _state(item: dict[str, Any]) -> CollectState | None:
    if "work" not in item:
        return None

    def calls(prefix: str) -> dict[int, dict[str, Any]]:
        return {
            int(name.removeprefix(prefix)): json.loads(value["S"])
            for name, value in item.items()
            if name.startswith(prefix) and "S" in value
        }

    lease = item.get("lease_until", {}).get("N")
    return CollectState(json.loads(item["work"]["S"]), calls("call_"), calls("done_"), lease)
