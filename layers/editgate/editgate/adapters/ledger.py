"""The batch ledger (DynamoDB): per-batch counters and per-item states, each change counted once."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from editgate.adapters.aws import conditional_failure, dynamodb_client, error_code, get_item, now_text
from editgate.domain.json_values import json_text

_COUNTED_STATES = frozenset({"succeeded", "failed"})
# The most items DynamoDB takes in one transaction.
_TRANSACTION_ITEMS = 100


@dataclass(frozen=True)
class Tally:
    """A batch's counters as the ledger holds them."""

    total: int
    succeeded: int
    failed: int
    images: int
    cost_usd: float
    started_at: str | None
    finished_at: str | None
    manifest_done: bool
    # Why the manifest (or the rest of it) was not read: an OpenAI-shaped error's fields.
    error: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.manifest_done and self.succeeded + self.failed >= self.total


@dataclass(frozen=True)
class Settled:
    """What a settle did: ``changed`` (else the item already was in that state, nothing counted),
    and whether the batch ``may_finish`` by it (or changed once finished): its summary is due."""

    changed: bool
    may_finish: bool


class BatchLedger:
    """Per-batch counters (atomic ``ADD``) and per-item states in DynamoDB. An item's state
    changes together with the counters in one transaction, conditioned on the state it had, so a
    redelivered message never counts twice."""

    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def count_items(self, batch_id: str, lines: int, *, chunk: str, last: bool) -> None:
        """Count ``lines`` items fanned out by ``chunk`` (a manifest offset, or a single item's id),
        once however often the chunk is delivered; ``last``: all the batch's items are counted."""
        names = {
            "#total": "total",
            "#pending": "pending",
            "#started": "started_at",
            "#chunks": "chunks",
            "#finished": "finished_at",
        }
        values: dict[str, Any] = {
            ":lines": {"N": str(lines)},
            ":now": {"S": now_text()},
            ":chunk": {"SS": [chunk]},
            ":chunk_name": {"S": chunk},
        }
        update = (
            "ADD #total :lines, #pending :lines, #chunks :chunk SET #started = if_not_exists(#started, :now)"
        )
        if last:
            update += ", #done = :true"
            names["#done"] = "manifest_done"
            values[":true"] = {"BOOL": True}
        if lines:
            update += " REMOVE #finished"  # more items: not finished until they settle
        else:
            del names["#finished"]
        try:
            dynamodb_client().update_item(
                TableName=self._table,
                Key={"id": {"S": _batch_key(batch_id)}},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(#chunks) OR NOT contains(#chunks, :chunk_name)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not conditional_failure(exc):
                raise  # else: a redelivered chunk, already counted

    def claim_manifest(self, batch_id: str, etag: str) -> str:
        """Reserve the batch for one manifest upload (by its ETag): the ETag of the upload that
        holds it (``etag``, unless another upload took it first)."""
        try:
            dynamodb_client().update_item(
                TableName=self._table,
                Key={"id": {"S": _batch_key(batch_id)}},
                UpdateExpression="SET #manifest = :etag",
                ConditionExpression="attribute_not_exists(#manifest) OR #manifest = :etag",
                ExpressionAttributeNames={"#manifest": "manifest_etag"},
                ExpressionAttributeValues={":etag": {"S": etag}},
            )
        except ClientError as exc:
            if not conditional_failure(exc):
                raise
            return str(get_item(self._table, _batch_key(batch_id)).get("manifest_etag", {}).get("S", ""))
        return etag

    def stop_reading(self, batch_id: str, error: dict[str, Any]) -> None:
        """No more of the manifest is read, for the reason ``error`` gives (the first one kept):
        the batch finishes once the items already counted settle."""
        dynamodb_client().update_item(
            TableName=self._table,
            Key={"id": {"S": _batch_key(batch_id)}},
            UpdateExpression="SET #done = :true, #error = if_not_exists(#error, :error), "
            "#started = if_not_exists(#started, :now)",
            ExpressionAttributeNames={"#done": "manifest_done", "#error": "error", "#started": "started_at"},
            ExpressionAttributeValues={
                ":true": {"BOOL": True},
                ":error": {"S": json_text(error)},
                ":now": {"S": now_text()},
            },
        )

    def claim(self, batch_id: str, lines: Sequence[tuple[str, int]]) -> dict[str, int]:
        """Reserve item ids for manifest lines, ``(id, line)`` in manifest order: the line that holds
        each id (the first line naming it, unless an earlier chunk's line took it). A hundred ids
        per transaction, each conditioned on the id being free or held by that same line, so a
        redelivered chunk claims the same ids for the same lines."""
        first: dict[str, int] = {}
        for item_id, line in lines:
            first.setdefault(item_id, line)  # a transaction touches each item once
        holders: dict[str, int] = {}
        ids = list(first)
        for start in range(0, len(ids), _TRANSACTION_ITEMS):
            holders.update(
                self._claim_free(batch_id, {i: first[i] for i in ids[start : start + _TRANSACTION_ITEMS]})
            )
        return holders

    def _claim_free(self, batch_id: str, wanted: dict[str, int]) -> dict[str, int]:
        """Claim up to a hundred ids in one transaction. A refused one answers with the line that
        holds it; the rest are tried again without it."""
        holders: dict[str, int] = {}
        for _ in range(_TRANSACTION_ITEMS + 5):  # each refusal settles one id at least
            if not wanted:
                return holders
            claims = list(wanted.items())
            try:
                dynamodb_client().transact_write_items(
                    TransactItems=[_claiming(self._table, batch_id, i, line) for i, line in claims]
                )
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                for (item_id, _line), reason in zip(claims, _reasons(exc), strict=False):
                    if reason.get("Code") == "ConditionalCheckFailed":
                        holders[item_id] = int(reason.get("Item", {}).get("line", {}).get("N", "0"))
                        del wanted[item_id]
                continue
            return holders | wanted
        raise RuntimeError(f"the ids of batch {batch_id} kept changing under this claim")

    def state(self, batch_id: str, item_id: str) -> str | None:
        value = get_item(self._table, _item_key(batch_id, item_id)).get("state", {}).get("S")
        return str(value) if value else None

    def settle(
        self, batch_id: str, item_id: str, state: str, *, images: int = 0, cost_usd: float = 0
    ) -> Settled:
        """Move an item to ``succeeded``, ``failed`` or (a redrive) back to ``queued``, and count it
        once: only settled states are counted. Unchanged when it already was in that state.

        Nothing is read first: the change is tried as from the state an item has until it first
        settles (none), and a refused condition answers with the state the item has, to try from.
        The batch's counters change on condition that the batch still runs after it; when it may
        not, the change is made without, and the answer says the batch may have finished."""
        before: str | None = None
        running = True  # the batch's condition, until refused
        for _ in range(6):  # a concurrent change of the same item: try again from what it is now
            if before == state:
                return Settled(changed=False, may_finish=False)
            change = _settling(self._table, batch_id, item_id, before, state, images, cost_usd, running)
            try:
                dynamodb_client().transact_write_items(TransactItems=change)
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                item, batch = [*_reasons(exc), {}, {}][:2]
                if item.get("Code") == "ConditionalCheckFailed":
                    before = _state_of(item)
                elif batch.get("Code") == "ConditionalCheckFailed":
                    running = False
                continue
            return Settled(changed=True, may_finish=not running)
        raise RuntimeError(f"item {item_id} of batch {batch_id} kept changing under this update")

    def tally(self, batch_id: str) -> Tally | None:
        return _tally(get_item(self._table, _batch_key(batch_id)))

    def mark_finished(self, batch_id: str) -> Tally | None:
        """The batch finished (when it first did): its counters, in one call; None (nothing written)
        while its manifest is not all read or items are pending (no ``pending``: none counted)."""
        names = {"#finished": "finished_at", "#done": "manifest_done", "#pending": "pending"}
        values: dict[str, Any] = {":now": {"S": now_text()}, ":true": {"BOOL": True}, ":none": {"N": "0"}}
        try:
            written = dynamodb_client().update_item(
                TableName=self._table,
                Key={"id": {"S": _batch_key(batch_id)}},
                UpdateExpression="SET #finished = if_not_exists(#finished, :now)",
                ConditionExpression="#done = :true AND (attribute_not_exists(#pending) OR #pending <= :none)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not conditional_failure(exc):
                raise
            return None
        return _tally(dict(written.get("Attributes", {})))

    def reopen(self, batch_id: str) -> None:
        """A redrive: the batch is not finished until the re-queued items settle again."""
        dynamodb_client().update_item(
            TableName=self._table,
            Key={"id": {"S": _batch_key(batch_id)}},
            UpdateExpression="REMOVE #finished",
            ExpressionAttributeNames={"#finished": "finished_at"},
        )


def _tally(item: dict[str, Any]) -> Tally | None:
    """A batch's item as its counters (None: no such batch)."""
    if not item:
        return None

    def number(name: str) -> float:
        return float(item.get(name, {}).get("N", "0"))

    return Tally(
        total=int(number("total")),
        succeeded=int(number("succeeded")),
        failed=int(number("failed")),
        images=int(number("images")),
        cost_usd=round(number("cost_usd"), 6),
        started_at=item.get("started_at", {}).get("S"),
        finished_at=item.get("finished_at", {}).get("S"),
        manifest_done=bool(item.get("manifest_done", {}).get("BOOL", False)),
        error=json.loads(item["error"]["S"]) if "S" in item.get("error", {}) else None,
    )


def _batch_key(batch_id: str) -> str:
    return f"batch#{batch_id}"


def _item_key(batch_id: str, item_id: str) -> str:
    return f"{_batch_key(batch_id)}#item#{item_id}"


def _settling(
    table: str,
    batch_id: str,
    item_id: str,
    before: str | None,
    state: str,
    images: int,
    cost_usd: float,
    running: bool,
) -> list[Any]:
    """The transaction that moves an item from ``before`` to ``state`` and counts the change: the
    item's update conditioned on ``before`` (answering the item as it is when refused), and the
    batch's counters, conditioned (if ``running``) on the batch still running after the change:
    its manifest not all read, or items still pending (``pending`` is ``total`` less the settled)."""
    changes = {state: 1, **({before: -1} if before else {})}
    adds = {name: delta for name, delta in changes.items() if name in _COUNTED_STATES}
    settled = sum(adds.values())
    add = "".join(f"#{name} :{name}, " for name in adds)
    names = {f"#{name}": name for name in adds}
    values: dict[str, Any] = {f":{name}": {"N": str(delta)} for name, delta in adds.items()}
    values[":images"] = {"N": str(images)}
    values[":cost"] = {"N": str(Decimal(str(round(cost_usd, 6))))}
    values[":unsettled"] = {"N": str(-settled)}
    batch: dict[str, Any] = {
        "TableName": table,
        "Key": {"id": {"S": _batch_key(batch_id)}},
        "UpdateExpression": f"ADD {add}#images :images, #cost :cost, #pending :unsettled",
        "ExpressionAttributeNames": {
            **names,
            "#images": "images",
            "#cost": "cost_usd",
            "#pending": "pending",
        },
        "ExpressionAttributeValues": values,
    }
    if running:
        batch["ConditionExpression"] = "attribute_not_exists(#done) OR #pending > :settled"
        batch["ExpressionAttributeNames"]["#done"] = "manifest_done"
        values[":settled"] = {"N": str(settled)}
    condition = "attribute_not_exists(#state)" if before is None else "#state = :before"
    state_values: dict[str, Any] = {":state": {"S": state}}
    if before is not None:
        state_values[":before"] = {"S": before}
    return [
        {
            "Update": {
                "TableName": table,
                "Key": {"id": {"S": _item_key(batch_id, item_id)}},
                "UpdateExpression": "SET #state = :state",
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": state_values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {"Update": batch},
    ]


def _state_of(reason: dict[str, Any]) -> str | None:
    """The item's state, as a refused condition answered with it."""
    found = reason.get("Item", {}).get("state", {}).get("S")
    return str(found) if found else None


def _claiming(table: str, batch_id: str, item_id: str, line: int) -> Any:
    return {
        "Update": {
            "TableName": table,
            "Key": {"id": {"S": _item_key(batch_id, item_id)}},
            "UpdateExpression": "SET #line = :line",
            "ConditionExpression": "attribute_not_exists(#line) OR #line = :line",
            "ExpressionAttributeNames": {"#line": "line"},
            "ExpressionAttributeValues": {":line": {"N": str(line)}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def _reasons(exc: ClientError) -> list[dict[str, Any]]:
    """Why a transaction was cancelled, one reason per item in its order (``"None"``: not that one)."""
    reasons: list[Any] = list(exc.response.get("CancellationReasons", []))
    return reasons
