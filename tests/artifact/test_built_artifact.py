"""The `sam build` output, not the source tree: its function imports with its layer and answers
the events in events/ (the closest thing to `sam local invoke` without a container)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from editgate_local.stack import KEYS_TABLE, REGION, REPO_ROOT, LocalStack
from tests.artifact.invoke_built import MARK
from tests.integration.test_events import AUTHORIZER_EXPECTED, EVENTS, EXPECTED, answered_as_expected

BUILD = REPO_ROOT / ".aws-sam" / "build-native"
LAYER = BUILD / "EditgateLayer" / "python"
# What the Lambda Python runtime ships besides the standard library: boto3 and its dependencies;
# plus what this venv's boto3 picks up because it is installed here (the CRT, pyOpenSSL), and the
# venv's own start-up hooks.
LAMBDA_RUNTIME_PACKAGES = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"} | {
    "awscrt", "_awscrt", "OpenSSL", "cryptography", "_cffi_backend", "_distutils_hack",
    "__editable___editgate_0_1_0_finder",
}  # fmt: skip
FUNCTIONS = {"edit_api": "EditApiFunction", "batch_edit": "BatchFunction", "authorizer": "AuthorizerFunction"}

pytestmark = pytest.mark.skipif(
    not (BUILD / "EditApiFunction").exists() and sys.version_info[:2] != (3, 13),
    reason="no sam build output: `make build-native` needs Python 3.13, which this machine lacks",
)


def invoke_built(
    function: str, events: list[Path], env: dict[str, str]
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The built function, imported with the built layer in a fresh interpreter, given each event:
    where it was imported from, and its answers."""
    code = BUILD / function
    assert code.exists(), "run `make build-native` first"
    assert LAYER.exists(), "run `make build-native` first"
    path = os.pathsep.join([str(code), str(LAYER), str(REPO_ROOT / "local")])
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("invoke_built.py")), *map(str, events)],
        env={**env, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = [
        json.loads(line.removeprefix(MARK)) for line in completed.stdout.splitlines() if line.startswith(MARK)
    ]
    assert lines[0]["editgate"].startswith(str(LAYER)), "editgate must come from the built layer"
    assert lines[0]["app"].startswith(str(code))
    assert len(lines) == len(events) + 2
    # Everything else the function imported must come from the layer (a dependency missing from
    # layers/editgate/requirements.txt would otherwise pass here and fail on Lambda).
    assert set(lines[-1]["site_packages"]) <= LAMBDA_RUNTIME_PACKAGES, lines[-1]
    return lines[0], lines[1:-1]


def fresh_idempotency_table() -> str:
    """A table of its own, so that no answer is a replay of the same event sent in-process."""
    table = f"artifact-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return table


def test_given_the_built_edit_api_when_invoked_with_every_event_then_each_answers_as_expected(
    stack: LocalStack,
) -> None:
    events = [path for path in EVENTS if path.parent.name == "edit_api"]
    env = {**os.environ, **stack.env, "IDEMPOTENCY_TABLE": fresh_idempotency_table()}
    _, answers = invoke_built(FUNCTIONS["edit_api"], events, env)
    for line in answers:
        name = str(Path(line["event"]).relative_to(REPO_ROOT / "events"))
        answer = line["answer"]
        assert answer["statusCode"] == EXPECTED[name][0], (name, answer["body"][:500])
        if not answer["body"].startswith("{"):  # the pages, whose files come from the built layer
            assert "</html>" in answer["body"], name
            continue
        metadata = json.loads(answer["body"]).get("metadata")
        if metadata:
            assert metadata["replayed"] is False, name


def test_given_the_built_batch_function_when_invoked_with_every_event_then_each_is_handled(
    stack: LocalStack, batch_event_objects: None
) -> None:
    events = [path for path in EVENTS if path.parent.name == "batch_edit"]
    env = {**os.environ, **stack.env, **stack.batch_env, "IDEMPOTENCY_TABLE": fresh_idempotency_table()}
    _, answers = invoke_built(FUNCTIONS["batch_edit"], events, env)
    for line in answers:
        answered_as_expected(line["event"], line["answer"])


def test_given_the_built_authorizer_when_invoked_with_every_event_then_it_allows_or_refuses_as_expected(
    stack: LocalStack,
) -> None:
    events = [path for path in EVENTS if path.parent.name == "authorizer"]
    _, answers = invoke_built(
        FUNCTIONS["authorizer"], events, {**os.environ, **stack.env, "API_KEYS_TABLE": KEYS_TABLE}
    )
    for line in answers:
        expected = AUTHORIZER_EXPECTED[str(Path(line["event"]).relative_to(REPO_ROOT / "events"))]
        if expected == "Unauthorized":
            assert line["error"] == "Unauthorized", line
        else:
            assert line["answer"]["policyDocument"]["Statement"][0]["Effect"] == "Allow", line


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


def test_given_the_built_artifact_when_imported_then_every_module_has_bytecode_it_need_not_check() -> None:
    # Lambda's code and layers are read-only: a module without bytecode is compiled at every cold start.
    sources = [*LAYER.rglob("*.py"), *(BUILD / "EditApiFunction").glob("*.py")]
    tag = sys.implementation.cache_tag
    missing, checked = [], []
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        if not compiled.exists():
            missing.append(source)
            continue
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        if flags != 0b01:  # PEP 552: hash-based (bit 0), source not checked (bit 1 clear)
            checked.append(compiled)
    assert len(sources) > 500
    assert missing == []
    assert checked == []
