"""The OpenAPI document stays true to the code: every error code the gateway can answer is in it."""

from __future__ import annotations

import re

from samtranslator.yaml_helper import yaml_parse

from editgate.api import openapi
from editgate.domain import catalog
from editgate_local.stack import REPO_ROOT

# Codes of batch edits' item records, never an HTTP answer.
BATCH_ONLY = {"duplicate_id", "invalid_manifest", "invalid_manifest_line", "manifest_exists"}
# API Gateway's catch-alls for its own 4xx/5xx (a WAF, an integration failure): not the API's.
GATEWAY_CATCH_ALL = {"gateway_error"}
# Answers to a path or method the document has no operation for.
ROUTE_EDGES = {"not_found", "method_not_allowed"}
# A failed job's error (its record, read with the job), never an HTTP answer: the jobs' sweeper's.
JOB_ERROR_ONLY = {"job_expired"}
# Answers of fal's webhook route (POST /v1/fal/webhook), which is fal's, not the API's users'.
FAL_WEBHOOK_ONLY = {"invalid_fal_webhook", "collect_not_queued"}


def raised_codes() -> set[str]:
    """Every error code written in the layer and the edit function."""
    sources = [
        *(REPO_ROOT / "layers" / "editgate" / "editgate").rglob("*.py"),
        REPO_ROOT / "functions" / "edit_api" / "app.py",
    ]
    pattern = re.compile(r'(?:\bcode=|default_code(?:: ClassVar\[[^\]]+\])? = )"([a-z_]+)"')
    return {code for source in sources for code in pattern.findall(source.read_text())}


def gateway_codes() -> set[str]:
    """The codes of API Gateway's own answers, as template.yaml words them."""
    template = yaml_parse((REPO_ROOT / "template.yaml").read_text())
    responses = template["Resources"]["Api"]["Properties"]["GatewayResponses"].values()
    bodies = [response["ResponseTemplates"]["application/json"] for response in responses]
    return {code for body in bodies for code in re.findall(r'"code":"([a-z_]+)"', body)}


def documented_codes() -> set[str | None]:
    document = openapi.document(catalog.MODELS)
    codes: set[str | None] = set()
    for operations in document["paths"].values():
        for operation in operations.values():
            for response in operation["responses"].values():
                for schema in response["content"]["application/json"]["schema"].get("allOf", []):
                    codes.update(
                        schema.get("properties", {})
                        .get("error", {})
                        .get("properties", {})
                        .get("code", {})
                        .get("enum", [])
                    )
    return codes


def test_given_the_code_then_every_error_code_it_can_answer_is_in_the_document() -> None:
    expected = (
        (raised_codes() | gateway_codes())
        - BATCH_ONLY
        - GATEWAY_CATCH_ALL
        - ROUTE_EDGES
        - FAL_WEBHOOK_ONLY
        - JOB_ERROR_ONLY
    )
    assert len(expected) >= 25
    assert expected - documented_codes() == set()


def test_given_the_document_then_it_names_no_code_the_code_cannot_answer() -> None:
    answerable = raised_codes() | gateway_codes() | {None}
    assert documented_codes() - answerable == set()
