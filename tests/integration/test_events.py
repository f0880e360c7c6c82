"""Every events/*/*.json fed to its function's handler, as `sam local invoke -e` would."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from editgate_local.fal_emulator import FalEmulator
from editgate_local.front import LambdaContext, load_handler
from editgate_local.stack import AUTHORIZER, FAL_WEBHOOK, KEYS_TABLE, REPO_ROOT, LocalStack, batch_handlers
from tests.conftest import open_image

EVENTS = sorted((REPO_ROOT / "events").glob("*/*.json"))
EDIT_EVENTS = [path for path in EVENTS if path.parent.name == "edit_api"]
BATCH_EVENTS = [path for path in EVENTS if path.parent.name == "batch_edit"]
AUTHORIZER_EVENTS = [path for path in EVENTS if path.parent.name == "authorizer"]
WEBHOOK_EVENTS = [path for path in EVENTS if path.parent.name == "fal_webhook"]
# What each ready event must answer: status, and the error's param (None for a success).
EXPECTED: dict[str, tuple[int, str | None]] = {
    "edit_api/edit.json": (200, None),
    "edit_api/edit_b64_json.json": (200, None),
    "edit_api/missing_prompt.json": (400, "prompt"),
    "edit_api/not_an_image.json": (400, "image"),
    "edit_api/no_authorizer.json": (401, None),
    "edit_api/edit_dry_run.json": (200, None),
    "edit_api/edit_json_body.json": (200, None),
    "edit_api/list_models.json": (200, None),
    "edit_api/unknown_route.json": (404, None),
    "edit_api/wrong_method.json": (405, None),
    "edit_api/openapi_document.json": (200, None),
    "edit_api/docs_without_key.json": (200, None),  # the docs are public unless PublicDocs=false
    "edit_api/docs.json": (200, None),
    "edit_api/playground.json": (200, None),
    "edit_api/health.json": (200, None),
}
# The batch function's events: every SQS record handled (no batchItemFailures), every S3 Batch
# Operations task Succeeded.
BATCH_EXPECTED = {
    "batch_edit/sqs_manifest_put.json",
    "batch_edit/sqs_single_image_put.json",
    "batch_edit/sqs_s3_test_event.json",
    "batch_edit/sqs_item.json",
    "batch_edit/s3_batch_operations.json",
}


# The authorizer's events: allowed (with the key's usage-plan key) or API Gateway's 401.
AUTHORIZER_EXPECTED = {
    "authorizer/known_key.json": "Allow",
    "authorizer/unknown_key.json": "Unauthorized",
    "authorizer/two_headers.json": "Unauthorized",
}


# fal's webhook route: these deliveries are not signed by a key of fal's JWKS (nor the emulator's).
WEBHOOK_EXPECTED = {"fal_webhook/forged_signature.json": 401, "fal_webhook/unsigned.json": 401}


def answered_as_expected(name: str, answer: dict[str, Any]) -> None:
    """The batch function's answer to one of its ready events."""
    if "invocationSchemaVersion" in answer:
        assert [r["resultCode"] for r in answer["results"]] == ["Succeeded"], (name, answer)
    else:
        assert answer == {"batchItemFailures": []}, (name, answer)


def test_every_event_file_has_an_expected_answer() -> None:
    names = {str(path.relative_to(REPO_ROOT / "events")) for path in EVENTS}
    assert names == set(EXPECTED) | BATCH_EXPECTED | set(AUTHORIZER_EXPECTED) | set(WEBHOOK_EXPECTED)


@pytest.mark.parametrize("path", WEBHOOK_EVENTS, ids=lambda p: str(p.relative_to(REPO_ROOT / "events")))
def test_given_a_ready_fal_webhook_event_when_invoked_then_the_forgery_is_refused(
    stack: LocalStack, path: Path
) -> None:
    assert stack.emulator is not None
    env = {"COLLECT_QUEUE_URL": stack.collect_queue_url, "FAL_JWKS_URL": stack.emulator.jwks_url}
    handler = load_handler(FAL_WEBHOOK, env=env)
    answer = handler(json.loads(path.read_text()), LambdaContext("FalWebhookFunction"))
    assert answer["statusCode"] == WEBHOOK_EXPECTED[str(path.relative_to(REPO_ROOT / "events"))]
    assert set(json.loads(answer["body"])["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("path", AUTHORIZER_EVENTS, ids=lambda p: str(p.relative_to(REPO_ROOT / "events")))
def test_given_a_ready_authorizer_event_when_invoked_then_it_allows_or_refuses_as_expected(
    stack: LocalStack, path: Path
) -> None:
    handler = load_handler(AUTHORIZER, env={"API_KEYS_TABLE": KEYS_TABLE})
    expected = AUTHORIZER_EXPECTED[str(path.relative_to(REPO_ROOT / "events"))]
    event = json.loads(path.read_text())
    if expected == "Unauthorized":
        with pytest.raises(RuntimeError, match=r"^Unauthorized$"):
            handler(event, LambdaContext("AuthorizerFunction"))
        return
    answer = handler(event, LambdaContext("AuthorizerFunction"))
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert answer["principalId"].startswith("key_")
    assert answer["usageIdentifierKey"]


@pytest.mark.parametrize("path", BATCH_EVENTS, ids=lambda p: str(p.relative_to(REPO_ROOT / "events")))
def test_given_a_ready_batch_event_when_invoked_then_the_batch_function_handles_it(
    stack: LocalStack, emulator: FalEmulator, batch_event_objects: None, path: Path
) -> None:
    (handler,) = batch_handlers(1)
    answer = handler(
        json.loads(path.read_text()), LambdaContext(function_name="BatchFunction", timeout_seconds=60)
    )
    answered_as_expected(str(path.relative_to(REPO_ROOT / "events")), answer)


@pytest.mark.parametrize("path", EDIT_EVENTS, ids=lambda p: str(p.relative_to(REPO_ROOT / "events")))
def test_given_a_ready_event_when_invoked_then_the_handler_answers_as_expected(
    stack: LocalStack, path: Path
) -> None:
    assert stack.front is not None
    event = json.loads(path.read_text())
    answer = stack.front.call(event)

    status, param = EXPECTED[str(path.relative_to(REPO_ROOT / "events"))]
    assert answer["statusCode"] == status
    if answer["body"].lstrip().startswith("<!"):  # Swagger UI, the playground
        assert re.search(r"<title>(Swagger UI|editgate playground)</title>", answer["body"])
        return
    body = json.loads(answer["body"])
    if status == 200 and "openapi" in body:
        assert body["servers"] == [{"url": "/api"}]  # the stage leads the path on execute-api's domain
    elif status == 200 and "provider_requests" in body:  # a dry run
        assert body["cost"]["images"] == 6
    elif status == 200 and "fal_key_readable" in body:  # the health check
        assert body["fal_key_readable"] is True
    elif status == 200 and body.get("object") == "list":
        assert {m["id"] for m in body["data"]} >= {"hidream-e1-1"}
    elif status == 200:
        item = body["data"][0]
        assert item.get("url") or open_image(base64.b64decode(item["b64_json"]))
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["param"] == param


def test_the_multipart_events_are_base64_encoded_as_api_gateway_sends_them() -> None:
    for path in EDIT_EVENTS:
        event = json.loads(path.read_text())
        if not event["headers"].get("Content-Type", "").startswith("multipart/"):
            assert event["isBase64Encoded"] is False
            continue
        assert event["isBase64Encoded"] is True
        assert event["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
        assert base64.b64decode(event["body"]).startswith(b"--")
