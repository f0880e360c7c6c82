"""The jobs' sweeper with fakes in the adapters' places (as ``test_orchestration``): which jobs
it ends, what it cancels at fal, and whose callback it queues. The table's sparse index itself
runs on moto in ``tests/integration/test_dead_letters.py``."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from editgate.adapters.callbacks import CallbackSender
from editgate.adapters.fal import FalSubmission
from editgate.adapters.jobs import JobTable
from editgate.adapters.journal import EditJournal
from editgate.adapters.keys import WebhookSecrets
from editgate.adapters.queue import WorkQueue
from editgate.app.batch.job_sweeper import sweep_jobs
from editgate.app.batch.jobs import run_job
from editgate.app.batch.runtime import BatchRuntime, JobRunner
from editgate.app.edit_service import EditService
from editgate.domain import jobs
from editgate.domain.errors import UpstreamError
from editgate.domain.identity import job_edit_key
from editgate.domain.jobs import Job, JobStatus
from editgate.domain.models import EditRequest
from tests.unit.test_orchestration import INPUT, FakeCollectJournal, FakeFal, FakeJournals, batch, services

STALE = 7200
STARTED = 1_700_000_000.0


class CancellingFal(FakeFal):
    """fal that records each cancel (or refuses them all: ``down``)."""

    def __init__(self, *, down: bool = False) -> None:
        super().__init__()
        self.cancelled: list[str] = []
        self.down = down

    def cancel(self, submission: FalSubmission, deadline: float) -> bool:
        if self.down:
            raise UpstreamError("The provider answered HTTP 503.")
        self.cancelled.append(submission.request_id)
        return True


class FakeJobTable(JobTable):
    """The jobs' table in memory, its ``unended`` index as the adapter keeps it: since when each
    job not ended was queued or started. ``lagging``: ended jobs the index still lists (a GSI is
    eventually consistent)."""

    def __init__(self) -> None:
        super().__init__("jobs")
        self.jobs: dict[str, Job] = {}
        self.since: dict[str, float] = {}
        self.lagging: list[str] = []

    def add(self, job_id: str, status: JobStatus, since: float, callback_url: str | None = None) -> None:
        self.jobs[job_id] = Job(id=job_id, caller="key_1", created=int(since), status=status,
                                request={}, inputs=(), digest="d", callback_url=callback_url)  # fmt: skip
        if status not in jobs.ENDED:
            self.since[job_id] = since

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def unended(self, since_before: float, limit: int) -> list[str]:
        found = sorted((since, job_id) for job_id, since in self.since.items() if since < since_before)
        return ([job_id for _, job_id in found] + self.lagging)[:limit]

    def move(self, job_id: str, to: JobStatus, *, only_from: tuple[JobStatus, ...], **outcome: Any) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.status not in only_from:
            return False
        self.jobs[job_id] = job.model_copy(update={"status": to, **outcome})
        if to in jobs.ENDED:
            self.since.pop(job_id, None)
        return True


class FakeQueue(WorkQueue):
    def __init__(self) -> None:
        super().__init__("https://sqs.invalid/batch")
        self.sent: list[dict[str, Any]] = []

    def send(self, documents: Any) -> None:
        self.sent.extend(documents)


def job_id(number: int) -> str:
    return f"job_{number:032x}"


def runtime(fal: FakeFal, table: FakeJobTable) -> tuple[BatchRuntime, FakeQueue, FakeJournals]:
    wired = services(fal)
    assert isinstance(wired.journal, FakeJournals)
    runner = JobRunner(
        edits=EditService(wired), table=table, prefix="results/jobs/", callbacks=CallbackSender(),
        secrets=WebhookSecrets("keys"), callback_retry_seconds=30, callback_attempts=6, stale_seconds=STALE,
    )  # fmt: skip
    queue = FakeQueue()
    return replace(batch(fal)[0], jobs=runner, queue=queue), queue, wired.journal


def journaled(journals: FakeJournals, job: str, *request_ids: str) -> None:
    """The fal requests a run of ``job`` submitted, as its edit's journal holds them."""
    journals.entries[job_edit_key(job)] = {
        str(call): {"submission": FalSubmission(request_id=request_id, status_url=f"https://q.invalid/{request_id}",
                                                response_url=f"https://q.invalid/{request_id}",
                                                submitted_at=STARTED).model_dump(mode="json")}
        for call, request_id in enumerate(request_ids)
    }  # fmt: skip


def soon() -> float:
    return time.monotonic() + 20


