"""The HTTP edge: every failure, expected or not, is an OpenAI-shaped answer and an Errors metric."""

from __future__ import annotations

import json
from typing import Any, cast

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from hypothesis import given
from hypothesis import strategies as st

from editgate.api import http_edge
from editgate.app.edit_service import EditCall, EditOutcome
from editgate.domain import envelope
from editgate.domain.models import EditRequest, EditResult
from editgate_local.front import LambdaContext, proxy_event


def test_given_an_unexpected_exception_then_a_500_in_openai_shape_is_counted_in_errors() -> None:
    app = APIGatewayRestResolver()
    routes = http_edge.RouteTable(app)
    http_edge.install(app, routes, doc_keys=None)

    @routes.route("GET", "/boom")
    def boom() -> None:
        raise RuntimeError("a secret detail")

    metrics = Metrics()
    metrics.clear_metrics()
    event = proxy_event("GET", "/boom", [], b"", authorizer={"principalId": "key_test"})
    answer = app.resolve(event, cast(Any, LambdaContext()))  # the local front's stand-in

    assert answer["statusCode"] == 500
    error = json.loads(answer["body"])["error"]
    assert error["type"] == "server_error"
    assert "secret" not in answer["body"]
    assert metrics.metric_set["Errors"]["Value"] == [1.0]
    metrics.clear_metrics()


def test_given_a_known_path_asked_with_another_method_then_405_naming_its_methods_else_404() -> None:
    app = APIGatewayRestResolver()
    routes = http_edge.RouteTable(app)
    http_edge.install(app, routes, doc_keys=None)

    @routes.route("POST", "/v1/things", "/things")
    @routes.route("GET", "/v1/things/<thing_id>")
    def thing() -> None:
        raise AssertionError("not reached")

    def answer(method: str, path: str) -> dict[str, Any]:
        event = proxy_event(method, path, [], b"", authorizer={"principalId": "key_test"})
        return app.resolve(event, cast(Any, LambdaContext()))

    wrong = answer("GET", "/v1/things")
    assert wrong["statusCode"] == 405
    assert json.loads(wrong["body"])["error"]["code"] == "method_not_allowed"
    assert wrong["multiValueHeaders"]["allow"] == ["POST"]
    assert answer("DELETE", "/v1/things/7")["statusCode"] == 405
    assert answer("GET", "/v1/nothing")["statusCode"] == 404
    assert answer("GET", "/v1/things/7/more")["statusCode"] == 404


def _streamed_answer(b64_images: list[str]) -> dict[str, Any]:
    """What the edit route answers for ``stream=true`` whose edit made ``b64_images``."""
    result = EditResult.model_validate({
        "created": 1_800_000_000, "request_id": "req_1", "model": "hidream-e1-1", "provider": "fal",
        "images": [{"key": f"results/{i}.png", "b64_json": b64} for i, b64 in enumerate(b64_images)],
        "size": {"width": 1024, "height": 1024}, "output_format": "png", "response_format": "b64_json",
        "cost_usd": 0.12,
        "provider_request_ids": ["fal_1"], "ignored_params": ["partial_images"], "resampled_from": None,
        "upscaled": False,
    })  # fmt: skip
    app = APIGatewayRestResolver()
    routes = http_edge.RouteTable(app)
    http_edge.install(app, routes, doc_keys=None)
    call = EditCall(EditRequest(prompt="edit"), [], caller="key_test", idempotency_key=None,
                    request_id="req_1", deadline=0.0, stream=True)  # fmt: skip

    @routes.route("POST", "/v1/images/edits")
    def edit() -> Response[str]:
        return http_edge.edit_response(app, call, EditOutcome(result, replayed=False))

    event = proxy_event("POST", "/v1/images/edits", [], b"", authorizer={"principalId": "key_test"})
    return app.resolve(event, cast(Any, LambdaContext()))


def test_given_a_streamed_edit_then_its_events_are_the_body_of_a_text_event_stream_answer() -> None:
    """Given two images, then one ``event:``/``data:`` block each, in OpenAI's event shape."""
    answer = _streamed_answer(["AAAA", "BBBB"])

    assert answer["statusCode"] == 200
    assert answer["multiValueHeaders"]["Content-Type"] == ["text/event-stream; charset=utf-8"]
    blocks = answer["body"].split("\n\n")
    assert blocks[-1] == ""
    events = [block.split("\n") for block in blocks[:-1]]
    assert [lines[0] for lines in events] == ["event: image_edit.completed"] * 2
    data = [json.loads(lines[1].removeprefix("data: ")) for lines in events]
    assert [d["b64_json"] for d in data] == ["AAAA", "BBBB"]
    assert data[0]["metadata"]["ignored_params"] == ["partial_images"]


def test_given_images_whose_base64_fits_6_mb_but_whose_events_do_not_then_a_413_not_a_broken_answer() -> None:
    """Given images whose base64 alone is just under Lambda's 6 MB response limit, when streamed,
    then the events' own fields take the answer over it: a JSON 413 saying so, rather than an
    answer Lambda would refuse (API Gateway's bare 502)."""
    half = (envelope.LAMBDA_RESPONSE_LIMIT - 200) // 2
    answer = _streamed_answer(["A" * half, "B" * half])

    assert answer["statusCode"] == 413
    assert json.loads(answer["body"])["error"]["code"] == "payload_too_large"
    assert len(json.dumps(answer)) < envelope.LAMBDA_RESPONSE_LIMIT


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126) | st.just("\n")))
def test_given_events_text_then_its_size_in_lambdas_answer_is_what_json_makes_of_it(text: str) -> None:
    """Given text of printable ASCII and line feeds (what events are), then the size counted for
    Lambda's 6 MB is exactly what the text takes as a JSON string."""
    assert envelope.json_string_size(text) == len(json.dumps(text))
