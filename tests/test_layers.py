"""The test layers the README describes are the ones pytest applies (markers set in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import tomllib
from conftest import INTEGRATION_MODULES

ROOT = Path(__file__).resolve().parent.parent


def test_layers_name_real_modules_and_declared_markers():
    modules = {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    assert modules >= INTEGRATION_MODULES, INTEGRATION_MODULES - modules
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    declared = {m.split(":")[0] for m in ini["markers"]}
    assert {"unit", "integration", "shared_data", "slow"} <= declared
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for marker in ("unit", "integration", "shared_data", "slow"):
        assert f"-m {marker}" in readme or f'"not {marker}"' in readme, marker
