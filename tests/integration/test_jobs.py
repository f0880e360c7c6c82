"""Asynchronous edit jobs on the local stack, as a client uses them: submitted with the official
SDK (``Prefer: respond-async`` as an extra header, the 202 read raw: the SDK has no jobs API),
read, listed and cancelled over plain HTTP with the same base URL and key, run by the batch
function as Lambda's SQS event source drives it, and told to a callback receiver that checks the
signature with the ``standardwebhooks`` package."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import openai
import pytest
import requests
from PIL import Image
from standardwebhooks.webhooks import Webhook

from editgate_local.background_server import BackgroundServer
from editgate_local.batch_driver import QueueDriver
from editgate_local.fal_emulator import FalEmulator
from editgate_local.stack import LocalStack
from tests.conftest import API_KEY, png_bytes, sdk_client

OTHER_KEY = "sk-second"
# The template's longest batch function timeout: what the stack admits jobs with (conftest).
JOB_TIMEOUT = 900.0
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def driver(stack: LocalStack) -> Iterator[QueueDriver]:
    """Two execution environments of the batch function, with the jobs' timeout."""
    stack.set_batch_timeout(JOB_TIMEOUT)
    with stack.batch_driver(2) as running:
        yield running
    stack.set_batch_timeout(60.0)


class Receiver:
    """A callback receiver on loopback: every delivery's headers and body, answered ``status``."""

    def __init__(self, status: int = 204) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.statuses = [status]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = BackgroundServer(Handler, host="127.0.0.1", port=0, name="callback-receiver")

    @property
    def url(self) -> str:
        return f"{self._server.url}/hooks/editgate"

    def __enter__(self) -> Receiver:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop()


