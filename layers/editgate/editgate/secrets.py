"""Secrets from AWS Secrets Manager through Powertools Parameters (cached in memory)."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters


def secret_text(name: str, max_age: int) -> str:
    value = parameters.get_secret(name, max_age=max_age)
    return value.decode() if isinstance(value, bytes) else str(value)


def api_keys(name: str, max_age: int) -> frozenset[str]:
    """The API keys this gateway accepts: the secret holds them comma-separated."""
    return frozenset(key.strip() for key in secret_text(name, max_age).split(",") if key.strip())
