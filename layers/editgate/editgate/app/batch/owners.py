"""Whose a webhooked edit is, as its journal's work names it: a batch item's (``{"item": …}``) or an
asynchronous job's (``{"job": …, "input": …}``). The collect step asks its owner where the
images go, what the input was (for its transparency), and how the edit's end is recorded: an
item's record and ledger settle, or the job's status and its callback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from editgate.app import metrics
from editgate.app.batch.items import results_folder, settle, succeeded_record
from editgate.app.batch.jobs import end_job, job_output_folder
from editgate.app.batch.messages import ItemMessage
from editgate.app.batch.runtime import BatchRuntime, JobRunner
from editgate.app.edit_service import EditService
from editgate.domain import jobs
from editgate.domain.models import EditResult


class EditOwner(Protocol):
    @property
    def edits(self) -> EditService:
        """The edit service whose store keeps the owner's images."""

    @property
    def folder(self) -> str: ...

    @property
    def request_id(self) -> str:
        """The answer's ``request_id``."""

    def source(self) -> bytes:
        """The edit's input image, read again."""

    def finished(self) -> bool:
        """Whether the edit's end was recorded already."""

    def failed(self, error: dict[str, Any]) -> str: ...

    def succeeded(self, result: EditResult) -> str: ...


def owner_of(work: dict[str, Any], runtime: BatchRuntime) -> EditOwner:
    if "job" in work:
        if runtime.jobs is None:
            raise RuntimeError("a job's fal request, and this stack has no jobs' table")
        return JobOwner(str(work["job"]), str(work["input"]), runtime.jobs, runtime)
    return ItemOwner(ItemMessage.model_validate(work["item"]), runtime)


@dataclass(frozen=True)
class ItemOwner:
    item: ItemMessage
    runtime: BatchRuntime

    @property
    def edits(self) -> EditService:
        return self.runtime.edits

    @property
    def folder(self) -> str:
        return results_folder(self.item)

    @property
    def request_id(self) -> str:
        return f"{self.item.batch_id}/{self.item.item_id}"

    def source(self) -> bytes:
        item = self.item
        return self.runtime.store.read(item.image_bucket, item.image_key, version_id=item.image_version)

    def finished(self) -> bool:
        return self.runtime.ledger.state(self.item.batch_id, self.item.item_id) == "succeeded"

    def failed(self, error: dict[str, Any]) -> str:
        item = self.item
        record = {"state": "failed", "error": error, "message": item.model_dump()}  # as failed_record
        settle(self.runtime, item.batch_id, item.item_id, item.line, record, 0, 0.0)
        return "failed"

    def succeeded(self, result: EditResult) -> str:
        item, images = self.item, len(result.images)
        settle(self.runtime, item.batch_id, item.item_id, item.line, succeeded_record(result), images,
               result.cost_usd)  # fmt: skip
        metrics.add("ImagesEdited", images)
        return "succeeded"


@dataclass(frozen=True)
class JobOwner:
    job_id: str
    input_key: str
    runner: JobRunner
    runtime: BatchRuntime

    @property
    def edits(self) -> EditService:
        return self.runner.edits

    @property
    def folder(self) -> str:
        return job_output_folder(self.runner, self.job_id)

    @property
    def request_id(self) -> str:
        return self.job_id

    def source(self) -> bytes:
        return self.runner.edits.services.store.get(self.input_key)

    def finished(self) -> bool:
        job = self.runner.table.get(self.job_id)
        return job is None or job.status in jobs.ENDED

    def failed(self, error: dict[str, Any]) -> str:
        return end_job(self.job_id, self.runner, self.runtime.queue, "failed", error={"error": error})

    def succeeded(self, result: EditResult) -> str:
        status = end_job(
            self.job_id, self.runner, self.runtime.queue, "succeeded", result=stored_result(result)
        )
        if status == "succeeded":
            metrics.add("ImagesEdited", len(result.images))
        return status


def stored_result(result: EditResult) -> dict[str, Any]:
    """A job's result as its record keeps it: its images by key (presigned or read when read)."""
    return result.model_dump(mode="json", exclude={"images": {"__all__": {"url", "b64_json"}}})
