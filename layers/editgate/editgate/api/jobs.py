"""Asynchronous edit jobs over HTTPS: ``POST /v1/images/edits`` with ``Prefer: respond-async``
(or ``?async=true``) answers ``202`` with the job and its ``Location``; the job routes read, list
and cancel a caller's own jobs. One call into ``editgate.app.jobs.JobService`` per route."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from editgate.api import http_edge, openai_shapes
from editgate.app.jobs import JobService, JobView
from editgate.domain import jobs
from editgate.domain.json_values import json_text

JOBS_PATHS = ("/v1/images/edits/jobs", "/images/edits/jobs")


def job_object(view: JobView) -> dict[str, Any]:
    """A job as it is answered: OpenAI's images answer once it succeeded (its URLs fresh), OpenAI's
    error body once it failed."""
    job = view.job
    return {
        "id": job.id,
        "object": jobs.JOB_OBJECT,
        "status": job.status,
        "created": job.created,
        "result": openai_shapes.images_response(view.result) if view.result is not None else None,
        "error": job.error["error"] if job.error else None,
    }


def accepted(app: APIGatewayRestResolver, view: JobView) -> Response[str]:
    """``202 Accepted``: the job (a repeated Idempotency-Key's as it is now), where to read it,
    and that the preference was honoured."""
    path = f"{http_edge.base_path(app)}/v1/images/edits/jobs/{view.job.id}"
    headers = {
        **http_edge.answer_headers(app),
        "Location": path,
        "Preference-Applied": "respond-async",
    }
    return Response(202, "application/json", json_text(job_object(view)), headers)


def install(app: APIGatewayRestResolver, routes: http_edge.RouteTable, service: JobService) -> None:
    """The job routes, each for its caller's own jobs (another key's job is a 404)."""

    @routes.route("GET", *JOBS_PATHS)
    def list_jobs() -> Response[str]:
        event = app.current_event
        limit = jobs.page_size(event.get_query_string_value("limit"))
        views, more = service.page(http_edge.caller(app), limit, event.get_query_string_value("after"))
        data = [job_object(view) for view in views]
        return http_edge.json_response(app, {
            "object": "list", "data": data, "has_more": more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
        })  # fmt: skip

    @routes.route("GET", *(f"{path}/<job_id>" for path in JOBS_PATHS))
    def get_job(job_id: str) -> Response[str]:
        return http_edge.json_response(app, job_object(service.get(http_edge.caller(app), job_id)))

    @routes.route("DELETE", *(f"{path}/<job_id>" for path in JOBS_PATHS))
    def cancel_job(job_id: str) -> Response[str]:
        return http_edge.json_response(app, job_object(service.cancel(http_edge.caller(app), job_id)))
