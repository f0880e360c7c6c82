"""docs/architecture.md stays true: every module and AWS resource it names exists."""

from __future__ import annotations

import re
from pathlib import Path

from editgate_local.stack import REPO_ROOT

ARCHITECTURE = (REPO_ROOT / "docs" / "architecture.md").read_text()
TEMPLATE = (REPO_ROOT / "template.yaml").read_text()
RESOURCES = ("Api", "AuthorizerFunction", "EditApiFunction", "BatchFunction", "ApiKeysTable",
             "IdempotencyTable", "BatchTable", "ResultsBucket", "BatchBucket", "BatchQueue",
             "BatchDeadLetterQueue", "FalWebhookFunction", "CollectQueue")  # fmt: skip


def test_given_the_architecture_doc_then_every_editgate_module_it_names_exists() -> None:
    named = set(re.findall(r"editgate(?:\.\w+)+", ARCHITECTURE))
    assert len(named) >= 15
    assert [name for name in sorted(named) if not exists(name)] == []


def exists(name: str) -> bool:
    """A module of this tree (not another copy on the path), or a class or function of one
    (``editgate.app.edit_service.edit_once``, ``….EditService.edit_now``)."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        base = REPO_ROOT / "layers" / "editgate" / Path(*parts[:cut])
        found = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.exists()), None)
        if found is not None:
            rest = parts[cut:]
            return not rest or re.search(rf"^(?:def|class) {rest[0]}\b", found.read_text(), re.M) is not None
    return False


def test_given_the_architecture_doc_then_every_handler_file_it_names_exists() -> None:
    files = set(re.findall(r"functions/\w+/app\.py", ARCHITECTURE))
    assert len(files) == 4
    assert [name for name in sorted(files) if not (REPO_ROOT / name).exists()] == []


def test_given_the_architecture_doc_then_the_aws_resources_it_draws_are_in_the_template() -> None:
    for resource in RESOURCES:
        assert re.search(rf"\b{resource}\b", ARCHITECTURE), resource
        assert re.search(rf"^  {resource}:$", TEMPLATE, flags=re.MULTILINE), resource
