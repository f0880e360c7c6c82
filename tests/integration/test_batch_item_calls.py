"""What a webhooked batch item asks DynamoDB on its path (issue 16): its submit, fal's webhook
and its collect step, counted at the layer's DynamoDB client. Its own batch function, whose
sweeper (every minute, for requests 3 minutes old) never runs within the test: a sweep reads
journals for the requests whose webhook is late, which is not an item's path."""

from __future__ import annotations

from typing import Any

from editgate.adapters import aws
from editgate_local.batch_driver import QueueDriver
from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import IDEMPOTENCY_TABLE
from tests.integration.conftest import batch_driver
from tests.integration.test_batch import drop_batch, finished, tiny_png, until

driver = batch_driver(4)


def test_given_webhooked_batch_items_when_they_are_collected_then_the_journal_is_read_once_per_item_and_written_in_no_transaction(  # noqa: E501
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    """Given a batch of 4 items, each submitted with fal's webhook and collected when told,
    when the batch runs to its end,
    then the submissions' journal is read once per item (the webhook's lookup of its fal request:
    the collect step gets what it needs in its message) and never written in a transaction
    (issue 16: the collect step read the journal again, and each lookup was written in a
    transaction with the journal: 2 reads and 2 transactions per item with the ledger's settle)."""
    made: list[str] = []

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        if params.get("TableName") == IDEMPOTENCY_TABLE or any(
            IDEMPOTENCY_TABLE in str(entry) for entry in params.get("TransactItems", [])
        ):
            made.append(model.name)

    # The stack's functions run in this process and share the layer's DynamoDB client.
    events = aws.dynamodb_client().meta.events
    events.register("before-parameter-build.dynamodb.*", count)
    try:
        lines = [{"id": f"told-{i}", "image": f"{i}.png", "prompt": "read less"} for i in range(4)]
        drop_batch(s3, "webhook-reads", {f"{i}.png": tiny_png(i) for i in range(4)}, lines)
        done = finished(s3, "webhook-reads", timeout=60)
        until(driver.idle)
    finally:
        events.unregister("before-parameter-build.dynamodb.*", count)

    assert done["counts"] == {"succeeded": 4, "failed": 0, "pending": 0}
    assert made.count("GetItem") == 4
    assert made.count("TransactWriteItems") == 0
