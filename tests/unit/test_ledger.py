"""The batch ledger on moto's DynamoDB, every call it makes counted: an item settled and ids
claimed without reading first, each change still counted once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from editgate.adapters import aws
from editgate.adapters.ledger import BatchLedger

TABLE = "batches"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The ledger's DynamoDB calls, by name, on an empty table of moto's."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    aws.dynamodb_client.cache_clear()
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        made: list[str] = []

        def count(model: Any, **_: Any) -> None:
            made.append(model.name)

        aws.dynamodb_client().meta.events.register("before-call.dynamodb.*", count)
        yield made
    aws.dynamodb_client.cache_clear()


def counts(ledger: BatchLedger, calls: list[str]) -> tuple[int, int, int]:
    """The batch's succeeded, failed and images, read by the test (its read not counted)."""
    tally = ledger.tally("b1")
    assert tally is not None
    assert calls.pop() == "GetItem"
    return tally.succeeded, tally.failed, tally.images


def test_given_a_new_item_when_it_settles_then_the_ledger_reads_nothing_and_makes_one_transaction(
    calls: list[str],
) -> None:
    ledger = BatchLedger(TABLE)
    assert ledger.settle("b1", "cat", "succeeded", images=2, cost_usd=0.12).changed
    assert calls == ["TransactWriteItems"]
    assert counts(ledger, calls) == (1, 0, 2)


def test_given_a_succeeded_item_when_it_settles_again_then_it_is_not_counted_twice(calls: list[str]) -> None:
    ledger = BatchLedger(TABLE)
    ledger.settle("b1", "cat", "succeeded", images=1)
    assert not ledger.settle("b1", "cat", "succeeded", images=1).changed
    assert "GetItem" not in calls
    assert counts(ledger, calls) == (1, 0, 1)


def test_given_a_failed_item_when_a_later_attempt_succeeds_then_the_count_moves_once(
    calls: list[str],
) -> None:
    """The refused condition answers with the item's state: the change is tried again from it."""
    ledger = BatchLedger(TABLE)
    ledger.settle("b1", "cat", "failed")
    assert ledger.settle("b1", "cat", "succeeded", images=1).changed
    assert counts(ledger, calls) == (1, 0, 1)
    assert ledger.settle("b1", "cat", "queued").changed  # a redrive: pending again
    assert counts(ledger, calls) == (0, 0, 1)
    assert "GetItem" not in calls


def test_given_a_hundred_and_fifty_lines_when_claimed_then_two_transactions_claim_them(
    calls: list[str],
) -> None:
    ledger = BatchLedger(TABLE)
    holders = ledger.claim("b1", [(f"id-{n}", n) for n in range(1, 151)])
    assert holders == {f"id-{n}": n for n in range(1, 151)}
    assert calls == ["TransactWriteItems", "TransactWriteItems"]


def test_given_ids_named_twice_when_claimed_then_the_first_line_naming_each_holds_it(
    calls: list[str],
) -> None:
    """Within one transaction (which may touch an item once) and across chunks."""
    ledger = BatchLedger(TABLE)
    assert ledger.claim("b1", [("a", 1), ("b", 2), ("a", 3)]) == {"a": 1, "b": 2}
    assert ledger.claim("b1", [("c", 4), ("b", 5), ("d", 6)]) == {"c": 4, "b": 2, "d": 6}
    assert "GetItem" not in calls


def test_given_a_redelivered_chunk_when_it_claims_again_then_each_line_keeps_its_id(calls: list[str]) -> None:
    ledger = BatchLedger(TABLE)
    lines = [("a", 1), ("b", 2), ("a", 3)]
    assert ledger.claim("b1", lines) == ledger.claim("b1", lines) == {"a": 1, "b": 2}


def test_given_a_batch_all_read_when_its_last_item_settles_then_only_that_settle_makes_its_summary_due(
    calls: list[str],
) -> None:
    ledger = BatchLedger(TABLE)
    ledger.count_items("b1", 2, chunk="0", last=True)
    assert not ledger.settle("b1", "a", "succeeded", images=1).may_finish
    assert ledger.settle("b1", "b", "failed").may_finish
    assert "GetItem" not in calls
    assert counts(ledger, calls) == (1, 1, 1)


def test_given_a_batch_still_being_read_when_every_item_counted_so_far_settles_then_it_is_not_finished(
    calls: list[str],
) -> None:
    ledger = BatchLedger(TABLE)
    ledger.count_items("b1", 1, chunk="0", last=False)
    assert not ledger.settle("b1", "a", "succeeded").may_finish
    ledger.count_items("b1", 1, chunk="100", last=True)
    assert ledger.settle("b1", "b", "succeeded").may_finish


def test_given_a_finished_batch_when_a_failed_item_succeeds_later_then_its_summary_is_due_again(
    calls: list[str],
) -> None:
    """As an S3 Batch Operations task recorded failed while S3 retries it."""
    ledger = BatchLedger(TABLE)
    ledger.count_items("b1", 1, chunk="task", last=True)
    assert ledger.settle("b1", "a", "failed").may_finish
    assert ledger.settle("b1", "a", "succeeded", images=1).may_finish
    assert counts(ledger, calls) == (1, 0, 1)


def test_given_a_finished_batch_when_marked_finished_then_its_counters_come_back_without_a_read(
    calls: list[str],
) -> None:
    ledger = BatchLedger(TABLE)
    ledger.count_items("b1", 1, chunk="0", last=True)
    ledger.settle("b1", "a", "succeeded", images=2)
    tally = ledger.mark_finished("b1")
    assert tally is not None
    assert (tally.succeeded, tally.images, tally.done) == (1, 2, True)
    assert tally.finished_at is not None
    assert "GetItem" not in calls


@pytest.mark.parametrize(
    ("counted", "all_read"),
    [pytest.param(2, True, id="items pending"), pytest.param(1, False, id="manifest still being read")],
)
def test_given_a_batch_not_finished_when_marked_finished_then_nothing_is_written(
    calls: list[str], counted: int, all_read: bool
) -> None:
    """A settle's ``may_finish`` is a hint: the batch is marked finished only if it has."""
    ledger = BatchLedger(TABLE)
    ledger.count_items("b1", counted, chunk="0", last=all_read)
    ledger.settle("b1", "a", "succeeded", images=1)
    assert ledger.mark_finished("b1") is None
    tally = ledger.tally("b1")
    assert tally is not None
    assert (tally.succeeded, tally.finished_at) == (1, None)


def test_given_a_manifest_refused_before_any_item_when_marked_finished_then_it_is(calls: list[str]) -> None:
    """No item counted: nothing is pending."""
    ledger = BatchLedger(TABLE)
    ledger.stop_reading("b1", {"message": "not JSON Lines", "code": "invalid_manifest"})
    tally = ledger.mark_finished("b1")
    assert tally is not None
    assert (tally.total, tally.done) == (0, True)
    assert tally.finished_at is not None
