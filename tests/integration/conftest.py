"""Fixtures the batch tests share: an S3 client, and a module's batch function run by the queue
driver (Lambda's SQS event source)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest

from editgate_local.batch_driver import QueueDriver
from editgate_local.stack import REGION, LocalStack

# The batch function's timeout in the tests, and so each item's deadline.
FUNCTION_TIMEOUT = 20.0


@pytest.fixture
def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def batch_driver(environments: int, env: Mapping[str, str] | None = None) -> Any:
    """A module's ``driver`` fixture: the batch function in ``environments`` execution
    environments (its MaximumConcurrency), with ``env`` over the stack's environment, polling
    the batch queue for the whole module. Assign it: ``driver = batch_driver(4)``."""

    @pytest.fixture(scope="module", name="driver")
    def driver(stack: LocalStack) -> Iterator[QueueDriver]:
        stack.set_batch_timeout(FUNCTION_TIMEOUT)
        with stack.batch_driver(environments, dict(env or {})) as running:
            yield running

    return driver
