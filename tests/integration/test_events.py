"""Every events/*/*.json fed to its function's handler, as `sam local invoke -e` would."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from editgate_local.stack import REPO_ROOT, LocalStack
from tests.conftest import open_image

EVENTS = sorted((REPO_ROOT / "events").glob("*/*.json"))
# What each ready event must answer: status, and the error's param (None for a success).
EXPECTED: dict[str, tuple[int, str | None]] = {
    "edit_api/edit.json": (200, None),
    "edit_api/edit_b64_json.json": (200, None),
    "edit_api/missing_prompt.json": (400, "prompt"),
    "edit_api/not_an_image.json": (400, "image"),
    "edit_api/wrong_api_key.json": (401, None),
    "edit_api/edit_dry_run.json": (200, None),
    "edit_api/edit_json_body.json": (200, None),
    "edit_api/list_models.json": (200, None),
    "edit_api/unknown_route.json": (404, None),
}


def test_every_event_file_has_an_expected_answer() -> None:
    names = {str(path.relative_to(REPO_ROOT / "events")) for path in EVENTS}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("path", EVENTS, ids=lambda p: str(p.relative_to(REPO_ROOT / "events")))
def test_given_a_ready_event_when_invoked_then_the_handler_answers_as_expected(
    stack: LocalStack, path: Path
) -> None:
    assert stack.front is not None
    event = json.loads(path.read_text())
    answer = stack.front.call(event)

    status, param = EXPECTED[str(path.relative_to(REPO_ROOT / "events"))]
    assert answer["statusCode"] == status
    body = json.loads(answer["body"])
    if status == 200 and "provider_requests" in body:  # a dry run
        assert body["cost"]["images"] == 6
    elif status == 200 and body.get("object") == "list":
        assert {m["id"] for m in body["data"]} >= {"hidream-e1-1"}
    elif status == 200:
        item = body["data"][0]
        assert item.get("url") or open_image(base64.b64decode(item["b64_json"]))
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["param"] == param


def test_the_multipart_events_are_base64_encoded_as_api_gateway_sends_them() -> None:
    for path in EVENTS:
        event = json.loads(path.read_text())
        if not event["headers"].get("Content-Type", "").startswith("multipart/"):
            assert event["isBase64Encoded"] is False
            continue
        assert event["isBase64Encoded"] is True
        assert event["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
        assert base64.b64decode(event["body"]).startswith(b"--")
