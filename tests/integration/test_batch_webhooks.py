"""Batch items told by fal, not waiting on it: each item submits with fal's webhook and returns;
fal's signed webhooks (through the API front's open route) queue the collect step, and the
sweeper collects the requests whose webhook never came. What a team sees: every item's record,
the batch's summary, and fal's bill (the emulator counts submits and what it would bill)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from editgate_local.batch_driver import QueueDriver
from editgate_local.fal_emulator import FalEmulator, Fault
from editgate_local.stack import LocalStack
from tests.integration.conftest import FUNCTION_TIMEOUT
from tests.integration.test_batch import drop_batch, finished, records, tiny_png, until

# The record a succeeded item has had since batches began (items that waited on fal).
SUCCEEDED_FIELDS = {
    "id", "batch_id", "line", "state", "results", "size", "output_format", "model", "cost",
    "provider_request_ids", "failures", "ignored_params", "passthrough_params", "recorded_at",
}  # fmt: skip
FAILED_FIELDS = {"id", "batch_id", "line", "state", "error", "message", "recorded_at"}


@pytest.fixture(scope="module")
def driver(stack: LocalStack) -> Iterator[QueueDriver]:
    """The batch function with a sweeper that looks every half second for requests whose webhook
    has not come after 2 s (deployed: every minute, after 3 minutes)."""
    stack.set_batch_timeout(FUNCTION_TIMEOUT)
    with stack.batch_driver(10, {"SWEEP_AFTER_SECONDS": "2"}, sweep_every=0.5) as running:
        yield running


def test_given_20_percent_of_webhooks_dropped_and_10_percent_duplicated_when_200_items_run_then_every_item_succeeds_with_no_extra_fal_submit(  # noqa: E501
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    """Given fal's webhooks dropped 20 % and duplicated 10 % of the time,
    when a 200-item batch runs,
    then every item succeeds, fal got one submit per item and bills exactly the stored results,
    and the items the webhooks missed were collected by the sweeper."""
    emulator.webhook_faults(drop=0.2, duplicate=0.1, seed=17)
    lines = [{"id": f"sku-{i:03d}", "image": f"{i}.png", "prompt": "told, not waiting"} for i in range(200)]
    drop_batch(s3, "webhooked-200", {f"{i}.png": tiny_png(i) for i in range(200)}, lines)

    done = finished(s3, "webhooked-200", timeout=240)
    until(driver.idle)

    items = records(s3, "webhooked-200")
    assert done["counts"] == {"succeeded": 200, "failed": 0, "pending": 0}
    assert {record["state"] for record in items.values()} == {"succeeded"}
    assert emulator.calls["submit"] == 200  # no extra fal submit: none paid twice
    stored = {request_id for record in items.values() for request_id in record["provider_request_ids"]}
    assert len(stored) == 200
    assert emulator.billed() == stored
    faults = [delivery.fault for delivery in emulator.webhooks.deliveries]
    assert faults.count("drop") >= 20  # the sweeper collected these
    assert faults.count("duplicate") >= 5  # and these were collected once
    assert all(set(record) == SUCCEEDED_FIELDS for record in items.values())
    assert done["images"] == 200


def test_given_a_fal_request_that_ends_in_error_then_its_item_is_recorded_failed_with_an_openai_shaped_error(
    emulator: FalEmulator, driver: QueueDriver, s3: Any
) -> None:
    """Given fal ends an item's request with an ERROR webhook,
    when the batch runs,
    then the item is recorded failed with an OpenAI-shaped error, the others succeed, and the failed
    request is neither billed nor submitted again."""
    emulator.inject(Fault("submit", kind="failed"))
    lines = [{"id": "broken", "image": "0.png", "prompt": "fal fails this one"}]
    drop_batch(s3, "webhook-error", {"0.png": tiny_png(0)}, lines)

    done = finished(s3, "webhook-error", timeout=60)

    record = records(s3, "webhook-error")["broken"]
    assert done["counts"] == {"succeeded": 0, "failed": 1, "pending": 0}
    assert set(record) == FAILED_FIELDS
    assert set(record["error"]) == {"message", "type", "param", "code"}
    assert record["error"]["type"] == "server_error"
    assert record["message"]["item_id"] == "broken"
    assert emulator.calls["submit"] == 1
    assert emulator.billed() == set()
