"""What dead letters leave behind, on the local stack as a team sees it: a fal request whose
collect step dead-lettered after its webhook was taken (the sweeper skips it while the webhook's
receipt lives) is collected by ``editgate batch redrive``; a job whose message dead-lettered is
failed by the batch function's schedule once it is stale, and its caller is told. The schedule
runs as the batch function runs it (its wiring, its settings), at a ``now`` hours ahead: no wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from standardwebhooks.webhooks import Webhook

from editgate import wiring
from editgate.adapters.jobs import JobTable
from editgate.app.batch import sweeper
from editgate_local import cli
from editgate_local.batch_driver import QueueDriver
from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import (
    BATCH_BUCKET,
    JOBS_TABLE,
    REGION,
    LocalStack,
    batch_environment,
    batch_handlers,
)
from tests.conftest import API_KEY
from tests.integration.conftest import FUNCTION_TIMEOUT
from tests.integration.test_batch import drop_batch, finished, records, tiny_png
from tests.integration.test_jobs import JOB_TIMEOUT, Receiver, read, submit, until

# The batch function's default JOB_STALE_SECONDS (two hours), and a minute more.
PAST_STALE = 2 * 3600 + 60


@pytest.fixture
def sqs() -> Any:
    return boto3.client("sqs", region_name=REGION)


@pytest.fixture
def swept(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """``swept(seconds)``: one run of the batch function's schedule as it would run ``seconds``
    from now, with the batch function's wiring and settings."""

    def sweep(seconds: float) -> None:
        with monkeypatch.context() as patched:
            for name, value in batch_environment().items():
                patched.setenv(name, value)
            runtime = wiring.batch_door()
        sweeper.sweep(runtime, time.monotonic() + FUNCTION_TIMEOUT, now=time.time() + seconds)

    return sweep


def dead_letter(sqs: Any, queue_url: str, dead_letter_url: str, holding: str) -> None:
    """The message of ``queue_url`` whose body holds ``holding`` moved to its dead-letter queue,
    as SQS moves it after its last failed receive (the others left as they are)."""
    found: list[dict[str, Any]] = []

    def received() -> bool:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        found.extend(m for m in messages if holding in m["Body"])
        for message in messages:
            if holding not in message["Body"]:
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
        return bool(found)

    until(received, timeout=60)
    sqs.send_message(QueueUrl=dead_letter_url, MessageBody=found[0]["Body"])
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=found[0]["ReceiptHandle"])


