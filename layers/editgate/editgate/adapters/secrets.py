"""Secrets from AWS Secrets Manager through Powertools Parameters (cached in memory)."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters


def secret_text(name: str, max_age: int) -> str:
    value = parameters.get_secret(name, max_age=max_age)
    return value.decode() if isinstance(value, bytes) else str(value)
