"""The headers that tell a browser how to treat the gateway's answers: the pages' policy
(scripts, styles, images, requests, framing), no referrer, and no content sniffing anywhere."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from editgate_local.stack import LocalStack
from tests.conftest import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _policy(answer: requests.Response) -> dict[str, list[str]]:
    directives = (part.split() for part in answer.headers["content-security-policy"].split(";"))
    return {name: sources for name, *sources in directives}


@pytest.mark.parametrize("path", ["/playground", "/docs"])
def test_given_a_page_then_it_comes_with_a_content_security_policy_no_framing_nosniff_and_no_referrer(
    stack: LocalStack, path: str
) -> None:
    """Issue 15: /playground (where users paste their key) and /docs were served without
    Content-Security-Policy, X-Frame-Options/frame-ancestors, X-Content-Type-Options and
    Referrer-Policy."""
    answer = requests.get(f"{stack.base_url}{path}", headers=AUTH, timeout=10)

    assert answer.status_code == 200
    policy = _policy(answer)
    assert policy["default-src"] == ["'none'"]
    # Scripts and styles by their hashes only: no 'unsafe-inline', no 'unsafe-eval', no host.
    for directive in ("script-src", "style-src"):
        assert policy[directive]
        assert all(source.startswith("'sha256-") for source in policy[directive]), directive
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'none'"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_given_the_playground_then_it_may_show_images_from_the_results_bucket_and_nowhere_else(
    stack: LocalStack,
) -> None:
    answer = requests.get(f"{stack.base_url}/playground", timeout=10)
    moto = urlsplit(stack.env["AWS_ENDPOINT_URL"])  # where the local stack's presigned URLs point

    assert _policy(answer)["img-src"] == ["'self'", "data:", "blob:", f"{moto.scheme}://{moto.netloc}"]


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [("GET", "/v1/models", AUTH, 200), ("GET", "/v1/nowhere", AUTH, 404),
     ("POST", "/v1/images/edits", AUTH, 400), ("GET", "/v1/openapi.json", AUTH, 200),
     ("GET", "/v1/models", {}, 401)],
)  # fmt: skip
def test_given_any_answer_then_browsers_are_told_not_to_sniff_its_type(
    stack: LocalStack, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    answer = requests.request(method, f"{stack.base_url}{path}", headers=headers, timeout=10)

    assert answer.status_code == status
    assert answer.headers["x-content-type-options"] == "nosniff"
