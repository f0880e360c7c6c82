"""The OpenAPI document is what a client generator would use: schemathesis generates requests from
it against the local stack, and every answer must agree with it."""

from __future__ import annotations

import collections
import json
import re
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from openapi_spec_validator import validate
from samtranslator.yaml_helper import yaml_parse
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from editgate_local.front import OPEN_PATHS, LambdaContext, load_handler, proxy_event
from editgate_local.stack import EDIT_API, REPO_ROOT, LocalStack
from tests.conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Bounded and repeatable: the same requests on every run (CI time, and a failure that reproduces).
MAX_EXAMPLES = 50
SEED = 20261201
_GENERATE = (hypothesis.Phase.explicit, hypothesis.Phase.generate)


POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# Requests the document allows, and (where a request has parts it can get wrong) ones it forbids.
OPERATIONS = [
    ("/v1/images/edits", "POST", POSITIVE),
    ("/v1/images/edits", "POST", NEGATIVE),
    ("/v1/images/generations", "POST", POSITIVE),
    ("/v1/models", "GET", POSITIVE),
    ("/v1/models/{model_id}", "GET", POSITIVE),
    ("/v1/openapi.json", "GET", POSITIVE),
]


@pytest.fixture(scope="module")
def served_schema(stack: LocalStack) -> Any:
    schema = schemathesis.openapi.from_url(f"{stack.base_url}/v1/openapi.json", headers=AUTH)
    schema.config.update(base_url=stack.base_url)
    # The key is sent as the client's own (below), so that schemathesis also checks that a
    # request without it, or with a wrong one, is refused.
    schema.config.generation.update(with_security_parameters=False)
    return schema


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS, ids=str)
def test_given_requests_generated_from_the_document_then_no_server_error_and_every_answer_matches_it(
    served_schema: Any, path: str, method: str, mode: GenerationMode
) -> None:
    operation = served_schema[path][method]
    answers: list[int] = []

    @hypothesis.seed(SEED)
    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, phases=_GENERATE)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def conforms(case: Any) -> None:
        # schemathesis's checks: no 5xx, the status, content type, headers and body the document
        # gives for this operation, and no key or a wrong one refused. Not "a request the
        # document allows is accepted": a part the document types as a file but which holds no
        # image, or an image_url nobody serves, is a 400 no schema can foresee.
        response = case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])
        answers.append(response.status_code)

    conforms()
    print(f"{mode} {method} {path}: statuses {sorted(collections.Counter(answers).items())}")
    assert answers
    if (
        path == "/v1/images/edits" and mode is POSITIVE
    ):  # the generated edits reached both real edits and refusals
        assert {200, 400} <= set(answers)


def test_given_the_served_document_then_it_is_valid_openapi_3_1_and_names_every_route(
    stack: LocalStack,
) -> None:
    document = requests.get(f"{stack.base_url}/v1/openapi.json", headers=AUTH, timeout=10).json()

    validate(document)
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {path for path, _, _ in OPERATIONS}
    edit_body = document["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(edit_body)
    assert "image[]" in edit_body["multipart/form-data"]["schema"]["properties"]


def test_given_no_key_then_the_document_and_swagger_ui_are_refused_but_the_playground_is_served(
    stack: LocalStack,
) -> None:
    for path in ("/v1/openapi.json", "/docs"):
        refused = requests.get(f"{stack.base_url}{path}", timeout=10)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        wrong = requests.get(
            f"{stack.base_url}{path}", headers={"Authorization": "Bearer sk-wrong"}, timeout=10
        )
        assert wrong.status_code == 401
    page = requests.get(f"{stack.base_url}/playground", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


def test_given_a_key_then_swagger_ui_embeds_the_document_and_loads_nothing_from_elsewhere(
    stack: LocalStack,
) -> None:
    page = requests.get(f"{stack.base_url}/docs", headers=AUTH, timeout=10)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle(" in page.text
    assert '"operationId": "createImageEdit"' in page.text
    linked = requests.get(f"{stack.base_url}/docs?format=json", headers=AUTH, timeout=10)  # the page's link
    assert linked.json()["info"]["title"] == "editgate"
    assert not re.search(r"""(src|href)=['"]?https?:""", page.text)


def test_given_the_operator_made_the_docs_public_then_they_need_no_key(stack: LocalStack) -> None:
    handler = load_handler(EDIT_API, environment=90, env={"PUBLIC_DOCS": "true"})
    event = proxy_event("GET", "/v1/openapi.json", [("Host", "h")], b"")

    answer = handler(event, LambdaContext())

    assert answer["statusCode"] == 200
    document = json.loads(answer["body"])
    assert document["paths"]["/v1/openapi.json"]["get"]["security"] == []
    assert document["paths"]["/v1/models"]["get"].get("security") is None  # the API still needs a key


def test_given_the_template_then_the_local_front_opens_exactly_the_routes_it_opens() -> None:
    template = yaml_parse((REPO_ROOT / "template.yaml").read_text())
    events = template["Resources"]["EditApiFunction"]["Properties"]["Events"].values()
    open_paths = {
        event["Properties"]["Path"]
        for event in events
        if event["Properties"].get("Auth", {}).get("Authorizer") == "NONE"
    }
    assert open_paths == OPEN_PATHS
