"""The fal submission journal (DynamoDB, in the idempotency table): which provider requests an
edit has submitted, so that no attempt pays for them twice; and, for each fal request, which edit
submitted it (``falreq#<request id>``), so that fal's webhook about it finds its edit."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from editgate.adapters.aws import dynamodb_client, get_item
from editgate.domain.json_values import json_text


def request_item_id(request_id: str) -> str:
    return f"falreq#{request_id}"


def journal_item_id(edit_key: str) -> str:
    return f"journal#{edit_key}"


# A fal request submitted with a webhook and not yet collected carries these two attributes: the
# sparse index PENDING_INDEX (partition: the constant, sort: when) finds those a webhook missed.
PENDING_INDEX = "pending"
PENDING = "pending"
PENDING_SINCE = "pending_since"


@dataclass(frozen=True)
class SubmittedRequest:
    """A fal request the gateway submitted: the edit (its idempotency key) and the call of it."""

    request_id: str
    edit_key: str
    call: int
    # What its submit left for collecting it (``EditJournal.record``'s ``collected_with`` and the
    # submission), when the lookup was read whole.
    carried: dict[str, Any] | None = None


class SubmissionJournal:
    """Which fal requests an edit has submitted, written the moment fal accepts each one, so that
    any later attempt of the same edit collects them instead of paying again. One item per edit
    (``journal#<edit key>``) in the idempotency table, beside Powertools' own record, which is
    rewritten whole each time an attempt takes it over."""

    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def open(self, edit_key: str, ttl_seconds: int) -> EditJournal:
        item_id = journal_item_id(edit_key)
        item = get_item(self._table, item_id)
        entries = {
            name.removeprefix("call_"): json.loads(value["S"])
            for name, value in item.items()
            if name.startswith("call_") and "S" in value
        }
        return EditJournal(self._table, item_id, ttl_seconds, entries)

    def submitted(self, request_id: str) -> SubmittedRequest | None:
        """The edit that submitted fal request ``request_id``; None when no journal names it (not
        the gateway's, or its journal has expired)."""
        item = get_item(self._table, request_item_id(request_id))
        if "edit_key" not in item or "call" not in item:
            return None
        carried = json.loads(item["carried"]["S"]) if "S" in item.get("carried", {}) else None
        return SubmittedRequest(request_id, item["edit_key"]["S"], int(item["call"]["N"]), carried)


class EditJournal:
    """One edit's journal: provider call index → what was submitted for it."""

    def __init__(
        self,
        table: str,
        item_id: str,
        ttl_seconds: int,
        entries: dict[str, dict[str, Any]],
        *,
        digest: str | None = None,
    ) -> None:
        self._table = table
        self._item_id = item_id
        self._ttl = ttl_seconds
        self._entries = entries
        self._digest = digest  # what makes it this edit, kept with its calls (when given)

    def get(self, index: int) -> dict[str, Any] | None:
        return self._entries.get(str(index))

    def record(
        self, index: int, entry: dict[str, Any], *, collected_with: dict[str, Any] | None = None
    ) -> None:
        """A call's new fal request (``entry["submission"]``, a ``FalSubmission``), journaled.
        ``collected_with``: fal tells of its end by a webhook, which finds this edit by the
        request's lookup (``falreq#``), written first, pending until collected and carrying what
        collecting it needs (the edit's work, the submission) so that the collector reads nothing
        more. Two writes, not a transaction: the lookup first, so that a journaled request is
        always found (should the journal's write fail, the attempt fails as it would have)."""
        if collected_with is not None:
            request_id = str(entry["submission"]["request_id"])
            self._put_lookup(request_id, index, {**collected_with, "submission": entry["submission"]})
        self._write({index: entry})

    def mark_counted(self, indexes: Sequence[int]) -> None:
        """The calls whose cost an attempt counted although its answer was not final: the attempt
        that collects them again does not count them twice."""
        if indexes:
            self._write({index: {**self._entries[str(index)], "counted": True} for index in indexes})

    def _write(self, entries: dict[int, dict[str, Any]]) -> None:
        """Entries written in one update, and the journal's life extended from now."""
        self._entries.update({str(index): entry for index, entry in entries.items()})
        names = {f"#call{index}": f"call_{index}" for index in entries}
        values = {f":call{index}": {"S": json_text(entry)} for index, entry in entries.items()}
        sets = [f"{name} = :{name[1:]}" for name in names] + ["#expiration = :expiration"]
        if self._digest is not None:
            names["#digest"] = "digest"
            values[":digest"] = {"S": self._digest}
            sets.append("#digest = if_not_exists(#digest, :digest)")
        dynamodb_client().update_item(
            TableName=self._table,
            Key={"id": {"S": self._item_id}},
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames={**names, "#expiration": "expiration"},
            ExpressionAttributeValues={**values, ":expiration": self._expiration()},
        )

    def _put_lookup(self, request_id: str, index: int, carried: dict[str, Any]) -> None:
        """The lookup from fal request ``request_id`` back to call ``index`` of this edit, pending
        (the sweeper's index) until collected."""
        dynamodb_client().put_item(
            TableName=self._table,
            Item={
                "id": {"S": request_item_id(request_id)},
                "edit_key": {"S": self._item_id.removeprefix("journal#")},
                "call": {"N": str(index)},
                "carried": {"S": json_text(carried)},
                "expiration": self._expiration(),
                PENDING: {"S": "falreq"},
                PENDING_SINCE: {"N": str(int(time.time()))},
            },
        )

    def _expiration(self) -> dict[str, str]:
        return {"N": str(int(time.time()) + self._ttl)}
