"""The import graph: no cycle anywhere, and edge/'s subpackages depend on each other one way only.

Every ``import`` statement counts, function-level ones included (a cycle dodged by importing inside a
function is still a cycle). The graph is built from the source with ``ast``, so nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge", "firmware_bridge", "training", "export")
# edge's subpackages, lowest first: a module may import its own layer or a lower one, never a higher one.
EDGE_LAYERS = ("dsp", "interpret", "bundle", "runtime", "readers", "views", "cli")
TOP_LAYERS = ("firmware_bridge", "edge", "training", "export")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            mods[module_name(path)] = path
    return mods


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                hit = resolve(alias.name)
                if hit:
                    out.add(hit)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_pkg:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                hit = resolve(f"{mod}.{alias.name}") if f"{mod}.{alias.name}" in known else resolve(mod)
                if hit:
                    out.add(hit)
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = all_modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in graph}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = GREY
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            # a package's __init__ importing its own submodules is not a cycle through the package
            if colour.get(m) == GREY:
                return stack[stack.index(m):] + [m]
            if colour.get(m) == WHITE:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        colour[n] = BLACK
        return None

    for n in sorted(graph):
        if colour[n] == WHITE:
            found = visit(n)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_anywhere():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _layer(name: str, layers: tuple[str, ...], prefix: str) -> int | None:
    parts = name.split(".")
    if parts[0] != prefix.split(".")[0]:
        return None
    if prefix == "edge":
        return layers.index(parts[1]) if len(parts) > 1 and parts[1] in layers else None
    return None


def test_edge_subpackages_depend_one_way():
    bad = []
    for name, deps in import_graph().items():
        mine = _layer(name, EDGE_LAYERS, "edge")
        if mine is None:
            continue
        for dep in deps:
            theirs = _layer(dep, EDGE_LAYERS, "edge")
            if theirs is not None and theirs > mine:
                bad.append(f"{name} -> {dep}")
    assert not bad, "edge imports upwards: " + ", ".join(sorted(bad))


def test_top_level_packages_depend_one_way():
    bad = []
    for name, deps in import_graph().items():
        mine = TOP_LAYERS.index(name.split(".")[0])
        for dep in deps:
            if TOP_LAYERS.index(dep.split(".")[0]) > mine:
                bad.append(f"{name} -> {dep}")
    assert not bad, "imports upwards: " + ", ".join(sorted(bad))


def test_no_edge_folder_is_crowded():
    for folder in [p for p in (ROOT / "edge").rglob("*") if p.is_dir() and (p / "__init__.py").exists()]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 12, f"{folder.relative_to(ROOT)} holds {len(modules)} modules"
