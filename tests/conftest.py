"""Shared test fixtures.

Real ECG data is never part of the repository: tests that need it use the one ``shared_data`` fixture,
which finds ``../shared/data`` beside the checkout (as in CI) or the folder named by ``ECG_DATA_DIR``,
and skips the test when neither exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("ECG_DATA_DIR")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real ECG data (``ptbxl/``, ``cinc2021/``, ``ptbxl_processed/``, ``wfdb_samples/``)."""
    root = _shared_data_dir()
    if not (root / "ptbxl" / "ptbxl_database.csv").is_file():
        pytest.skip(f"real ECG data not found at {root} (set ECG_DATA_DIR)")
    return root
