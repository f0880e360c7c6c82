"""The OpenAPI document is what a client generator would use: schemathesis generates requests from
it against the local stack, and every answer must agree with it."""

from __future__ import annotations

import collections
import importlib.metadata
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from openapi_spec_validator import validate
from PIL import Image
from samtranslator.yaml_helper import yaml_parse
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

import editgate
from editgate_local.front import OPEN_PATHS, LambdaContext, load_handler, proxy_event
from editgate_local.sample import SAMPLE_IMAGE
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
    ("/v1/health", "GET", POSITIVE),
    ("/v1/images/edits/jobs", "GET", POSITIVE),
    ("/v1/images/edits/jobs", "GET", NEGATIVE),
    ("/v1/images/edits/jobs/{job_id}", "GET", POSITIVE),
    ("/v1/images/edits/jobs/{job_id}", "DELETE", POSITIVE),
]


@pytest.fixture(scope="module", autouse=True)
def no_job_left(stack: LocalStack) -> Iterator[None]:
    """The jobs the generated edits queued (Prefer: respond-async, ?async=true) cancelled after
    the module: no later test's batch function runs them."""
    yield
    while True:
        page = requests.get(
            f"{stack.base_url}/v1/images/edits/jobs?limit=100", headers=AUTH, timeout=30
        ).json()
        waiting = [job["id"] for job in page["data"] if job["status"] in ("queued", "in_progress")]
        for job_id in waiting:
            requests.delete(f"{stack.base_url}/v1/images/edits/jobs/{job_id}", headers=AUTH, timeout=30)
        if not waiting:
            return


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


def test_given_the_document_then_it_offers_jobs_their_routes_their_202_and_their_schemas(
    stack: LocalStack,
) -> None:
    """Issue 17: an edit can be a job (Prefer: respond-async, ?async=true, callback_url), answered
    202 with an EditJob; the jobs are read, listed and cancelled at their own routes."""
    document = requests.get(f"{stack.base_url}/v1/openapi.json", headers=AUTH, timeout=10).json()
    edit = document["paths"]["/v1/images/edits"]["post"]

    assert {"Prefer", "async"} <= {parameter["name"] for parameter in edit["parameters"]}
    assert edit["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/EditJob")
    assert "callback_url" in edit["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert set(document["paths"]["/v1/images/edits/jobs/{job_id}"]) == {"get", "delete"}
    assert {"EditJob", "EditJobList"} <= set(document["components"]["schemas"])


def test_given_a_browser_without_a_key_then_the_docs_the_document_the_playground_and_health_are_served(
    stack: LocalStack,
) -> None:
    """Issue 18: /docs could not be opened in a browser (a browser sends no key: a raw JSON 401),
    and GET / was a 404."""
    for path in ("/v1/openapi.json", "/docs", "/playground"):
        answer = requests.get(f"{stack.base_url}{path}", timeout=10)
        assert answer.status_code == 200, path
    assert requests.get(f"{stack.base_url}/docs", timeout=10).headers["content-type"].startswith("text/html")
    root = requests.get(f"{stack.base_url}/", timeout=10)
    assert root.url == f"{stack.base_url}/playground"
    assert "editgate playground" in root.text
    # The API itself still needs a key.
    assert requests.get(f"{stack.base_url}/v1/models", timeout=10).status_code == 401


def test_given_no_key_then_health_says_the_version_and_that_fals_key_is_readable_but_not_the_key(
    stack: LocalStack,
) -> None:
    """Issue 18: no route a load balancer or a smoke check could ask without a key."""
    answer = requests.get(f"{stack.base_url}/v1/health", timeout=10)

    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "version": editgate.__version__, "fal_key_readable": True}
    assert answer.headers["cache-control"] == "no-store"
    assert stack.emulator is not None
    assert stack.emulator.key not in answer.text