def test_given_a_job_whose_message_dead_lettered_when_the_sweeper_runs_then_the_job_fails_and_its_callback_is_sent() -> (  # noqa: E501
    None
):
    """Given a job started two hours ago with two fal requests journaled, whose run died (its
    message dead-lettered), and a queued job made as long ago,
    When the sweeper runs,
    Then both fail with an OpenAI-shaped job_expired error, the running one's fal requests are
    cancelled, and a callback is queued for the one with a callback_url."""
    fal, table = CancellingFal(), FakeJobTable()
    table.add(job_id(1), "in_progress", STARTED, callback_url="https://hooks.example.com/editgate")
    table.add(job_id(2), "queued", STARTED + 1)
    swept, queue, journals = runtime(fal, table)
    journaled(journals, job_id(1), "req-a", "req-b")

    expired = sweep_jobs(swept, soon(), now=STARTED + STALE + 2)

    assert expired == 2
    for number in (1, 2):
        job = table.jobs[job_id(number)]
        assert job.status == "failed"
        assert job.error is not None
        error = job.error["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert (error["code"], error["type"]) == ("job_expired", "server_error")
        assert "fal was asked to cancel its requests" in error["message"]
    assert fal.cancelled == ["req-a", "req-b"]
    assert queue.sent == [{"kind": "callback", "job_id": job_id(1), "attempt": 0}]
    assert table.unended(STARTED + 10 * STALE, 100) == []


def test_given_jobs_younger_than_the_stale_time_when_the_sweeper_runs_then_they_are_left_alone() -> None:
    """Given a job started just under the stale time ago and one queued a moment ago,
    When the sweeper runs,
    Then neither changes, fal is not called and nothing is queued."""
    fal, table = CancellingFal(), FakeJobTable()
    table.add(job_id(1), "in_progress", STARTED + 1)
    table.add(job_id(2), "queued", STARTED + STALE - 5)
    swept, queue, journals = runtime(fal, table)
    journaled(journals, job_id(1), "req-a")

    assert sweep_jobs(swept, soon(), now=STARTED + STALE) == 0

    assert [table.jobs[job_id(n)].status for n in (1, 2)] == ["in_progress", "queued"]
    assert (fal.cancelled, queue.sent) == ([], [])


def test_given_a_job_that_ended_as_the_index_was_read_when_the_sweeper_runs_then_it_keeps_its_end() -> None:
    """Given a job that succeeded which the index still lists (a GSI lags its table),
    When the sweeper runs,
    Then the job stays succeeded, its fal requests are not cancelled, and no callback is queued."""
    fal, table = CancellingFal(), FakeJobTable()
    table.add(job_id(1), "succeeded", STARTED, callback_url="https://hooks.example.com/editgate")
    table.lagging.append(job_id(1))
    swept, queue, journals = runtime(fal, table)
    journaled(journals, job_id(1), "req-a")

    assert sweep_jobs(swept, soon(), now=STARTED + STALE + 1) == 0

    assert table.jobs[job_id(1)].status == "succeeded"
    assert (fal.cancelled, queue.sent) == ([], [])


def test_given_fal_unreachable_when_expired_jobs_are_swept_then_each_still_fails_and_is_told() -> None:
    """Given two expired jobs with callbacks and fal refusing every cancel,
    When the sweeper runs,
    Then both fail and both callbacks are queued (a cancel fal refused stops no other job)."""
    fal, table = CancellingFal(down=True), FakeJobTable()
    for number in (1, 2):
        table.add(job_id(number), "in_progress", STARTED, callback_url="https://hooks.example.com/editgate")
    swept, queue, journals = runtime(fal, table)
    for number in (1, 2):
        journaled(journals, job_id(number), f"req-{number}")

    assert sweep_jobs(swept, soon(), now=STARTED + STALE + 1) == 2

    assert [table.jobs[job_id(n)].status for n in (1, 2)] == ["failed", "failed"]
    assert [message["job_id"] for message in queue.sent] == [job_id(1), job_id(2)]


def test_given_a_job_cancelled_while_its_run_submits_it_when_the_run_ends_then_fal_is_asked_to_cancel_its_request(  # noqa: E501
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The review's finding: a DELETE that came while the run was submitting found no fal request
    to cancel yet, and the run submitted anyway: fal ran (and billed) a cancelled job's edit.
    Given a queued job, when it is cancelled while its run submits its edit, then the run ends
    answering "cancelled" and fal is asked to cancel the request it had just submitted."""
    fal, table = CancellingFal(), FakeJobTable()
    table.add(job_id(1), "queued", STARTED)
    ran, _queue, journals = runtime(fal, table)
    assert ran.jobs is not None
    ran.jobs.edits.services.store.put("results/jobs/in/0", INPUT, "image/png")
    request = EditRequest.from_values({"prompt": "make it green"}).model_dump(mode="json")
    table.jobs[job_id(1)] = table.jobs[job_id(1)].model_copy(
        update={"request": request, "inputs": ("results/jobs/in/0",)}
    )
    collected = ran.collecting.journal
    assert isinstance(collected, FakeCollectJournal)

    def journal_item(edit_key: str, ttl_seconds: int) -> EditJournal:
        # The edit's journal item, which the submit wrote through the collect journal.
        entries = {str(call): entry for call, entry in collected.entries.get(edit_key, {}).items()}
        return EditJournal("idempotency", f"journal#{edit_key}", ttl_seconds, entries)

    monkeypatch.setattr(journals, "open", journal_item)

    def cancel() -> None:  # the caller's DELETE, while fal takes the submit
        assert table.move(job_id(1), "cancelled", only_from=("queued", "in_progress"))

    fal.meanwhile = cancel

    assert run_job(job_id(1), ran, last_attempt=False, deadline=soon()) == "cancelled"

    assert fal.cancelled == ["req-1"]
    assert table.jobs[job_id(1)].status == "cancelled"
