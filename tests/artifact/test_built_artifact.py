"""The `sam build` output, not the source tree: its function imports with its layer and answers
the events in events/ (the closest thing to `sam local invoke` without a container)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from editgate_local.stack import REGION, REPO_ROOT, LocalStack
from tests.artifact.invoke_built import MARK
from tests.integration.test_events import EVENTS, EXPECTED

BUILD = REPO_ROOT / ".aws-sam" / "build-native"
FUNCTION = BUILD / "EditApiFunction"
LAYER = BUILD / "EditgateLayer" / "python"

pytestmark = pytest.mark.skipif(
    not FUNCTION.exists() and sys.version_info[:2] != (3, 13),
    reason="no sam build output: `make build-native` needs Python 3.13, which this machine lacks",
)


def test_given_the_built_artifact_when_invoked_with_every_event_then_each_answers_as_expected(
    stack: LocalStack,
) -> None:
    assert FUNCTION.exists(), "run `make build-native` first"
    assert LAYER.exists(), "run `make build-native` first"
    # A table of its own, so that no answer is a replay of the same event sent in-process.
    table = f"artifact-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    env = {
        **os.environ,
        **stack.env,
        "IDEMPOTENCY_TABLE": table,
        "PYTHONPATH": os.pathsep.join([str(FUNCTION), str(LAYER), str(REPO_ROOT / "local")]),
    }
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("invoke_built.py")), *map(str, EVENTS)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = [
        json.loads(line.removeprefix(MARK)) for line in completed.stdout.splitlines() if line.startswith(MARK)
    ]
    origin, answers = lines[0], lines[1:]
    assert origin["editgate"].startswith(str(LAYER)), "editgate must come from the built layer"
    assert origin["app"].startswith(str(FUNCTION))
    assert len(answers) == len(EVENTS)
    for answer in answers:
        name = str(Path(answer["event"]).relative_to(REPO_ROOT / "events"))
        assert answer["statusCode"] == EXPECTED[name][0], (name, answer["body"][:500])
        metadata = json.loads(answer["body"]).get("metadata")
        if metadata:
            assert metadata["replayed"] is False, name


def test_given_the_built_layer_then_it_holds_no_dev_only_code() -> None:
    assert LAYER.exists(), "run `make build-native` first"
    present = {p.name for p in LAYER.iterdir()}
    assert "editgate" in present
    for dev_only in ("editgate_local", "moto", "openai", "pytest", "tests", "werkzeug", "flask"):
        assert dev_only not in present, dev_only


PRODUCTION_LAYER = REPO_ROOT / ".aws-sam" / "build" / "EditgateLayer" / "python"


@pytest.mark.skipif(
    not PRODUCTION_LAYER.exists(),
    reason="no production build here (`make build` makes it; it needs Python 3.13)",
)
def test_given_the_production_build_then_its_compiled_dependencies_are_for_arm64() -> None:
    binaries = [p.name for p in (PRODUCTION_LAYER / "PIL").glob("_imaging*.so")]
    assert binaries
    assert all("aarch64" in name for name in binaries), binaries
