"""The layer's shape, read from its imports (``ast``, nothing imported): the layers point down
(domain ← adapters ← app ← api), the import graph has no circles, the settings are read only by
the wiring, the handlers stay thin and no module grows past what a reader can hold."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from editgate_local.stack import REPO_ROOT

PACKAGE = REPO_ROOT / "layers" / "editgate" / "editgate"
HANDLERS = sorted((REPO_ROOT / "functions").glob("*/app.py"))
# A module may import its own layer and the layers below it, never one above.
RANKS = {"domain": 0, "adapters": 1, "app": 2, "api": 3}
MAX_MODULE_LINES = 350
MAX_HANDLER_LINES = 60
MAX_HANDLER_IMPORTS = 5


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def editgate_imports(path: Path) -> Iterator[str]:
    """Every editgate module ``path`` imports, at any depth of its code (``TYPE_CHECKING`` too):
    ``from editgate.x import y`` names module ``editgate.x.y`` when there is one."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == "editgate")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "editgate":
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if module_file(submodule) else node.module


@cache
def graph() -> dict[str, frozenset[str]]:
    return {module_name(path): frozenset(editgate_imports(path)) for path in PACKAGE.rglob("*.py")}


def layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in RANKS else None


def upward_imports(modules: dict[str, frozenset[str]]) -> list[str]:
    """``importer → imported`` for every import that runs from a layer into a higher one, or from
    a layer into a module outside the layers (the wiring, the settings)."""
    found = []
    for importer, imported in modules.items():
        own = layer(importer)
        if own is None:
            continue
        for name in sorted(imported):
            theirs = layer(name)
            reaches_up = RANKS[theirs] > RANKS[own] if theirs else name != "editgate"
            if reaches_up:
                found.append(f"{importer} → {name}")
    return found


def cycles(modules: dict[str, frozenset[str]]) -> list[list[str]]:
    """The import circles (depth-first, each reported from where it was entered)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for imported in sorted(modules.get(name, ())):
            if state.get(imported) == "open":
                found.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[name] = "done"

    for name in sorted(modules):
        if name not in state:
            visit(name, [name])
    return found


def test_given_the_layer_then_no_module_imports_a_layer_above_its_own() -> None:
    assert len(graph()) >= 30
    assert upward_imports(graph()) == []


def test_given_a_module_importing_a_layer_above_then_the_rule_names_it() -> None:
    # The guard itself: each forbidden direction the issue names is caught.
    forbidden = {
        "editgate.domain.models": frozenset({"editgate.adapters.objects"}),
        "editgate.adapters.fal": frozenset({"editgate.app.timing"}),
        "editgate.app.edit_steps": frozenset({"editgate.api.openai_shapes"}),
        "editgate.domain.catalog": frozenset({"editgate.settings"}),
    }
    assert len(upward_imports(forbidden)) == 4


def test_given_the_layer_then_its_import_graph_has_no_circles() -> None:
    assert cycles(graph()) == []
    assert cycles({"a": frozenset({"b"}), "b": frozenset({"a"})}) == [["a", "b", "a"]]


def test_given_the_layer_then_every_editgate_import_is_a_module_of_this_tree() -> None:
    """An import of a module that moved away would still load from another copy on the path."""
    imported = {name for names in graph().values() for name in names}
    imported |= {name for path in HANDLERS for name in editgate_imports(path)}
    assert sorted(name for name in imported if module_file(name) is None) == []


def test_given_the_settings_then_only_the_wiring_reads_them() -> None:
    readers = {importer for importer, imported in graph().items() if "editgate.settings" in imported}
    assert readers == {"editgate.wiring"}


@pytest.mark.parametrize("handler", HANDLERS, ids=lambda path: path.parent.name)
def test_given_a_handler_then_it_is_thin(handler: Path) -> None:
    """Parse the event, one call into the application, shape the answer."""
    assert len(handler.read_text().splitlines()) <= MAX_HANDLER_LINES
    assert len(set(editgate_imports(handler))) <= MAX_HANDLER_IMPORTS


def test_given_the_layer_then_no_module_is_longer_than_a_reader_can_hold() -> None:
    lengths = {module_name(path): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES} == {}
