"""Asynchronous edit jobs, as the HTTPS door offers them: submit (checked as a synchronous edit is,
before anything is paid, with the minutes a batch item has), read, list and cancel, each caller
its own jobs only. The batch function runs them (``editgate.app.batch.jobs``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from editgate.adapters.callbacks import CallbackSender
from editgate.adapters.fal import FalClient, FalSubmission
from editgate.adapters.jobs import JobTable
from editgate.adapters.journal import SubmissionJournal
from editgate.adapters.keys import WebhookSecrets
from editgate.adapters.queue import WorkQueue
from editgate.app.edit_service import EditCall, EditService
from editgate.app.preparing import prepare
from editgate.domain import envelope, identity, jobs
from editgate.domain.errors import IdempotencyKeyReused, InvalidRequest, NotFound
from editgate.domain.jobs import Job
from editgate.domain.models import MAX_N, EditResult

# How long a cancel may wait on fal's cancel calls.
CANCEL_SECONDS = 5.0


@dataclass(frozen=True)
class JobView:
    """A job as its caller reads it: its result's images presigned (or read back) now."""

    job: Job
    result: EditResult | None


@dataclass
class JobService:
    edits: EditService  # the HTTPS door's: its checks, fetcher and results bucket
    table: JobTable
    queue: WorkQueue  # the batch queue, which runs jobs
    prefix: str  # the jobs' folders in the results bucket
    # The batch function's timeout: what a job's run has, and so what a job is admitted with.
    run_timeout_seconds: int
    callbacks: CallbackSender
    secrets: WebhookSecrets
    # The batch function's journal: the fal requests a running job submitted, to cancel them.
    journal: SubmissionJournal

    def submit(self, call: EditCall) -> JobView:
        """A new job queued, or, for an Idempotency-Key sent before, the job it made. Refused
        (400) as a synchronous edit would be, before anything is stored or paid."""
        key = identity.idempotency_key(call.idempotency_key)
        if call.stream:
            raise InvalidRequest("stream=true answers at once: a job cannot stream.", param="stream")
        callback = self._callback(call)
        services = self.edits.services
        run_deadline = time.monotonic() + envelope.batch_seconds(self.run_timeout_seconds * 1000)
        if len(call.inputs) != 1:
            prepare(call.request, call.inputs, services, run_deadline)  # its 400 for none or several
        given = call.inputs[0]
        # An image URL is fetched within the HTTPS request's own deadline.
        image = given if isinstance(given, bytes) else services.fetcher.fetch(given, call.deadline)
        prepare(call.request, [image], services, run_deadline)
        edit = identity.for_request(call.caller, key, call.request, call.inputs)
        job_id = jobs.job_id(edit.key if key else None)
        if key and (earlier := self.table.get(job_id)) is not None:
            return self._view(_same_request(earlier, edit.digest))
        stored = f"{jobs.folder(self.prefix, job_id)}/input/0"
        services.store.put(stored, image, "application/octet-stream")
        job = Job(
            id=job_id,
            caller=call.caller,
            created=int(time.time()),
            request=call.request.model_dump(mode="json"),
            inputs=(stored,),
            digest=edit.digest,
            callback_url=callback,
        )
        recorded = self.table.create(job)
        if recorded is not job:  # the same key's other request won the race
            return self._view(_same_request(recorded, edit.digest))
        self.queue.send([{"kind": "job", "job_id": job_id}])
        return JobView(job, None)

    def get(self, caller: str, job_id: str) -> JobView:
        return self._view(self._own(caller, job_id))

    def page(self, caller: str, limit: int, after: str | None) -> tuple[list[JobView], bool]:
        """``caller``'s jobs, newest first, after the job ``after``."""
        cursor = self._own(caller, after, param="after").id if after else None
        found, more = self.table.page(caller, limit, cursor)
        return [self._view(job) for job in found], more

    def cancel(self, caller: str, job_id: str) -> JobView:
        """A job that has not ended, cancelled: one not started never reaches fal; a running
        one's fal requests are cancelled (fal bills none it had not started). An ended job is
        answered as it is."""
        job = self._own(caller, job_id)
        if self.table.move(job_id, "cancelled", only_from=("queued", "in_progress")):
            self._cancel_at_fal(job_id)
            if job.callback_url:
                self.queue.send([{"kind": "callback", "job_id": job_id, "attempt": 0}])
        return self.get(caller, job_id)

    def _callback(self, call: EditCall) -> str | None:
        if call.callback_url is None:
            return None
        url = self.callbacks.check(call.callback_url)
        if self.secrets.get(call.caller) is None:
            raise InvalidRequest(
                "This API key has no webhook secret to sign callbacks with: have one made "
                "(editgate keys webhook-secret --id KEY_ID), or submit without callback_url.",
                param="callback_url",
                code="no_webhook_secret",
            )
        return url

    def _own(self, caller: str, job_id: str, *, param: str | None = None) -> Job:
        """The caller's job: another key's is as unknown as a job that never was."""
        job = self.table.get(job_id) if job_id.startswith("job_") else None
        if job is None or job.caller != caller:
            raise NotFound(f"No job '{job_id[:64]}' of this API key.", param=param, code="job_not_found")
        return job

    def _view(self, job: Job) -> JobView:
        result = None
        if job.status == "succeeded" and job.result is not None:
            result = self.edits.with_urls(EditResult.model_validate(job.result))
        return JobView(job, result)

    def _cancel_at_fal(self, job_id: str) -> None:
        cancel_at_fal(job_id, self.journal, self.edits.services.fal, time.monotonic() + CANCEL_SECONDS)


def cancel_at_fal(job_id: str, journal: SubmissionJournal, fal: FalClient, deadline: float) -> None:
    """Every fal request the job's edit journaled, cancelled (fal bills none it had not started;
    one that had ended is left as it is)."""
    edit = journal.open(identity.job_edit_key(job_id), 0)
    for index in range(MAX_N):
        entry = edit.get(index)
        if entry and "submission" in entry:
            fal.cancel(FalSubmission.model_validate(entry["submission"]), deadline)


def _same_request(job: Job, digest: str) -> Job:
    if job.digest != digest:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different request; send a new key.",
            param="Idempotency-Key",
        )
    return job
