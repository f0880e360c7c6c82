"""The OpenAI surface: form fields, API keys, errors and the answer's shape."""

from __future__ import annotations

import pytest

from editgate.api import check_api_key, error_from_validation, nest_fields, request_from_form
from editgate.errors import AuthenticationFailed, InvalidRequest


class Upload:
    def __init__(self, content: bytes) -> None:
        self.content = content


def test_given_bracketed_names_then_they_nest_as_the_sdks_encode_extra_body() -> None:
    fields = {"a": "1", "nested[k]": "1", "deep[x][y]": "2", "arr[]": ["1", "2"], "one[]": "3"}
    assert nest_fields(fields) == {
        "a": "1",
        "nested": {"k": "1"},
        "deep": {"x": {"y": "2"}},
        "arr": ["1", "2"],
        "one": ["3"],
    }


def test_given_form_fields_then_known_ones_are_typed_and_the_rest_are_options() -> None:
    request, images = request_from_form(
        prompt="p", images=[Upload(b"img")], mask=None, fields={"n": "2", "size": "auto", "seed": "5"}
    )
    assert request.n == 2
    assert request.size == "auto"
    assert request.options == {"seed": "5"}
    assert images == [b"img"]


def test_given_a_string_where_a_file_belongs_then_invalid_type_names_image() -> None:
    with pytest.raises(InvalidRequest) as caught:
        request_from_form(prompt="p", images=["https://x"], mask=None, fields={})
    assert caught.value.param == "image"
    assert caught.value.code == "invalid_type"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer sk-other", "Basic sk-local", "sk-local"])
def test_given_a_missing_or_wrong_key_then_authentication_fails_without_echoing_it(
    header: str | None,
) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        check_api_key(header, {"sk-local"})
    assert "sk-local" not in caught.value.message
    assert "sk-other" not in caught.value.message
    assert caught.value.status == 401


def test_given_a_known_key_then_it_passes_whatever_the_scheme_case() -> None:
    check_api_key("Bearer sk-local", {"sk-local", "sk-2"})
    check_api_key("bearer sk-2", {"sk-local", "sk-2"})


def test_given_an_empty_key_list_then_no_key_passes() -> None:
    with pytest.raises(AuthenticationFailed):
        check_api_key("Bearer ", {""})


def test_given_a_missing_field_error_then_the_openai_error_names_it() -> None:
    error = error_from_validation([{"type": "missing", "loc": ("body", "prompt"), "msg": "Field required"}])
    assert error.body() == {
        "error": {
            "message": "Missing required parameter: 'prompt'.",
            "type": "invalid_request_error",
            "param": "prompt",
            "code": "missing_required_parameter",
        }
    }
