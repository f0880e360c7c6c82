"""Jobs' pure rules: how a request asks to be one, the list's page size, Standard Webhooks
signatures (checked by the ``standardwebhooks`` package, an independent implementation), and
which callback URLs a delivery may go to."""

from __future__ import annotations

import ipaddress
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from editgate.adapters.callbacks import CallbackSender
from editgate.adapters.fetch import allowing
from editgate.domain import jobs
from editgate.domain.errors import InvalidRequest
from editgate.domain.jobs import Job


@pytest.mark.parametrize(
    ("headers", "wanted"),
    [
        (["respond-async"], True),
        (["Respond-Async, wait=10"], True),
        (["wait=5; foo=bar", "respond-async; x=1"], True),
        (["return=minimal"], False),
        (["respond-asyncx"], False),
        ([], False),
    ],
)
def test_given_prefer_headers_then_respond_async_is_read_as_rfc_7240_lists_it(
    headers: list[str], wanted: bool
) -> None:
    assert jobs.prefers_async(headers) is wanted


@pytest.mark.parametrize(("raw", "size"), [(None, 20), ("1", 1), ("100", 100)])
def test_given_a_limit_then_the_page_has_that_many_at_most(raw: str | None, size: int) -> None:
    assert jobs.page_size(raw) == size


@pytest.mark.parametrize("raw", ["0", "101", "-1", "ten", ""])
def test_given_a_limit_out_of_range_then_400_naming_limit(raw: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        jobs.page_size(raw)
    assert refused.value.param == "limit"


def test_given_a_signed_callback_then_standardwebhooks_verifies_it_and_refuses_it_altered() -> None:
    """Given a callback body signed with a new secret
    Then the standardwebhooks verifier accepts it, and refuses it with another body or secret."""
    secret = jobs.new_webhook_secret()
    job = Job(
        id="job_" + "0" * 32, caller="key_1", created=1, status="succeeded", request={}, inputs=(), digest="d"
    )
    timestamp = int(time.time())  # the verifier refuses a timestamp 5 minutes from its clock
    body = '{"type":"image.edit.job.succeeded"}'
    headers = {
        "webhook-id": f"msg_{job.id}",
        "webhook-timestamp": str(timestamp),
        "webhook-signature": jobs.webhook_signature(secret, f"msg_{job.id}", timestamp, body),
    }
    verifier = Webhook(secret)
    assert verifier.verify(body, headers) == {"type": "image.edit.job.succeeded"}
    with pytest.raises(WebhookVerificationError):
        verifier.verify(body.replace("succeeded", "failed"), headers)
    other = Webhook(jobs.new_webhook_secret())
    with pytest.raises(WebhookVerificationError):
        other.verify(body, headers)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "file:///etc/passwd",
        "https:///no-host",
        "not a url",
    ],
)
def test_given_a_callback_url_that_is_not_public_then_400_naming_callback_url(url: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        CallbackSender(resolver=lambda host, port: [host.strip("[]")]).check(url)
    assert refused.value.param == "callback_url"
    assert refused.value.code == "invalid_callback_url"


def test_given_a_host_resolving_to_a_private_address_among_public_ones_then_it_is_refused() -> None:
    sender = CallbackSender(resolver=lambda host, port: ["93.184.215.14", "10.0.0.5"])
    with pytest.raises(InvalidRequest):
        sender.check("https://hooks.example.com/editgate")
    assert CallbackSender(resolver=lambda host, port: ["93.184.215.14"]).check("https://hooks.example.com/x")


def test_given_loopback_allowed_by_setting_then_only_loopback_is_added_to_public_addresses() -> None:
    """The local stack's CALLBACK_ALLOWED_NETWORKS: its tests' receivers on 127.0.0.0/8, and no
    other private address."""
    policy = allowing(["127.0.0.0/8"])
    assert policy(ipaddress.ip_address("127.0.0.1"))
    assert policy(ipaddress.ip_address("93.184.215.14"))
    assert not policy(ipaddress.ip_address("10.0.0.1"))
    assert not policy(ipaddress.ip_address("169.254.169.254"))
