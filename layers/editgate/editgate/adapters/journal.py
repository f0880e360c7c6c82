"""The fal submission journal (DynamoDB, in the idempotency table): which provider requests an
edit has submitted, so that no attempt pays for them twice."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from editgate.adapters.aws import dynamodb_client, get_item
from editgate.domain.json_values import json_text


class SubmissionJournal:
    """Which fal requests an edit has submitted, written the moment fal accepts each one, so that
    any later attempt of the same edit collects them instead of paying again. One item per edit
    (``journal#<edit key>``) in the idempotency table, beside Powertools' own record, which is
    rewritten whole each time an attempt takes it over."""

    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def open(self, edit_key: str, ttl_seconds: int) -> EditJournal:
        item_id = f"journal#{edit_key}"
        item = get_item(self._table, item_id)
        entries = {
            name.removeprefix("call_"): json.loads(value["S"])
            for name, value in item.items()
            if name.startswith("call_") and "S" in value
        }
        return EditJournal(self._table, item_id, ttl_seconds, entries)


class EditJournal:
    """One edit's journal: provider call index → what was submitted for it."""

    def __init__(
        self, table: str, item_id: str, ttl_seconds: int, entries: dict[str, dict[str, Any]]
    ) -> None:
        self._table = table
        self._item_id = item_id
        self._ttl = ttl_seconds
        self._entries = entries

    def get(self, index: int) -> dict[str, Any] | None:
        return self._entries.get(str(index))

    def record(self, index: int, entry: dict[str, Any]) -> None:
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
        dynamodb_client().update_item(
            TableName=self._table,
            Key={"id": {"S": self._item_id}},
            UpdateExpression="SET "
            + ", ".join(f"{name} = :{name[1:]}" for name in names)
            + ", #expiration = :expiration",
            ExpressionAttributeNames={**names, "#expiration": "expiration"},
            ExpressionAttributeValues={**values, ":expiration": {"N": str(int(time.time()) + self._ttl)}},
        )