def submit(
    stack: LocalStack, *, key: str = API_KEY, idempotency_key: str | None = None, **params: Any
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A job submitted as the SDK sends an edit, with ``Prefer: respond-async``: its status,
    headers and body."""
    headers = {**ASYNC, **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
    client = sdk_client(f"{stack.base_url}/v1", key, distinct=idempotency_key is None)
    extra_body = {k: params.pop(k) for k in ("callback_url", "output_format") if k in params}
    raw = client.images.with_raw_response.edit(
        image=("in.png", png_bytes((256, 256)), "image/png"),
        prompt=params.pop("prompt", "a job"),
        extra_headers=headers,
        extra_body=extra_body,
        **params,
    )
    return raw.status_code, dict(raw.headers), json.loads(raw.content)


def read(stack: LocalStack, path: str, key: str = API_KEY, method: str = "GET") -> requests.Response:
    return requests.request(method, f"{stack.base_url}{path}", headers={"Authorization": f"Bearer {key}"},
                            timeout=30)  # fmt: skip


def until(condition: Callable[[], bool], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        threading.Event().wait(0.2)


def ended(stack: LocalStack, job_id: str, key: str = API_KEY) -> dict[str, Any]:
    """The job, polled at its Location until it has ended."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(read(stack, f"/v1/images/edits/jobs/{job_id}", key).json())
        return seen["status"] in ("succeeded", "failed", "cancelled")

    until(done)
    return seen


def test_given_an_n10_4096_avif_edit_when_submitted_as_a_job_then_202_and_it_succeeds_with_ten_such_images(
    stack: LocalStack, emulator: FalEmulator, driver: QueueDriver
) -> None:
    """Given an edit too long for one HTTPS request (n=10, 4096², AVIF)
    When the SDK sends it with Prefer: respond-async
    Then it is answered 202 with the queued job and its Location, and polling that Location finds
    it succeeded with OpenAI's answer: ten presigned 4096² AVIF images."""
    status, headers, job = submit(stack, n=10, size="4096x4096", output_format="avif")
    assert status == 202, job
    assert headers["location"] == f"/v1/images/edits/jobs/{job['id']}"
    assert headers["preference-applied"] == "respond-async"
    assert job["object"] == "image.edit.job"
    assert job["status"] == "queued"
    assert job["result"] is None
    done = ended(stack, job["id"])
    assert done["status"] == "succeeded", done["error"]
    result = done["result"]
    assert len(result["data"]) == 10
    assert result["output_format"] == "avif"
    assert result["size"] == "4096x4096"
    image = Image.open(io.BytesIO(requests.get(result["data"][9]["url"], timeout=30).content))
    assert (image.format, image.size) == ("AVIF", (4096, 4096))


def test_given_a_job_when_the_batch_function_runs_it_then_it_returns_before_fal_finishes_and_the_webhook_ends_the_job(  # noqa: E501
    stack: LocalStack, emulator: FalEmulator, driver: QueueDriver
) -> None:
    """Given fal taking 2 s to edit
    When a job's message is handled by the batch function
    Then the invocation returns while fal's request is still queued or running, before its result
    is fetched (nothing waits on fal: issue 17), and fal's webhook has the request collected: the
    job succeeds with its image, fal paid once."""
    emulator.latency = 2.0
    try:
        _, _, job = submit(stack)
        until(lambda: any(kind == "job" for kind, _ in driver.durations))
        (request_id,) = emulator.request_ids
        _, status = emulator.status(request_id)
        results_fetched = emulator.calls["result"]
        done = ended(stack, job["id"])
    finally:
        emulator.latency = 0.0
    assert status["status"] in ("IN_QUEUE", "IN_PROGRESS")  # fal still at work when it returned
    assert results_fetched == 0
    assert done["status"] == "succeeded", done["error"]
    assert len(done["result"]["data"]) == 1
    assert done["result"]["data"][0]["url"].startswith("http")
    assert emulator.calls["submit"] == 1
    assert emulator.billed() == {request_id}


def test_given_a_queued_job_when_cancelled_before_it_starts_then_fal_never_sees_it_and_it_stays_cancelled(
    stack: LocalStack, emulator: FalEmulator
) -> None:
    """Given a job queued while no batch function runs
    When its caller DELETEs it, and the batch function then takes its message
    Then it is cancelled, and fal got no submit for it: nothing is billed."""
    _, _, job = submit(stack)
    cancelled = read(stack, f"/v1/images/edits/jobs/{job['id']}", method="DELETE")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    stack.set_batch_timeout(JOB_TIMEOUT)
    with stack.batch_driver(1) as running:
        until(running.idle)
    stack.set_batch_timeout(60.0)
    assert emulator.request_ids == []
    assert emulator.billed() == set()
    assert ended(stack, job["id"])["status"] == "cancelled"


def test_given_a_running_job_when_cancelled_then_fal_is_asked_to_cancel_and_nothing_is_billed(
    stack: LocalStack, emulator: FalEmulator, driver: QueueDriver
) -> None:
    """Given a job whose fal request is running (fal takes 30 s)
    When its caller DELETEs it
    Then fal's cancel is called for that request, the job ends cancelled and fal bills nothing."""
    emulator.latency = 30.0
    try:
        _, _, job = submit(stack)
        until(lambda: len(emulator.request_ids) == 1)
        answer = read(stack, f"/v1/images/edits/jobs/{job['id']}", method="DELETE").json()
        assert answer["status"] == "cancelled"
        assert emulator.calls["cancel"] == 1
        until(driver.idle)
    finally:
        emulator.latency = 0.0
    assert emulator.billed() == set()
    assert ended(stack, job["id"])["status"] == "cancelled"


def test_given_another_keys_job_then_get_and_delete_are_404_and_its_list_does_not_show_it(
    stack: LocalStack, emulator: FalEmulator
) -> None:
    """Given a job of one key
    When another key reads, cancels or lists jobs
    Then the job is a 404 to it (as unknown as a job that never was) and its list lacks it, while
    the owner's list shows it first."""
    _, _, job = submit(stack)
    path = f"/v1/images/edits/jobs/{job['id']}"
    for method in ("GET", "DELETE"):
        refused = read(stack, path, OTHER_KEY, method=method)
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "job_not_found"
    assert job["id"] not in [j["id"] for j in read(stack, "/v1/images/edits/jobs", OTHER_KEY).json()["data"]]
    own = read(stack, "/v1/images/edits/jobs?limit=1", API_KEY).json()
    assert own["object"] == "list"
    assert own["data"][0]["id"] == job["id"]
    read(stack, path, method="DELETE")


def test_given_several_jobs_when_listed_by_pages_then_newest_first_without_gaps(
    stack: LocalStack, emulator: FalEmulator
) -> None:
    """Given three jobs of a new key
    When its list is read two at a time (limit, after)
    Then the pages hold the three newest first, has_more telling whether another page follows."""
    key, _ = stack.add_key("lister")
    ids = [submit(stack, key=key)[2]["id"] for _ in range(3)]
    first = read(stack, "/v1/images/edits/jobs?limit=2", key).json()
    second = read(stack, f"/v1/images/edits/jobs?limit=2&after={first['last_id']}", key).json()
    assert [j["id"] for j in first["data"] + second["data"]] == ids[::-1]
    assert (first["has_more"], second["has_more"]) == (True, False)
    for job_id in ids:
        read(stack, f"/v1/images/edits/jobs/{job_id}", key, method="DELETE")


def test_given_the_same_idempotency_key_when_a_job_is_submitted_twice_then_the_same_job_answers(
    stack: LocalStack, emulator: FalEmulator
) -> None:
    """Given a job submitted with an Idempotency-Key
    When the same request is sent again with that key, and then another request with it
    Then the second answer is the same job; the third is refused as a key reused."""
    first = submit(stack, idempotency_key="job-key-1")[2]
    again = submit(stack, idempotency_key="job-key-1")[2]
    assert again["id"] == first["id"]
    with pytest.raises(openai.ConflictError) as reused:
        submit(stack, idempotency_key="job-key-1", prompt="another prompt")
    assert reused.value.code == "idempotency_key_reused"
    read(stack, f"/v1/images/edits/jobs/{first['id']}", method="DELETE")


@pytest.mark.parametrize(
    "url", ["http://10.0.0.7/hook", "http://169.254.169.254/latest/meta-data", "ftp://example.com/x"]
)
def test_given_a_callback_url_that_is_not_public_then_the_job_is_refused_400_before_anything_is_paid(
    stack: LocalStack, emulator: FalEmulator, url: str
) -> None:
    """Given a callback_url on a private or link-local address, or not http(s)
    When the job is submitted
    Then it is a 400 naming callback_url, and fal got nothing."""
    with pytest.raises(openai.BadRequestError) as refused:
        submit(stack, callback_url=url)
    assert refused.value.param == "callback_url"
    assert emulator.request_ids == []


def test_given_a_callback_url_when_the_job_succeeds_then_one_delivery_verified_by_standardwebhooks(
    stack: LocalStack, emulator: FalEmulator, driver: QueueDriver
) -> None:
    """Given a job with a callback_url whose receiver fails the first delivery (HTTP 500)
    When the job succeeds
    Then the receiver is delivered to again, the second time accepted, and nothing after: each
    delivery's Standard Webhooks signature verifies with the key's secret, and says succeeded."""
    with Receiver() as receiver:
        receiver.statuses = [500, 204]
        _, _, job = submit(stack, callback_url=receiver.url)
        assert ended(stack, job["id"])["status"] == "succeeded"
        until(lambda: len(receiver.deliveries) == 2 and driver.idle())
    verifier = Webhook(stack.webhook_secret(API_KEY))
    events = [verifier.verify(body, headers) for headers, body in receiver.deliveries]
    assert [event["data"] for event in events] == [
        {"id": job["id"], "object": "image.edit.job", "status": "succeeded"}
    ] * 2
    assert events[0]["type"] == "image.edit.job.succeeded"
    assert len({headers["webhook-id"] for headers, _ in receiver.deliveries}) == 1


def test_given_a_callback_url_when_the_job_is_cancelled_then_exactly_one_verified_delivery_says_so(
    stack: LocalStack, emulator: FalEmulator
) -> None:
    """Given a queued job with a callback_url
    When it is cancelled and the batch function runs its messages
    Then the receiver gets exactly one delivery, verified, saying cancelled."""
    with Receiver() as receiver:
        _, _, job = submit(stack, callback_url=receiver.url)
        read(stack, f"/v1/images/edits/jobs/{job['id']}", method="DELETE")
        stack.set_batch_timeout(JOB_TIMEOUT)
        with stack.batch_driver(1) as running:
            until(lambda: len(receiver.deliveries) == 1 and running.idle())
        stack.set_batch_timeout(60.0)
    headers, body = receiver.deliveries[0]
    assert Webhook(stack.webhook_secret(API_KEY)).verify(body, headers)["data"]["status"] == "cancelled"
    assert emulator.request_ids == []


def test_given_a_bad_job_edit_then_400_as_the_synchronous_edit_and_no_job_is_made(
    stack: LocalStack, emulator: FalEmulator
) -> None:
    """Given an edit a synchronous request refuses (n=11)
    When it is submitted as a job
    Then it is the same OpenAI-shaped 400, and the caller's list has no new job."""
    key, _ = stack.add_key("refused")
    with pytest.raises(openai.BadRequestError) as refused:
        submit(stack, key=key, n=11)
    assert refused.value.param == "n"
    assert read(stack, "/v1/images/edits/jobs", key).json()["data"] == []


def test_given_a_synchronous_edit_with_a_callback_url_then_400_pointing_to_jobs(
    stack: LocalStack, emulator: FalEmulator
) -> None:
    """Given callback_url on an edit without Prefer: respond-async
    Then it is a 400 saying callback_url is for jobs (it is never sent to fal)."""
    client = sdk_client(f"{stack.base_url}/v1")
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.edit(
            image=png_bytes(), prompt="x", extra_body={"callback_url": "https://example.com/h"}
        )
    assert refused.value.param == "callback_url"
    assert "respond-async" in refused.value.message
    assert emulator.request_ids == []
