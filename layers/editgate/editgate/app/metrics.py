"""Metrics from anywhere in the core, into the handler's metric set."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit


def add(name: str, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    # A Metrics made now, not at import: it reads its namespace from the environment, which a
    # process may set after importing the core (the local stack, the CLI); without one, Powertools'
    # flush at 100 metrics raises. It keeps one metric set per process, which the handler flushes.
    Metrics().add_metric(name=name, unit=unit, value=value)
