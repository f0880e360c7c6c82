"""Settings from the environment, and the layer's dependency list against pyproject's."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping

import pytest

from editgate.settings import KeySettings, Settings, SettingsError
from editgate_local.stack import REPO_ROOT

SetEnv = Callable[[Mapping[str, str]], None]
REQUIRED = {
    "RESULTS_BUCKET": "bucket",
    "FAL_KEY_SECRET_NAME": "fal",
    "IDEMPOTENCY_TABLE": "idempotency",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Callable[[Mapping[str, str]], None]:
    """Sets exactly these variables of the settings (a developer's own are cleared first)."""
    for name in [*Settings.model_fields, *KeySettings.model_fields]:
        monkeypatch.delenv(name.upper(), raising=False)

    def set_variables(variables: Mapping[str, str]) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_variables


def test_given_the_required_variables_then_settings_have_safe_defaults(environment: SetEnv) -> None:
    environment(REQUIRED)
    settings = Settings.from_env()
    assert settings.results_bucket == "bucket"
    assert settings.fal_queue_url == "https://queue.fal.run"
    assert settings.fal_endpoints == {}
    assert settings.public_docs is True  # the docs describe the API and hold no secret
    assert settings.cors_allow_origins is None
    assert settings.request_deadline_seconds < 29  # API Gateway's integration timeout


def test_given_an_empty_variable_then_it_counts_as_unset(environment: SetEnv) -> None:
    environment({**REQUIRED, "RESULTS_PREFIX": ""})
    assert Settings.from_env().results_prefix == "results/"


def test_given_a_json_map_then_it_is_read_and_a_bad_one_is_named(environment: SetEnv) -> None:
    environment({**REQUIRED, "FAL_ENDPOINTS": '{"hidream-e1-1": "fal-ai/x"}'})
    assert Settings.from_env().fal_endpoints == {"hidream-e1-1": "fal-ai/x"}
    environment({"FAL_ENDPOINTS": "{"})
    with pytest.raises(SettingsError, match="FAL_ENDPOINTS"):
        Settings.from_env()


def test_given_the_authorizers_variables_then_its_own_settings_are_read_alone(environment: SetEnv) -> None:
    with pytest.raises(SettingsError, match="API_KEYS_TABLE"):
        KeySettings.from_env()
    environment({"API_KEYS_TABLE": "keys", "KEY_CACHE_SECONDS": "5"})
    assert KeySettings.from_env().key_cache_seconds == 5


def test_given_a_missing_or_bad_variable_then_the_error_names_the_variable(environment: SetEnv) -> None:
    environment({k: v for k, v in REQUIRED.items() if k != "RESULTS_BUCKET"})
    with pytest.raises(SettingsError, match="RESULTS_BUCKET"):
        Settings.from_env()
    environment({**REQUIRED, "PRESIGN_EXPIRY_SECONDS": "99999999"})
    with pytest.raises(SettingsError, match="PRESIGN_EXPIRY_SECONDS"):
        Settings.from_env()


def test_given_an_idempotency_ttl_beyond_the_url_lifetime_then_the_deployment_is_refused(
    environment: SetEnv,
) -> None:
    environment({**REQUIRED, "PRESIGN_EXPIRY_SECONDS": "600", "IDEMPOTENCY_TTL_SECONDS": "3600"})
    with pytest.raises(SettingsError, match="IDEMPOTENCY_TTL_SECONDS must not exceed PRESIGN_EXPIRY_SECONDS"):
        Settings.from_env()


def _names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[<>=\[; ]", line.strip(), maxsplit=1)[0].lower() for line in requirements if line.strip()
    }


def test_the_layer_requirements_are_pyprojects_runtime_dependencies_less_boto3() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    layer = [
        line
        for line in (REPO_ROOT / "layers/editgate/requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert sorted(layer) == sorted(d for d in project if not d.startswith("boto3"))
    assert "boto3" not in _names(layer)