def test_given_fals_secret_cannot_be_read_then_health_says_so(stack: LocalStack) -> None:
    handler = load_handler(EDIT_API, environment=92, env={"FAL_KEY_SECRET_NAME": "editgate/nowhere"})

    answer = handler(proxy_event("GET", "/v1/health", [("Host", "h")], b""), LambdaContext())

    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["fal_key_readable"] is False


def test_given_the_document_then_its_version_is_the_packages(stack: LocalStack) -> None:
    """Issue 18: info.version was 1.0.0 while the package is 0.1.0."""
    document = requests.get(f"{stack.base_url}/v1/openapi.json", timeout=10).json()

    assert document["info"]["version"] == editgate.__version__ == importlib.metadata.version("editgate")


@pytest.mark.parametrize("image_format", ["png", "jpeg", "webp", "gif", "avif"])
def test_given_an_input_format_then_the_document_offers_it_exactly_when_the_server_edits_it(
    stack: LocalStack, image_format: str
) -> None:
    """Issue 18: the document offered GIF and AVIF inputs, which the server refuses."""
    document = requests.get(f"{stack.base_url}/v1/openapi.json", timeout=10).json()
    multipart = document["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]["multipart/form-data"]
    offered = {kind.strip() for kind in multipart["encoding"]["image"]["contentType"].split(",")}
    image = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(image, format=image_format)

    answer = requests.post(
        f"{stack.base_url}/v1/images/edits?dry_run=true",
        headers=AUTH,
        files={"image": (f"in.{image_format}", image.getvalue(), f"image/{image_format}")},
        data={"prompt": "x"},
        timeout=10,
    )

    assert (answer.status_code == 200) is (f"image/{image_format}" in offered), answer.text


@pytest.mark.parametrize("resolution", ["1K", "0.5K", "3", "1.5K", "0.25MP", "2mp", "big", "3x", "-1", "1K2"])
def test_given_a_resolution_then_the_document_allows_it_exactly_when_the_server_takes_it(
    stack: LocalStack, resolution: str
) -> None:
    """Issue 18: resolution=3 was accepted but the document's enum had only 0.5K-4K."""
    document = requests.get(f"{stack.base_url}/v1/openapi.json", timeout=10).json()
    fields = document["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]["application/json"]
    pattern = fields["schema"]["properties"]["resolution"]["pattern"]

    answer = requests.post(
        f"{stack.base_url}/v1/images/edits?dry_run=true",
        headers=AUTH,
        files={"image": ("in.png", SAMPLE_IMAGE.read_bytes(), "image/png")},
        data={"prompt": "x", "resolution": resolution},
        timeout=10,
    )

    assert (answer.status_code == 200) is bool(re.search(pattern, resolution)), answer.text


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


def test_given_the_operator_made_the_docs_private_then_they_need_a_key(stack: LocalStack) -> None:
    handler = load_handler(EDIT_API, environment=90, env={"PUBLIC_DOCS": "false"})

    def get(path: str, headers: list[tuple[str, str]]) -> dict[str, Any]:
        return handler(proxy_event("GET", path, [("Host", "h"), *headers], b""), LambdaContext())

    assert get("/v1/openapi.json", [])["statusCode"] == 401
    assert get("/docs", [("Authorization", "Bearer sk-wrong")])["statusCode"] == 401
    answer = get("/v1/openapi.json", list(AUTH.items()))
    assert answer["statusCode"] == 200
    document = json.loads(answer["body"])
    assert document["paths"]["/v1/openapi.json"]["get"]["security"] == [{"apiKey": []}]
    assert get("/playground", [])["statusCode"] == 200  # the playground asks its user for a key


def test_given_the_template_then_the_local_front_opens_exactly_the_routes_it_opens() -> None:
    template = yaml_parse((REPO_ROOT / "template.yaml").read_text())
    events = template["Resources"]["EditApiFunction"]["Properties"]["Events"].values()
    open_paths = {
        event["Properties"]["Path"]
        for event in events
        if event["Properties"].get("Auth", {}).get("Authorizer") == "NONE"
    }
    assert open_paths == OPEN_PATHS
