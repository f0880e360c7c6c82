"""The OpenAI surface: form fields, API keys, errors and the answer's shape."""

from __future__ import annotations

import pytest

from editgate.api.bodies import Form, Upload
from editgate.api.openai_shapes import nest_fields, request_from_form
from editgate.domain.errors import InvalidRequest
from editgate.domain.json_values import MAX_DEPTH
from editgate.domain.models import EditRequest

IMAGE = Upload(filename="a.png", content_type="image/png", content=b"img")


def test_given_bracketed_names_then_they_nest_as_the_sdks_encode_extra_body() -> None:
    fields = {"a": "1", "nested[k]": "1", "deep[x][y]": "2", "arr[]": ["1", "2"], "one[]": "3"}
    assert nest_fields(fields) == {
        "a": "1",
        "nested": {"k": "1"},
        "deep": {"x": {"y": "2"}},
        "arr": ["1", "2"],
        "one": ["3"],
    }


@pytest.mark.parametrize(
    "fields",
    [{"a": "1", "a[b]": "2"}, {"a[b]": "2", "a": "1"}, {"a[b]": "1", "a[b][c]": "2"}, {"a[]": "1", "a": "2"}],
)
def test_given_a_name_sent_both_as_a_value_and_nested_then_bad_request_naming_it(
    fields: dict[str, str],
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        nest_fields(fields)
    assert caught.value.status == 400


def test_given_names_nested_too_deep_then_bad_request() -> None:
    with pytest.raises(InvalidRequest, match="nest at most"):
        nest_fields({"a" + "[b]" * MAX_DEPTH: "1"})


def test_given_form_fields_then_known_ones_are_typed_and_the_rest_are_options() -> None:
    form = Form(fields={"prompt": "p", "n": "2", "size": "auto", "seed": "5"}, files={"image": [IMAGE]})
    request, images = request_from_form(form)
    assert request.n == 2
    assert request.size == "auto"
    assert request.options == {"seed": "5"}
    assert images == [b"img"]


def test_given_a_string_where_a_file_belongs_then_invalid_type_names_image() -> None:
    with pytest.raises(InvalidRequest) as caught:
        request_from_form(Form(fields={"prompt": "p", "image[]": "https://x"}))
    assert caught.value.param == "image"
    assert caught.value.code == "invalid_type"


def test_given_a_file_where_text_belongs_then_invalid_type_names_the_field() -> None:
    with pytest.raises(InvalidRequest) as caught:
        request_from_form(Form(fields={}, files={"image": [IMAGE], "prompt": [IMAGE]}))
    assert caught.value.param == "prompt"


def test_given_a_missing_field_then_the_openai_error_names_it() -> None:
    with pytest.raises(InvalidRequest) as caught:
        EditRequest.from_values({})
    assert caught.value.body() == {
        "error": {
            "message": "Missing required parameter: 'prompt'.",
            "type": "invalid_request_error",
            "param": "prompt",
            "code": "missing_required_parameter",
        }
    }
