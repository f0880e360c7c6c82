"""template.yaml's settings for the functions and the gateway's own answers, as SAM deploys them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from editgate.adapters.jobs import UNENDED, UNENDED_INDEX, UNENDED_SINCE
from editgate.domain import envelope
from editgate.domain.errors import InvalidRequest
from editgate.domain.images import Size
from editgate.domain.models import EditRequest
from editgate.domain.normalize import plan
from editgate.wiring import build_catalog
from editgate_local.stack import TEMPLATE
from tests.conftest import make_settings
from tests.template_iam import Deployment, translate

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/editgate/6a1f0c2e-0000-4000-8000-000000000000"
RESOURCES = ("ResultsBucket", "IdempotencyTable", "BatchIdempotencyTable", "ApiKeysTable", "BatchTable",
             "BatchQueue", "BatchDeadLetterQueue", "CollectQueue", "CollectDeadLetterQueue",
             "JobsTable")  # fmt: skip
NAMES = {name: name.lower() for name in RESOURCES} | {"Api": "a1b2c3"}


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
def test_given_public_docs_then_the_edit_function_is_told_the_keys_table_for_webhook_secrets_only_if_public(
    public: str,
) -> None:
    """The keys' table is where each key's webhook secret is (a job's callback_url needs one):
    with public documentation, the edit role reads those items only (test_least_privilege)."""
    deployment = deployed(PublicDocs=public)
    assert deployment.environment("EditApiFunction")["API_KEYS_TABLE"] == "apikeystable"
    settings = make_settings(**{k.lower(): v for k, v in deployment.environment("EditApiFunction").items()
                                if k in ("PUBLIC_DOCS",)})  # fmt: skip
    assert settings.public_docs is (public == "true")


def test_given_the_template_then_jobs_are_recorded_queued_on_the_batch_queue_and_admitted_with_its_time() -> (
    None
):
    """The edit function records jobs in JobsTable, queues them on the batch queue and admits them
    with the batch function's timeout; the batch function runs them into the results bucket."""
    deployment = deployed(BatchTimeoutSeconds="900")
    edit, batch = (deployment.environment(f) for f in ("EditApiFunction", "BatchFunction"))
    assert (edit["JOBS_TABLE"], batch["JOBS_TABLE"]) == ("jobstable", "jobstable")
    assert edit["JOBS_QUEUE_URL"] == batch["BATCH_QUEUE_URL"] == "batchqueue"
    assert edit["JOBS_RUN_TIMEOUT_SECONDS"] == "900"
    assert edit["JOBS_JOURNAL_TABLE"] == batch["IDEMPOTENCY_TABLE"]
    assert batch["JOBS_BUCKET"] == edit["RESULTS_BUCKET"]
    assert "CALLBACK_ALLOWED_NETWORKS" not in edit
    assert "CALLBACK_ALLOWED_NETWORKS" not in batch


def test_given_the_jobs_table_then_its_index_lists_a_keys_jobs_newest_first_and_records_expire() -> None:
    table = yaml_parse(TEMPLATE.read_text())["Resources"]["JobsTable"]["Properties"]
    index = next(i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == "by_caller")
    assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [
        ("caller", "HASH"), ("listed", "RANGE")
    ]  # fmt: skip
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_given_the_jobs_table_then_a_sparse_index_finds_the_jobs_not_ended_by_since_when() -> None:
    """The jobs' sweeper queries it (no scan): the jobs not ended, by when they were queued or
    started (a number, so that a range condition finds the old ones)."""
    table = yaml_parse(TEMPLATE.read_text())["Resources"]["JobsTable"]["Properties"]
    index = next(i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] == UNENDED_INDEX)
    assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [
        (UNENDED, "HASH"), (UNENDED_SINCE, "RANGE")
    ]  # fmt: skip
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert (types[UNENDED], types[UNENDED_SINCE]) == ("S", "N")


@pytest.mark.parametrize("timeout", [120, 300, 600, 900])
def test_given_each_batch_timeout_then_a_job_is_taken_for_dead_only_after_its_collect_steps_last_retry(
    timeout: int,
) -> None:
    """A started job's message is received twice more, 6 x the timeout apart, then runs once (13 x
    the timeout); fal then tells of its end by webhook, retried for 2 hours, or the sweeper finds
    it 3 minutes later; its collect step may be retried the same way (13 x the timeout again).
    The sweeper must not fail a job whose paid images a retry may still collect (the review's
    finding: it was taken for dead after the run's retries alone), nor keep a dead one all day."""
    batch = deployed(BatchTimeoutSeconds=str(timeout)).environment("BatchFunction")
    stale = make_settings(job_stale_seconds=batch["JOB_STALE_SECONDS"]).job_stale_seconds
    assert stale >= 26 * timeout + 2 * 3600 + 180
    assert stale <= 10 * 3600


def test_given_a_job_edit_too_long_for_https_then_the_batch_timeout_admits_it() -> None:
    """n=10, 4096², AVIF: refused within an HTTPS request's time, admitted within 900 s."""
    spec = build_catalog(make_settings())["hidream-e1-1"]
    request = EditRequest.model_validate(
        {"prompt": "x", "n": 10, "size": "4096x4096", "output_format": "avif"}
    )
    edit_plan = plan(request, spec, Size(1000, 1000))
    run_seconds = int(
        deployed(BatchTimeoutSeconds="900").environment("EditApiFunction")["JOBS_RUN_TIMEOUT_SECONDS"]
    )
    with pytest.raises(InvalidRequest):
        edit_plan.check_finish_fits(envelope.https_seconds(29, 29_000))
    edit_plan.check_finish_fits(envelope.batch_seconds(run_seconds * 1000))


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


