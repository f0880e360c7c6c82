"""API keys through the local front, which runs the authorizer and the usage plan as API Gateway
does: every refusal the same 401, each key its own identity, throttle and quota."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pybase64
import pytest

from editgate.adapters.keys import KeyTable, WebhookSecrets
from editgate_local.cli import main
from editgate_local.front import ApiFront, UsagePlan, load_handler
from editgate_local.stack import EDIT_API, KEYS_TABLE, LocalStack
from tests.conftest import API_KEY


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def _models(base_url: str, headers: list[tuple[str, str]], query: str = "") -> Answer:
    """GET /v1/models with exactly these headers (a repeated one is sent twice)."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.putrequest("GET", f"/v1/models{query}")
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return Answer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
        )
    finally:
        conn.close()


@pytest.fixture(scope="module")
def revoked_and_expired(stack: LocalStack) -> tuple[str, str]:
    revoked, record = stack.add_key("revoked")
    KeyTable(KEYS_TABLE).put(record.key_hash, record.model_copy(update={"revoked": True}).model_dump())
    expired, _ = stack.add_key("expired", expires_at=int(time.time()) - 1)
    return revoked, expired


@pytest.mark.parametrize(
    "case", ["no key", "wrong key", "revoked key", "expired key", "key in the query string", "two headers",
             "basic scheme"],
)  # fmt: skip
def test_given_any_bad_credential_then_the_same_401_reveals_nothing_of_which_check_failed(
    stack: LocalStack, revoked_and_expired: tuple[str, str], case: str
) -> None:
    revoked, expired = revoked_and_expired
    bearer = {"wrong key": "Bearer sk-wrong", "revoked key": f"Bearer {revoked}",
              "expired key": f"Bearer {expired}", "basic scheme": f"Basic {API_KEY}"}  # fmt: skip
    headers = [("Authorization", bearer[case])] if case in bearer else []
    if case == "two headers":
        headers = [("Authorization", f"Bearer {API_KEY}"), ("Authorization", f"Bearer {API_KEY}")]
    query = f"?api_key={API_KEY}&key={API_KEY}" if case == "key in the query string" else ""
    answer = _models(stack.base_url, headers, query)
    reference = _models(stack.base_url, [("Authorization", "Bearer sk-nobody")])
    assert answer.status_code == 401
    assert answer.json() == reference.json()
    assert answer.json()["error"]["code"] == "invalid_api_key"
    assert API_KEY not in answer.text


def test_given_a_known_key_then_the_function_sees_its_id_not_the_key(stack: LocalStack) -> None:
    assert stack.front is not None
    assert stack.front.gate is not None
    event: dict[str, Any] = {"httpMethod": "GET", "path": "/v1/models", "requestContext": {},
             "multiValueHeaders": {"Authorization": [f"Bearer {API_KEY}"]}}  # fmt: skip
    assert stack.front.gate.admit(event) is None
    passed = event["requestContext"]["authorizer"]
    assert passed["principalId"].startswith("key_")
    assert passed["owner"] == "local-0"
    assert API_KEY not in str(passed)


@pytest.fixture
def tight_front(stack: LocalStack) -> Iterator[ApiFront]:
    """The same function behind a usage plan of 1 request a second, burst 3."""
    front = ApiFront([load_handler(EDIT_API, environment=90)], gate=stack.gate(UsagePlan(rate=1, burst=3)))
    yield front.start()
    front.stop()


def test_given_a_key_over_its_rate_then_429_with_retry_after_while_another_key_still_works(
    tight_front: ApiFront,
) -> None:
    first = [_models(tight_front.url, [("Authorization", f"Bearer {API_KEY}")]) for _ in range(6)]
    other = _models(tight_front.url, [("Authorization", "Bearer sk-second")])
    throttled = [a for a in first if a.status_code == 429]
    assert throttled, [a.status_code for a in first]
    assert throttled[0].headers["retry-after"] == "1"
    assert throttled[0].json()["error"]["code"] == "rate_limit_exceeded"
    assert other.status_code == 200


def test_given_a_key_past_its_daily_quota_then_429_quota_exceeded(stack: LocalStack) -> None:
    front = ApiFront([load_handler(EDIT_API, environment=91)], gate=stack.gate(UsagePlan(daily_quota=2)))
    front.start()
    try:
        answers = [_models(front.url, [("Authorization", f"Bearer {API_KEY}")]) for _ in range(3)]
    finally:
        front.stop()
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["error"]["code"] == "quota_exceeded"


def test_given_keys_made_with_the_cli_then_a_new_key_works_and_a_revoked_one_gets_401(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "--table", KEYS_TABLE, "create", "--owner", "team-cli"]) == 0
    created = capsys.readouterr().out
    key = created.split("key:    ", 1)[1].split()[0]
    key_id = created.split("key id: ", 1)[1].split()[0]
    assert _models(stack.base_url, [("Authorization", f"Bearer {key}")]).status_code == 200

    assert main(["keys", "--table", KEYS_TABLE, "create", "--owner", "team-gone"]) == 0
    gone = capsys.readouterr().out
    gone_key, gone_id = gone.split("key:    ", 1)[1].split()[0], gone.split("key id: ", 1)[1].split()[0]
    assert main(["keys", "--table", KEYS_TABLE, "revoke", gone_id]) == 0
    assert _models(stack.base_url, [("Authorization", f"Bearer {gone_key}")]).status_code == 401

    assert main(["keys", "--table", KEYS_TABLE, "list"]) == 0
    listed = capsys.readouterr().out
    assert key_id in listed
    assert f"{gone_id}" in listed
    assert "revoked" in listed
    assert key not in listed
    assert gone_key not in listed


def test_given_a_key_made_with_the_cli_then_its_webhook_secret_is_shown_once_and_webhook_secret_rotates_it(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given ``editgate keys create``
    Then it shows the key's webhook secret (whsec_, 32 bytes), which signs the key's callbacks;
    ``editgate keys webhook-secret --id`` shows a new one, which replaces it; an unknown id is a
    one-line mistake."""
    assert main(["keys", "--table", KEYS_TABLE, "create", "--owner", "team-hooks"]) == 0
    created = capsys.readouterr().out
    key_id = created.split("key id: ", 1)[1].split()[0]
    first = created.split("webhook secret: ", 1)[1].split()[0]
    assert first.startswith("whsec_")
    assert len(pybase64.b64decode(first.removeprefix("whsec_"))) == 32
    assert WebhookSecrets(KEYS_TABLE).get(key_id) == first

    assert main(["keys", "--table", KEYS_TABLE, "webhook-secret", "--id", key_id]) == 0
    second = capsys.readouterr().out.split("webhook secret: ", 1)[1].split()[0]
    assert second != first
    assert WebhookSecrets(KEYS_TABLE).get(key_id) == second
    listed = capsys.readouterr()
    assert main(["keys", "--table", KEYS_TABLE, "list"]) == 0
    assert second not in capsys.readouterr().out + listed.out

    assert main(["keys", "--table", KEYS_TABLE, "webhook-secret", "--id", "key_nosuchkey"]) != 0
    assert "no key key_nosuchkey" in capsys.readouterr().err
