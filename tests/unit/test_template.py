"""template.yaml's settings for the functions and the gateway's own answers, as SAM deploys them."""

from __future__ import annotations

import json

import pytest
from samtranslator.yaml_helper import yaml_parse

from editgate_local.stack import TEMPLATE
from tests.template_iam import Deployment, translate

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/editgate/6a1f0c2e-0000-4000-8000-000000000000"
RESOURCES = ("ResultsBucket", "IdempotencyTable", "BatchIdempotencyTable", "ApiKeysTable", "BatchTable",
             "BatchQueue", "BatchDeadLetterQueue", "CollectQueue", "CollectDeadLetterQueue")  # fmt: skip
NAMES = {name: name.lower() for name in RESOURCES}


def deployed(**parameters: str) -> Deployment:
    return Deployment(translate(parameters), parameters, STACK_ID, names=dict(NAMES))


def test_given_batch_defaults_and_a_source_bucket_then_the_batch_function_gets_both() -> None:
    defaults = json.dumps({"prompt": "remove the background"})
    environment = deployed(BatchDefaults=defaults, SourceBucketName="catalog").environment("BatchFunction")
    assert environment["BATCH_DEFAULTS"] == defaults
    assert environment["SOURCE_BUCKET"] == "catalog"


def test_given_the_defaults_then_batch_defaults_and_source_bucket_are_empty_which_reads_as_unset() -> None:
    environment = deployed().environment("BatchFunction")
    assert (environment["BATCH_DEFAULTS"], environment["SOURCE_BUCKET"]) == ("", "")


def test_given_the_template_then_each_function_has_its_own_idempotency_table() -> None:
    deployment = deployed()
    edit, batch = (
        deployment.environment(f)["IDEMPOTENCY_TABLE"] for f in ("EditApiFunction", "BatchFunction")
    )
    assert (edit, batch) == ("idempotencytable", "batchidempotencytable")


@pytest.mark.parametrize("public", ["true", "false"])
def test_given_public_docs_then_the_edit_function_is_not_told_the_keys_table(public: str) -> None:
    environment = deployed(PublicDocs=public).environment("EditApiFunction")
    assert ("API_KEYS_TABLE" in environment) is (public == "false")


def test_given_the_template_then_every_answer_api_gateway_gives_itself_is_nosniff() -> None:
    responses = yaml_parse(TEMPLATE.read_text())["Resources"]["Api"]["Properties"]["GatewayResponses"]
    assert {
        name: r["ResponseParameters"]["Headers"].get("x-content-type-options")
        for name, r in responses.items()
    } == (dict.fromkeys(responses, "'nosniff'"))


def test_given_cors_allow_origins_then_preflights_need_no_key_and_gateway_answers_name_the_origin() -> None:
    """Issue 18: a browser app on another origin could not call the API (the preflight was a 401)."""
    origin = "https://app.example.com"
    deployment = deployed(CorsAllowOrigins=origin)
    body = deployment.template["Resources"]["Api"]["Properties"]["Body"]

    for path, operations in body["paths"].items():
        preflight = operations["options"]
        assert "security" not in preflight, path  # no authorizer, no usage-plan key
        headers = preflight["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"]
        assert (
            deployment.resolve(headers["method.response.header.Access-Control-Allow-Origin"]) == f"'{origin}'"
        )
        assert "Authorization" in headers["method.response.header.Access-Control-Allow-Headers"]
    unauthorized = body["x-amazon-apigateway-gateway-responses"]["UNAUTHORIZED"]["responseParameters"]
    assert (
        deployment.resolve(unauthorized["gatewayresponse.header.access-control-allow-origin"])
        == f"'{origin}'"
    )
    assert deployment.environment("EditApiFunction")["CORS_ALLOW_ORIGINS"] == origin


def test_given_the_public_routes_then_api_gateway_asks_no_key_for_them() -> None:
    body = deployed().template["Resources"]["Api"]["Properties"]["Body"]
    for path in ("/", "/docs", "/openapi.json", "/v1/openapi.json", "/playground", "/v1/health", "/health"):
        assert body["paths"][path]["x-amazon-apigateway-any-method"].get("security") in (None, []), path
    assert body["paths"]["/v1/models"]["x-amazon-apigateway-any-method"]["security"]


def test_given_the_defaults_then_the_webhook_function_reads_fals_jwks_and_the_batch_journal() -> None:
    """Batch items and jobs submit with a webhook: their journal is the batch idempotency table."""
    environment = deployed().environment("FalWebhookFunction")
    assert environment == {
        "IDEMPOTENCY_TABLE": "batchidempotencytable",
        "COLLECT_QUEUE_URL": "collectqueue",
        "FAL_JWKS_URL": "https://rest.alpha.fal.ai/.well-known/jwks.json",
    } | {k: v for k, v in environment.items() if k.startswith(("POWERTOOLS_", "MALLOC_"))}


def test_given_a_jwks_url_parameter_then_the_webhook_function_reads_that_one() -> None:
    environment = deployed(FalJwksUrl="https://keys.example/jwks.json").environment("FalWebhookFunction")
    assert environment["FAL_JWKS_URL"] == "https://keys.example/jwks.json"


def test_given_the_template_then_fals_webhook_route_needs_no_key_and_is_post_only() -> None:
    """fal cannot send a key of ours: the route is open at API Gateway; the function checks fal's
    signature instead."""
    events = yaml_parse(TEMPLATE.read_text())["Resources"]["FalWebhookFunction"]["Properties"]["Events"]
    [route] = events.values()
    assert (route["Properties"]["Path"], route["Properties"]["Method"]) == ("/v1/fal/webhook", "POST")
    assert route["Properties"]["Auth"] == {"Authorizer": "NONE", "ApiKeyRequired": False}
