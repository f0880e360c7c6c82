"""The jobs' table (DynamoDB): one item per job, keyed by its id, and two global secondary
indexes: ``by_caller`` lists a key's jobs newest first; ``unended`` (sparse) holds only the jobs
that have not ended, by when they were made or started, for the jobs' sweeper. A job's status
changes by conditional updates only, so that a cancel and the run that takes the job cannot both
win."""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError

from editgate.adapters.aws import conditional_failure, dynamodb_client, get_item
from editgate.domain.jobs import ENDED, Job, JobStatus
from editgate.domain.json_values import json_text

BY_CALLER = "by_caller"
# A job that has not ended carries these two attributes (set when it is made, the second reset
# when it starts, both removed when it ends): the sparse index UNENDED_INDEX (partition: the
# constant, sort: since when) finds the jobs that have waited or run too long, without a scan.
UNENDED_INDEX = "unended"
UNENDED = "unended"
UNENDED_SINCE = "unended_since"
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
            UNENDED: {"S": "job"},
            UNENDED_SINCE: {"N": str(job.created)},
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

    def unended(self, since_before: float, limit: int) -> list[str]:
        """The ids of at most ``limit`` jobs not ended that were made (queued) or started (in
        progress) before ``since_before`` (epoch seconds), oldest first."""
        answer = dynamodb_client().query(
            TableName=self._table,
            IndexName=UNENDED_INDEX,
            KeyConditionExpression="#unended = :job AND #since < :before",
            ExpressionAttributeNames={"#unended": UNENDED, "#since": UNENDED_SINCE},
            ExpressionAttributeValues={":job": {"S": "job"}, ":before": {"N": str(int(since_before))}},
            Limit=limit,
        )
        return [item["id"]["S"] for item in answer.get("Items", [])]

    def move(self, job_id: str, to: JobStatus, *, only_from: tuple[JobStatus, ...], **outcome: Any) -> bool:
        """The job's status changed to ``to`` (with its ``result`` or ``error``) if it is one of
        ``only_from``; False when it is not (cancelled meanwhile, or taken by another run). A job
        that starts is in the ``unended`` index from now; one that ends leaves it."""
        names = {"#status": "status"}
        values: dict[str, Any] = {":to": {"S": to}}
        values |= {f":from{index}": {"S": status} for index, status in enumerate(only_from)}
        update = "SET #status = :to"
        for name, value in outcome.items():
            names[f"#{name}"] = name
            values[f":{name}"] = {"S": json_text(value)}
            update += f", #{name} = :{name}"
        if to == "in_progress":
            names["#since"] = UNENDED_SINCE
            values[":now"] = {"N": str(int(time.time()))}
            update += ", #since = :now"
        elif to in ENDED:
            names |= {"#unended": UNENDED, "#since": UNENDED_SINCE}
            update += " REMOVE #unended, #since"
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
