"""The benchmarks use the packages as a user would: public names only (no ``_private`` import or attribute)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge", "firmware_bridge", "training", "export")


def _private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PACKAGES:
            out += [f"{path.name}:{node.lineno} from {node.module} import {a.name}" for a in node.names
                    if a.name.startswith("_")]
            if any(part.startswith("_") and part != "__init__" for part in (node.module or "").split(".")):
                out.append(f"{path.name}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            if not (isinstance(base, ast.Name) and base.id in ("self", "cls")):
                out.append(f"{path.name}:{node.lineno} .{node.attr}")
    return out


def test_bench_uses_public_names_only():
    found = [use for path in sorted((ROOT / "bench").glob("*.py")) for use in _private_uses(path)]
    assert not found, found
