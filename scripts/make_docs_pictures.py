"""The README's pictures, from synthetic ECG only (never a real record): the 12-lead report and the web view.

    python scripts/make_docs_pictures.py

1. ``docs/report-synthetic.png``: ``ecg-edge classify --report`` of a synthetic LBBB ECG
   (``firmware_bridge.synthetic``, seed 7) with the default bundle.
2. ``docs/webview*.png``: the screenshots the browser test takes (``tests/test_webview_browser.py``, a
   simulated device streaming synthetic LBBB), run here first; needs Debian's chromium (``make browser``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SHOTS = REPO / "test-output" / "webview"
WEB_PICTURES = {"connected.png": "webview.png", "connected-12-leads.png": "webview-12-leads.png",
                "disconnected.png": "webview-disconnected.png"}  # fmt: skip


def main() -> int:
    from edge.cli.main import main as edge_main
    from firmware_bridge.synthetic import synthesize

    with tempfile.TemporaryDirectory() as tmp:
        ecg = Path(tmp) / "synthetic-lbbb.npy"
        np.save(ecg, synthesize(rhythm="lbbb", fs=500, seed=7, duration_s=10.0))
        code = edge_main(
            ["classify", str(ecg), "--fs", "500", "--report", str(DOCS / "report-synthetic.png")]
        )
        if code:
            return code
    test = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_webview_browser.py"]
    if subprocess.run(test, cwd=REPO).returncode:
        print("make_docs_pictures: the browser test failed or was skipped; web view pictures not updated")
        return 1
    for shot, picture in WEB_PICTURES.items():
        shutil.copyfile(SHOTS / shot, DOCS / picture)
        print(DOCS / picture)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
