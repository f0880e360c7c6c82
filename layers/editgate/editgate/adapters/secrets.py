"""Secrets from AWS Secrets Manager through Powertools Parameters (cached in memory)."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters


def secret_text(name: str, max_age: int) -> str:
    value = parameters.get_secret(name, max_age=max_age)
    return value.decode() if isinstance(value, bytes) else str(value)


def secret_readable(name: str, max_age: int) -> bool:
    """Whether the secret can be read and holds something (its value never leaves here)."""
    try:
        return bool(secret_text(name, max_age))
    except parameters.exceptions.GetParameterError:
        return False
