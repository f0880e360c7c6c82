"""JSON as the gateway reads it from clients and writes it: numbers that are not finite are
refused where they are read, naming where they sit, and are never written."""

from __future__ import annotations

import math
from typing import Any

import pytest

from editgate.domain.errors import InvalidRequest
from editgate.domain.json_values import json_text, parse_json
from editgate.domain.models import EditRequest


@pytest.mark.parametrize(
    ("body", "param"),
    [(b'{"prompt": "p", "foo": 1e999}', "foo"), (b'{"prompt": "p", "foo": 2e308}', "foo"),
     (b'{"prompt": "p", "foo": -1e999}', "foo"), (b'{"x": {"y": 1e309}}', "x.y"),
     (b'{"a": [1, {"b": [0.5, 1E400]}]}', "a[1].b[1]"), (b'{"foo": NaN}', "foo"),
     (b'{"foo": Infinity}', "foo"), (b'{"x": {"y": -Infinity}}', "x.y"),
     (b'{"defaults": {"cfg_scale": 1e999}}', "defaults.cfg_scale")],
)  # fmt: skip
def test_a_json_number_that_overflows_to_infinity_or_is_nan_is_a_400_invalid_value_naming_its_path(
    body: bytes, param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_json(body)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_value"
    assert caught.value.param == param
    assert caught.value.message.startswith(f"Invalid value for '{param}': numbers must be finite")


def test_given_a_whole_body_that_is_one_infinite_number_then_a_400_naming_no_field() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_json(b"1e999")
    assert caught.value.param is None
    assert caught.value.code == "invalid_value"


def test_given_finite_numbers_at_the_edge_of_a_float_then_the_body_is_read() -> None:
    assert parse_json(b'{"big": 1.7976931348623157e308, "small": 5e-324, "zero": -0.0}') == {
        "big": 1.7976931348623157e308,
        "small": 5e-324,
        "zero": -0.0,
    }


@pytest.mark.parametrize(
    ("values", "param"),
    [({"prompt": "p", "foo": math.inf}, "foo"), ({"prompt": "p", "x": {"y": [math.nan]}}, "x.y[0]"),
     ({"prompt": "p", "n": math.inf}, "n")],
)  # fmt: skip
def test_a_non_finite_number_in_edit_values_from_any_transport_is_a_400_naming_its_path(
    values: dict[str, Any], param: str
) -> None:
    # A queued batch item, read with json.loads, may carry what parse_json would have refused.
    with pytest.raises(InvalidRequest) as caught:
        EditRequest.from_values(values)
    assert caught.value.code == "invalid_value"
    assert caught.value.param == param


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, {"deep": [math.inf]}])
def test_every_json_the_gateway_writes_is_valid_json_so_a_non_finite_number_is_never_written(
    value: Any,
) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        json_text({"value": value})
    assert json_text({"value": 1.5}, indent=1) == '{\n "value": 1.5\n}'
