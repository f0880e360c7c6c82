"""docs/architecture.md stays true: every module and AWS resource it names exists."""

from __future__ import annotations

import importlib.util
import re

from editgate_local.stack import REPO_ROOT

ARCHITECTURE = (REPO_ROOT / "docs" / "architecture.md").read_text()
TEMPLATE = (REPO_ROOT / "template.yaml").read_text()
RESOURCES = ("Api", "AuthorizerFunction", "EditApiFunction", "BatchFunction", "ApiKeysTable",
             "IdempotencyTable", "BatchTable", "ResultsBucket", "BatchBucket", "BatchQueue",
             "BatchDeadLetterQueue")  # fmt: skip


def test_given_the_architecture_doc_then_every_editgate_module_it_names_exists() -> None:
    named = set(re.findall(r"editgate\.(\w+)", ARCHITECTURE))
    assert len(named) >= 15
    missing = [name for name in sorted(named) if importlib.util.find_spec(f"editgate.{name}") is None]
    assert missing == []


def test_given_the_architecture_doc_then_every_handler_file_it_names_exists() -> None:
    files = set(re.findall(r"functions/\w+/app\.py", ARCHITECTURE))
    assert len(files) == 3
    assert [name for name in sorted(files) if not (REPO_ROOT / name).exists()] == []


def test_given_the_architecture_doc_then_the_aws_resources_it_draws_are_in_the_template() -> None:
    for resource in RESOURCES:
        assert re.search(rf"\b{resource}\b", ARCHITECTURE), resource
        assert re.search(rf"^  {resource}:$", TEMPLATE, flags=re.MULTILINE), resource
