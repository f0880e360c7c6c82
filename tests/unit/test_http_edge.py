"""The HTTP edge: every failure, expected or not, is an OpenAI-shaped answer and an Errors metric."""

from __future__ import annotations

import json
from typing import Any, cast

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from editgate.api import http_edge
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
