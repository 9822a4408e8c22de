"""The package's import graph, read from the AST of ``src/`` (imports inside functions and under
``TYPE_CHECKING`` included): no circle between modules, and every import between packages
points down the pipeline (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: The packages from the bottom up; a module may import its own package and lower layers only.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"sql"}),
    frozenset({"data", "rewards"}),
    frozenset({"models"}),
    frozenset({"generation"}),
    frozenset({"evaluation"}),
    frozenset({"training"}),
    frozenset({"ask"}),
    frozenset({"cli"}),
    frozenset({"__main__"}),
)


def module_names(src: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``) for every file under ``src``."""
    found = {}
    for path in src.rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def import_graph(src: Path, root: str = "sqlgrpo") -> dict[str, set[str]]:
    """Module -> the modules of ``root`` it imports anywhere in its body.

    ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``
    (its ``__init__``); relative imports are resolved against the importing module.
    """
    modules = module_names(src)

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(owner(a.name) for a in node.names if a.name.split(".")[0] == root)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != root:
                    continue
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    targets.add(full if full in modules else owner(source))
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def one_circle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A concrete path around ``group``: start -> ... -> start, following the graph's edges."""
    members = set(group)
    start = group[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for target in sorted(graph[node] & members):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                frontier.append(target)
    raise AssertionError(f"{group} is not a circle")


def package_of(module: str) -> str:
    """The first-level package (or top-level module) a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(package: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if package in layer), None)


def test_no_import_circle_between_modules() -> None:
    graph = import_graph(SRC)
    found = [" -> ".join(one_circle(graph, group)) for group in circles(graph)]
    assert not found, "import circles:\n" + "\n".join(found)


def test_imports_between_packages_point_down() -> None:
    graph = import_graph(SRC)
    upward = []
    for module, targets in sorted(graph.items()):
        source = package_of(module)
        for target in sorted(targets):
            below = package_of(target)
            if not source or not below or source == below:
                continue  # the top-level package itself, or inside one package
            if layer_of(source) is None or layer_of(below) is None:
                upward.append(f"{module} -> {target}: package not placed in LAYERS")
            elif layer_of(below) >= layer_of(source):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that do not point down:\n" + "\n".join(upward)


def test_every_package_is_placed_in_a_layer() -> None:
    packages = {package_of(m) for m in module_names(SRC)} - {""}
    assert packages == set().union(*LAYERS)


def test_circles_are_found_and_named(tmp_path: Path) -> None:
    """The checker itself: a circle through a function-level and a TYPE_CHECKING import, and
    one through a package ``__init__`` that its own module imports back."""
    files = {
        "sqlgrpo/__init__.py": "",
        "sqlgrpo/a.py": "def f():\n    from sqlgrpo import b\n",
        "sqlgrpo/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sqlgrpo.c import X\n",
        "sqlgrpo/c.py": "from .a import f\nX = 1\n",
        "sqlgrpo/p/__init__.py": "from sqlgrpo.p.m import g\n",
        "sqlgrpo/p/m.py": "from sqlgrpo.p import h\ndef g(): ...\n",
        "sqlgrpo/d.py": "import sqlgrpo.a\nimport os\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    groups = circles(graph)
    assert sorted(groups) == [["sqlgrpo.a", "sqlgrpo.b", "sqlgrpo.c"], ["sqlgrpo.p", "sqlgrpo.p.m"]]
    assert one_circle(graph, groups[0]) in (
        ["sqlgrpo.a", "sqlgrpo.b", "sqlgrpo.c", "sqlgrpo.a"],
        ["sqlgrpo.p", "sqlgrpo.p.m", "sqlgrpo.p"],
    )
    assert graph["sqlgrpo.d"] == {"sqlgrpo.a"}


@pytest.mark.parametrize(
    "entry",
    ["from sqlgrpo.rewards import build_profile", "from sqlgrpo.cli import main", "import sqlgrpo"],
)
def test_public_entry_points_import(entry: str) -> None:
    exec(entry, {})  # noqa: S102 - fixed strings above