def test_given_a_collect_message_dead_lettered_when_the_batch_is_redriven_then_its_item_is_collected(
    stack: LocalStack, emulator: FalEmulator, s3: Any, sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a batch item submitted to fal, whose webhook was taken and whose collect step then
    dead-lettered (the sweeper, looking every 0.2 s, skips a request whose webhook was taken),
    When the operator runs `editgate batch redrive`,
    Then it says it queued that collect step again, the item is collected and succeeds, the
    batch finishes, and fal got one submit."""
    env = batch_environment()
    sqs.purge_queue(QueueUrl=env["COLLECT_DEAD_LETTER_QUEUE_URL"])
    queue_arn = sqs.get_queue_attributes(QueueUrl=env["BATCH_QUEUE_URL"], AttributeNames=["QueueArn"])
    items_only = QueueDriver(env["BATCH_QUEUE_URL"], queue_arn["Attributes"]["QueueArn"], batch_handlers(1),
                             function_timeout=FUNCTION_TIMEOUT)  # fmt: skip
    with items_only:
        lines = [{"id": "lost", "image": "0.png", "prompt": "x"}]
        drop_batch(s3, "collect-dead", {"0.png": tiny_png(0)}, lines)
        until(lambda: len(emulator.request_ids) == 1, timeout=60)
        request_id = emulator.request_ids[0]
        dead_letter(sqs, env["COLLECT_QUEUE_URL"], env["COLLECT_DEAD_LETTER_QUEUE_URL"], request_id)
        until(items_only.idle)

    with stack.batch_driver(2, {"SWEEP_AFTER_SECONDS": "0"}, sweep_every=0.2) as driver:
        code = cli.main(["batch", "redrive", "collect-dead", "--bucket", BATCH_BUCKET])

        printed = capsys.readouterr().out
        assert code == 0
        assert "1 dead-lettered collect step(s)" in printed, printed
        done = finished(s3, "collect-dead", timeout=60)
        until(driver.idle)
    assert done["counts"] == {"succeeded": 1, "failed": 0, "pending": 0}
    assert records(s3, "collect-dead")["lost"]["provider_request_ids"] == [request_id]
    assert emulator.calls["submit"] == 1


def test_given_a_job_whose_message_dead_lettered_when_the_sweeper_runs_then_the_job_fails_and_its_callback_is_sent(  # noqa: E501
    stack: LocalStack, emulator: FalEmulator, sqs: Any, swept: Callable[[float], None]
) -> None:
    """Given a job with a callback_url that a run took (in progress) and whose message then
    dead-lettered,
    When the batch function's schedule runs two hours later,
    Then GET answers it failed with an OpenAI-shaped job_expired error, and the receiver gets
    one delivery, verified with the key's secret, saying failed."""
    env = batch_environment()
    with Receiver() as receiver:
        _, _, job = submit(stack, callback_url=receiver.url)
        assert JobTable(JOBS_TABLE).move(job["id"], "in_progress", only_from=("queued",))  # as a run does
        dead_letter(sqs, env["BATCH_QUEUE_URL"], env["BATCH_DEAD_LETTER_QUEUE_URL"], job["id"])
        swept(60)  # not stale yet
        assert read(stack, f"/v1/images/edits/jobs/{job['id']}").json()["status"] == "in_progress"

        swept(PAST_STALE)

        answer = read(stack, f"/v1/images/edits/jobs/{job['id']}").json()
        assert answer["status"] == "failed"
        assert answer["result"] is None
        assert set(answer["error"]) == {"message", "type", "param", "code"}
        assert answer["error"]["code"] == "job_expired"
        assert "fal was asked to cancel its requests" in answer["error"]["message"]
        with stack.batch_driver(1) as driver:
            until(lambda: len(receiver.deliveries) == 1 and driver.idle(), timeout=60)
    headers, body = receiver.deliveries[0]
    event = Webhook(stack.webhook_secret(API_KEY)).verify(body, headers)
    assert event["data"] == {"id": job["id"], "object": "image.edit.job", "status": "failed"}
    assert emulator.request_ids == []
    sqs.purge_queue(QueueUrl=env["BATCH_DEAD_LETTER_QUEUE_URL"])  # other modules' redrives count theirs


def test_given_a_job_still_running_at_fal_when_it_is_swept_as_stale_then_fal_cancels_it_and_it_stays_failed(
    stack: LocalStack, emulator: FalEmulator, swept: Callable[[float], None]
) -> None:
    """Given a job whose fal request is still running (fal takes 30 s),
    When the schedule finds it stale,
    Then its fal request is cancelled and nothing is billed, and the collect step that fal's
    webhook about the cancelled request brings leaves the job failed (job_expired), as its
    caller reads it."""
    emulator.latency = 30.0
    stack.set_batch_timeout(JOB_TIMEOUT)
    try:
        with stack.batch_driver(1) as driver:
            _, _, job = submit(stack)
            until(lambda: len(emulator.request_ids) == 1, timeout=60)

            swept(PAST_STALE)

            assert emulator.calls["cancel"] == 1
            until(lambda: len(emulator.webhooks.deliveries) == 1 and driver.idle(), timeout=60)
    finally:
        emulator.latency = 0.0
        stack.set_batch_timeout(60.0)
    answer = read(stack, f"/v1/images/edits/jobs/{job['id']}").json()
    assert (answer["status"], answer["error"]["code"]) == ("failed", "job_expired")
    assert emulator.billed() == set()
