"""The HTTP edge: every failure, expected or not, is an OpenAI-shaped answer and an Errors metric."""

from __future__ import annotations

import json
from typing import Any, cast

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from editgate import web
from editgate_local.front import LambdaContext, proxy_event


def test_given_an_unexpected_exception_then_a_500_in_openai_shape_is_counted_in_errors() -> None:
    app = APIGatewayRestResolver()
    web.install(app)

    @app.get("/boom")
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
