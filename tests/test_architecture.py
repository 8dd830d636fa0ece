"""The package's shape, read from its source: layers, import direction, no cycles.

Every import is counted, including the ones inside functions: those are exactly the
imports that hid a six-module cycle before, since nothing fails at import time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "guardian"

# Lowest first.  A module may import from its own layer or any layer before it, never after.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("guardian.errors",),
    ("guardian.util", "guardian.paths"),
    ("guardian.config", "guardian.policy", "guardian.shell"),
    ("guardian.store", "guardian.catalog", "guardian.events", "guardian.trust"),
    ("guardian.project",),
    ("guardian.capture",),
    ("guardian.lifecycle",),
    ("guardian.query",),
    ("guardian.ops",),
    ("guardian.gates",),
    ("guardian.watch",),
    ("guardian.cli", "guardian.warm", "guardian.__main__"),
)
# The version string lives in the package's __init__; anyone may read it.
UNLAYERED = {"guardian"}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[Import]:
    """Every guardian module this file imports, at any depth of the syntax tree."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("guardian"):
                    yield Import(name, _longest_known(alias.name, known), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("guardian"):
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                # `from guardian.gates.agent import hook` imports a module; `from x import f` a name.
                yield Import(name, candidate if candidate in known else _longest_known(base, known), node.lineno)


def _longest_known(dotted: str, known: set[str]) -> str:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return dotted


def layer_of(module: str) -> int | None:
    for index, members in enumerate(LAYERS):
        for member in members:
            if module == member or module.startswith(member + "."):
                return index
    return None


def package_of(module: str) -> str:
    """The layer member a module belongs to: guardian.store.repo -> guardian.store."""
    for members in LAYERS:
        for member in members:
            if module == member or module.startswith(member + "."):
                return member
    return module


def graph() -> list[Import]:
    modules = all_modules()
    known = set(modules)
    return [imp for name, path in modules.items() for imp in imports_of(name, path, known) if imp.imported != name]


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in all_modules() if m not in UNLAYERED and layer_of(m) is None]
    assert unplaced == [], f"put these modules in a layer (tests/test_architecture.py LAYERS): {unplaced}"


def test_imports_point_down_the_layers() -> None:
    wrong: set[str] = set()
    for imp in graph():
        if imp.imported in UNLAYERED:
            continue
        here, there = layer_of(imp.importer), layer_of(imp.imported)
        if here is not None and there is not None and there > here:
            wrong.add(f"{imp.importer}:{imp.line} imports {imp.imported} (layer {there} > {here})")
    assert not wrong, "imports that point up the layers:\n" + "\n".join(sorted(wrong))


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_modules() -> None:
    edges: dict[str, set[str]] = {}
    for imp in graph():
        edges.setdefault(imp.importer, set()).add(imp.imported)
    assert _find_cycle(edges) is None, f"import cycle: {' -> '.join(_find_cycle(edges) or [])}"


def test_no_import_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = {}
    for imp in graph():
        a, b = package_of(imp.importer), package_of(imp.imported)
        if a != b and b not in UNLAYERED:
            edges.setdefault(a, set()).add(b)
    assert _find_cycle(edges) is None, f"package cycle: {' -> '.join(_find_cycle(edges) or [])}"


def test_only_the_store_imports_pygit2() -> None:
    offenders = []
    for name, path in all_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n == "pygit2" or n.startswith("pygit2.") for n in names) and not name.startswith("guardian.store"):
                offenders.append(f"{name}:{node.lineno}")
    assert offenders == [], f"pygit2 imported outside guardian.store: {offenders}"


def test_package_inits_are_empty() -> None:
    """Hook fast paths import deep modules; a busy __init__ would tax every git and agent hook."""
    busy = [
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("__init__.py")
        if p.parent not in (PACKAGE, PACKAGE / "cli") and p.read_text(encoding="utf-8").strip()
    ]
    assert busy == []


@pytest.mark.parametrize("limit", [600])
def test_no_module_over_the_size_limit(limit: int) -> None:
    big = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > limit
    }
    assert big == {}, f"modules over {limit} lines: {big}"


def test_few_modules_loose_at_the_top() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= 12, loose
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert len(packages) >= 5, packages


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    """Guard the guard: an import buried in a function body is still an edge."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    if True:\n        from guardian.cli.base import cli\n    return cli\n")
    found = list(imports_of("guardian.util.m", src, {"guardian.cli.base"}))
    assert [i.imported for i in found] == ["guardian.cli.base"]
    assert layer_of("guardian.cli.base") > (layer_of("guardian.util.m") or 0)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_architecture_page_names_every_module() -> None:
    """docs/architecture.md keeps one line per module; a new module without its line fails here."""
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    unnamed = [
        str(p.relative_to(PACKAGE))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "__init__.py" and f"`{p.relative_to(PACKAGE)}`" not in page
    ]
    assert unnamed == [], f"add a line for each to docs/architecture.md's module table: {unnamed}"
