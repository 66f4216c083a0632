"""The C reference implementation (firmware_bridge/c) against the same golden vectors, via its Makefile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

C_DIR = Path(__file__).resolve().parents[1] / "firmware_bridge" / "c"


@pytest.mark.skipif(
    shutil.which("cc") is None or shutil.which("make") is None, reason="no C compiler or make"
)
def test_c_reference_implementation_passes_golden_vectors():
    proc = subprocess.run(["make", "-C", str(C_DIR), "test"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ", 0 failures" in proc.stdout
