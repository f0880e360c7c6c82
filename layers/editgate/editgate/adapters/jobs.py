"""The jobs' table (DynamoDB): one item per job, keyed by its id, and a global secondary index
(``by_caller``) that lists a key's jobs newest first. A job's status changes by conditional
updates only, so that a cancel and the run that takes the job cannot both win."""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError

from editgate.adapters.aws import conditional_failure, dynamodb_client, get_item
from editgate.domain.jobs import Job, JobStatus
from editgate.domain.json_values import json_text

BY_CALLER = "by_caller"
# A job's record outlives its images' presigned URLs and the edit's idempotency record.
RECORD_DAYS = 30


class JobTable:
    def __init__(self, table_name: str) -> None:
        self._table = table_name

    def create(self, job: Job) -> Job:
        """The job recorded as queued; when one of its id exists already (a keyed retry), that one."""
        item: dict[str, Any] = {
            "id": {"S": job.id},
            "caller": {"S": job.caller},
            # The index's sort key: when it was made, to the nanosecond, then its id.
            "listed": {"S": f"{time.time_ns():020d}#{job.id}"},
            "status": {"S": job.status},
            "job": {"S": json_text(job.model_dump(mode="json", exclude={"status", "result", "error"}))},
            "expiration": {"N": str(int(time.time()) + RECORD_DAYS * 86400)},
        }
        try:
            dynamodb_client().put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(id)"
            )
        except ClientError as exc:
            if not conditional_failure(exc):
                raise
            existing = self.get(job.id)
            if existing is not None:
                return existing
            raise
        return job

    def get(self, job_id: str) -> Job | None:
        item = get_item(self._table, job_id)
        return _job(item) if item else None

    def page(self, caller: str, limit: int, after: str | None) -> tuple[list[Job], bool]:
        """``caller``'s jobs, newest first, from just after the job ``after`` (one of the
        caller's): at most ``limit``, and whether there are more."""
        condition = "caller = :caller"
        values: dict[str, Any] = {":caller": {"S": caller}}
        if after is not None:
            condition += " AND listed < :after"
            values[":after"] = get_item(self._table, after)["listed"]
        answer = dynamodb_client().query(
            TableName=self._table,
            IndexName=BY_CALLER,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit + 1,
        )
        # The index holds the keys only: each job is read whole (a page is at most 100 reads).
        ids = [item["id"]["S"] for item in answer.get("Items", [])]
        jobs = [job for job in (self.get(job_id) for job_id in ids[:limit]) if job is not None]
        return jobs, len(ids) > limit

    def move(self, job_id: str, to: JobStatus, *, only_from: tuple[JobStatus, ...], **outcome: Any) -> bool:
        """The job's status changed to ``to`` (with its ``result`` or ``error``) if it is one of
        ``only_from``; False when it is not (cancelled meanwhile, or taken by another run)."""
        names = {"#status": "status"}
        values: dict[str, Any] = {":to": {"S": to}}
        values |= {f":from{index}": {"S": status} for index, status in enumerate(only_from)}
        update = "SET #status = :to"
        for name, value in outcome.items():
            names[f"#{name}"] = name
            values[f":{name}"] = {"S": json_text(value)}
            update += f", #{name} = :{name}"
        try:
            dynamodb_client().update_item(
                TableName=self._table,
                Key={"id": {"S": job_id}},
                UpdateExpression=update,
                ConditionExpression=f"#status IN ({', '.join(f':from{i}' for i in range(len(only_from)))})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if conditional_failure(exc):
                return False
            raise
        return True


def _job(item: dict[str, Any]) -> Job:
    document = json.loads(item["job"]["S"])
    for name in ("result", "error"):
        if name in item:
            document[name] = json.loads(item[name]["S"])
    return Job.model_validate({**document, "status": item["status"]["S"]})
