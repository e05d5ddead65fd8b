"""The import graph flows one way (DESIGN.md): models/ imports only models/, data/ never imports models/,
train/ and probe/ never import each other, entry points import only their package (and fourd.errors, which
reports user errors), and nothing is a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fourd

PACKAGE = Path(fourd.__file__).parent
CLIS = {
    "fourd.convert",
    "fourd.depth",
    "fourd.export",
    "fourd.extract",
    "fourd.plan",
    "fourd.probe.content",
    "fourd.report",
    "fourd.study",
    "fourd.world",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def fourd_imports(path: Path) -> set[str]:
    """The fourd modules a file imports anywhere in it (`from fourd.x import y` counts fourd.x.y if it is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("fourd")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fourd"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in MODULES}
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: fourd_imports(path) & set(MODULES) for name, path in MODULES.items()}


def imports_of(prefix: str) -> set[str]:
    """fourd modules imported by the modules under `prefix`, outside `prefix`."""
    return {
        i
        for name, found in GRAPH.items()
        if name == prefix or name.startswith(prefix + ".")
        for i in found
        if not (i == prefix or i.startswith(prefix + "."))
    }


def under(modules: set[str], *prefixes: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)}


def test_models_import_only_models():
    assert imports_of("fourd.models") == set()


def test_data_imports_no_model_and_no_upper_floor():
    assert imports_of("fourd.data") <= {"fourd.files", "fourd.errors"}


def test_errors_import_nothing_of_fourd():
    assert GRAPH["fourd.errors"] == set()


@pytest.mark.parametrize("package,other", [("fourd.train", "fourd.probe"), ("fourd.probe", "fourd.train")])
def test_train_and_probe_never_import_each_other(package, other):
    assert under(imports_of(package), other) == set()


@pytest.mark.parametrize(
    "main,allowed",
    [
        ("fourd.train.__main__", ("fourd.train", "fourd.conf", "fourd.errors")),
        ("fourd.probe.__main__", ("fourd.probe", "fourd.conf", "fourd.errors")),
        ("fourd.models.__main__", ("fourd.models",)),
    ],
)
def test_package_entry_points_import_only_their_package(main, allowed):
    assert GRAPH[main] - under(GRAPH[main], *allowed) == set()


def test_nothing_imports_an_entry_point():
    entry_points = CLIS | {name for name in MODULES if name.endswith(".__main__")}
    assert {name: found & entry_points for name, found in GRAPH.items() if found & entry_points} == {}


def test_the_import_graph_has_no_cycle():
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for imported in sorted(GRAPH[name] - {name}):
            if state.get(imported) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*path, name, imported]))
            if imported not in state:
                visit(imported, [*path, name])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [])
