"""The OpenAPI document's asynchronous jobs: how an edit asks to be one (``Prefer``, ``async``,
``callback_url``), its ``202``, the job routes and the job's schemas (``editgate.api.jobs``
writes them)."""

from __future__ import annotations

from typing import Any

from editgate.api.http_edge import FLAG_VALUES
from editgate.domain import jobs

JOB_PATH = "/v1/images/edits/jobs/{job_id}"
JOBS_PATH = "/v1/images/edits/jobs"

CALLBACK_FIELD = {
    "callback_url": {
        "type": "string",
        "maxLength": 2048,
        "description": (
            "Jobs only: an http(s) URL on a public address, POSTed `{type, timestamp, data: {id, object, "
            "status}}` once the job ends, signed as Standard Webhooks sign (`webhook-id`, "
            "`webhook-timestamp`, `webhook-signature` with the key's `whsec_` secret); retried with "
            "backoff until it answers 2xx. A 400 `invalid_callback_url` otherwise."
        ),
    }
}

ASK_PARAMETERS = [
    {
        "name": "Prefer",
        "in": "header",
        "description": (
            "`respond-async` (RFC 7240): answer `202` at once with a job that runs with the batch "
            "function's minutes (n=10 at 4096², AVIF), its `Location` to read it at."
        ),
        "schema": {"type": "string", "examples": ["respond-async"]},
    },
    {
        "name": "async",
        "in": "query",
        "description": "The same as `Prefer: respond-async`. Any letter case; empty is false.",
        "schema": {"type": "string", "enum": [*FLAG_VALUES, ""]},
    },
]


def accepted_response() -> dict[str, Any]:
    return {
        "description": "The job, queued: read it at `Location` until its status has ended.",
        "headers": {
            "Location": {"description": "The job's URL.", "schema": {"type": "string"}},
            "Preference-Applied": {"schema": {"type": "string", "enum": ["respond-async"]}},
            "x-request-id": {"$ref": "#/components/headers/x-request-id"},
        },
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EditJob"}}},
    }


def paths(error_response: Any, errors: dict[str, tuple[str, tuple[str | None, ...]]]) -> dict[str, Any]:
    """The job routes; ``error_response``: how the document words an error answer."""
    unknown = error_response(
        "No job of this key has this id (another key's job included).", ("job_not_found",)
    )
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}

    def answers(schema: str, description: str) -> dict[str, Any]:
        return {
            "200": {
                "description": description,
                "headers": {"x-request-id": {"$ref": "#/components/headers/x-request-id"}},
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
            },
            "401": error_response(*errors["401"]),
        }

    return {
        JOBS_PATH: {
            "get": {
                "operationId": "listImageEditJobs",
                "summary": "This key's jobs, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "How many (1-100, default 20).",
                        "schema": {"type": "string", "pattern": r"^[0-9]+$"},
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "description": "The `last_id` of the page before.",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    **answers("EditJobList", "The jobs."),
                    "400": error_response("`limit` is not 1-100.", ("invalid_value",)),
                    "404": unknown,
                },
            }
        },
        JOB_PATH: {
            "get": {
                "operationId": "retrieveImageEditJob",
                "summary": "A job: its status, and once it succeeded the edit's answer (URLs presigned now)",
                "parameters": [job_id],
                "responses": {**answers("EditJob", "The job."), "404": unknown},
            },
            "delete": {
                "operationId": "cancelImageEditJob",
                "summary": "Cancel a job: not started, fal never sees it; running, fal's cancel",
                "parameters": [job_id],
                "responses": {**answers("EditJob", "The job, cancelled (or as it ended)."), "404": unknown},
            },
        },
    }


def schemas() -> dict[str, Any]:
    nullable = {"type": "null"}
    job = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": r"^job_[0-9a-f]{32}$"},
            "object": {"type": "string", "enum": [jobs.JOB_OBJECT]},
            "status": {
                "type": "string",
                "enum": ["queued", "in_progress", "succeeded", "failed", "cancelled"],
            },
            "created": {"type": "integer"},
            "result": {
                "description": "Once succeeded: the edit's answer, as the synchronous edit gives it.",
                "oneOf": [{"$ref": "#/components/schemas/ImagesResponse"}, nullable],
            },
            "error": {
                "description": (
                    "Once failed: OpenAI's error object; code `job_expired` when the job had not "
                    "ended in time (hours after it was queued or started) and was stopped."
                ),
                "oneOf": [{"$ref": "#/components/schemas/ErrorResponse/properties/error"}, nullable],
            },
        },
        "required": ["id", "object", "status", "created", "result", "error"],
    }
    listing = {
        "type": "object",
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/EditJob"}},
            "has_more": {"type": "boolean"},
            "first_id": {"type": ["string", "null"]},
            "last_id": {"type": ["string", "null"]},
        },
        "required": ["object", "data", "has_more", "first_id", "last_id"],
    }
    return {"EditJob": job, "EditJobList": listing}