def test_given_the_template_then_batch_items_submit_with_the_apis_webhook_route_and_collect_its_queue() -> (
    None
):
    """Nothing waits on fal: items submit with fal_webhook=<the API's route> (the FalWebhookUrl
    output), and the batch function consumes the collect queue the webhook function fills."""
    deployment = deployed()
    environment = deployment.environment("BatchFunction")
    webhook_url = deployment.resolve(yaml_parse(TEMPLATE.read_text())["Outputs"]["FalWebhookUrl"]["Value"])
    assert environment["FAL_WEBHOOK_URL"] == webhook_url
    assert webhook_url == "https://a1b2c3.execute-api.us-east-1.amazonaws.com/api/v1/fal/webhook"
    assert environment["COLLECT_QUEUE_URL"] == "collectqueue"
    mappings = [
        resource["Properties"] for resource in deployment.template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::EventSourceMapping"
    ]  # fmt: skip
    collect = [m for m in mappings if m["EventSourceArn"] == {"Fn::GetAtt": ["CollectQueue", "Arn"]}]
    assert len(collect) == 1
    assert collect[0]["FunctionName"] == {"Ref": "BatchFunction"}
    assert collect[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_given_the_template_then_the_sweeper_runs_every_minute_on_the_batch_function() -> None:
    resources = deployed().template["Resources"]
    rules = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    assert [rule["ScheduleExpression"] for rule in rules] == ["rate(1 minute)"]
    [target] = rules[0]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["BatchFunction", "Arn"]}


def test_given_the_template_then_the_batch_role_may_query_the_sparse_indexes_of_requests_and_jobs() -> None:
    deployment = deployed()
    deployment.arns.update(
        {name: f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}" for name in RESOURCES}
    )
    table = deployment.template["Resources"]["BatchIdempotencyTable"]["Properties"]
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "pending"
    assert [key["AttributeName"] for key in index["KeySchema"]] == ["pending", "pending_since"]
    queries = [
        statement["Resource"]
        for document in deployment.policies("BatchFunctionRole")
        for statement in document["Statement"]
        if "dynamodb:Query" in statement["Action"]
    ]
    assert queries == [
        "arn:aws:dynamodb:us-east-1:123456789012:table/BatchIdempotencyTable/index/pending",
        "arn:aws:dynamodb:us-east-1:123456789012:table/JobsTable/index/unended",
    ]


EDIT_PATHS = ("/v1/images/edits", "/images/edits")


def _https_limits(deployment: Deployment) -> tuple[dict[str, int], int, float]:
    """What a deployment gives an HTTPS edit: each edit route's integration timeout (ms), the edit
    function's timeout (s) and its REQUEST_DEADLINE_SECONDS."""
    resources = deployment.template["Resources"]
    paths = resources["Api"]["Properties"]["Body"]["paths"]
    integration = {
        path: int(deployment.resolve(
            paths[path]["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]["timeoutInMillis"]
        ))
        for path in EDIT_PATHS
    }  # fmt: skip
    function_timeout = int(deployment.resolve(resources["EditApiFunction"]["Properties"]["Timeout"]))
    deadline = float(deployment.environment("EditApiFunction")["REQUEST_DEADLINE_SECONDS"])
    return integration, function_timeout, deadline


@pytest.mark.parametrize("seconds", [29, 120, 300])
def test_given_api_timeout_seconds_then_the_integration_the_function_and_the_deadline_move_together(
    seconds: int,
) -> None:
    """Given ApiTimeoutSeconds, when deployed, then the edit routes' integration timeout, the edit
    function's timeout and REQUEST_DEADLINE_SECONDS all follow it, and an edit started with the
    invocation ends its own way (a clean 504) 2 s before API Gateway would cut it."""
    integration, function_timeout, deadline = _https_limits(deployed(ApiTimeoutSeconds=str(seconds)))

    assert integration == dict.fromkeys(EDIT_PATHS, seconds * 1000)
    assert (function_timeout, deadline) == (seconds, seconds)
    assert envelope.https_seconds(deadline, function_timeout * 1000) == seconds - 2


def test_given_the_defaults_then_an_https_edit_has_what_api_gateway_allows_without_a_quota_increase() -> None:
    """Given no ApiTimeoutSeconds, then 29 s (REST's limit without the Service Quotas increase,
    which the parameter's description names), and the edit's own deadline is 27 s as before."""
    parameter = yaml_parse(TEMPLATE.read_text())["Parameters"]["ApiTimeoutSeconds"]
    integration, function_timeout, deadline = _https_limits(deployed())

    assert (parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (29, 29, 300)
    assert "Service Quotas" in parameter["Description"]
    assert integration == dict.fromkeys(EDIT_PATHS, 29_000)
    assert envelope.https_seconds(deadline, function_timeout * 1000) == 27


@pytest.mark.parametrize(("seconds", "admitted"), [(29, False), (300, True)])
def test_given_a_longer_api_timeout_then_edits_too_big_for_29_seconds_are_admitted(
    seconds: int, admitted: bool
) -> None:
    """Given n=10 at 4096x4096 png (about 37 s of finishing), then at the default 29 s it is a 400
    pointing to batch, and with ApiTimeoutSeconds=300 it is admitted: the admission budget
    follows the deadline the template gives."""
    _, function_timeout, deadline = _https_limits(deployed(ApiTimeoutSeconds=str(seconds)))
    spec = build_catalog(make_settings())["hidream-e1-1"]
    request = EditRequest.model_validate({"prompt": "edit", "n": 10, "size": "4096x4096"})
    edit = plan(request, spec, Size(1000, 1000))

    def admit() -> Any:
        return edit.check_finish_fits(envelope.https_seconds(deadline, function_timeout * 1000))

    if admitted:
        admit()
    else:
        with pytest.raises(InvalidRequest, match="batch"):
            admit()
