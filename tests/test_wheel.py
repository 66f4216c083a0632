"""The board install: ``make wheel``, then a fresh venv with ``ecg_clip_ja-*.whl[edge]`` from the package
index (no torch, no scipy, no wfdb) classifies a real WFDB record and an MFER file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
    return proc


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_wheel_with_edge_extra_classifies_wfdb_and_mfer(tmp_path, shared_data):
    wfdb = pytest.importorskip("wfdb")
    from cart_writers import write_mfer

    _run(["make", "wheel"], REPO)
    (wheel,) = sorted((REPO / "dist").glob("ecg_clip_ja-*.whl"))
    venv = tmp_path / "board"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", f"{wheel}[edge]"], tmp_path)
    installed = {
        line.split("==")[0].lower()
        for line in _run([str(py), "-m", "pip", "freeze"], tmp_path).stdout.split()
    }
    assert {"onnxruntime", "ecgdatakit", "numpy", "ecg-clip-ja"} <= installed
    assert not installed & {"torch", "scipy", "wfdb", "pandas"}, installed

    record = shared_data / "ptbxl" / "records500" / "00000" / "00001_hr"
    rec = wfdb.rdrecord(str(record))
    mfer = write_mfer(tmp_path / "00001_hr.mwf", rec.p_signal.T, rec.fs, list(rec.sig_name))
    edge = venv / "bin" / "ecg-edge"
    outputs = {}
    for name, path in [("wfdb", f"{record}.hea"), ("mfer", str(mfer))]:
        # run outside the repository, so the installed package (not the source tree) is what runs
        proc = _run([str(edge), "classify", path, "--json"], tmp_path)
        lines = [json.loads(s) for s in proc.stdout.splitlines() if s.strip()]
        assert lines and all(len(line["top"]) == 5 and line["quality"]["ok"] for line in lines), proc.stdout
        outputs[name] = lines
    # the same ECG through both formats (MFER at 2.5 uV per count) names the same labels first
    assert [line["top"][0]["id"] for line in outputs["wfdb"]] == [
        line["top"][0]["id"] for line in outputs["mfer"]
    ]
    proc = _run([str(py), "-c", "import edge.cli.main, edge.readers.records, sys; print(sorted(m for m in sys.modules "
                 "if m.split('.')[0] in ('torch', 'scipy', 'wfdb')))"], tmp_path)  # fmt: skip
    assert proc.stdout.strip() == "[]"
    # the shared vocabulary ships in the wheel (package data): a hospital word finds its label on the board
    proc = _run([str(edge), "labels", "PQ延長"], tmp_path)
    assert "LPR" in proc.stdout
    # ecg-train is installed too (one package) but says in one line what to install, no traceback (issue 24)
    train = subprocess.run([str(venv / "bin" / "ecg-train"), "--data", "ptbxl=x", "--out", "r"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert train.returncode == 1 and "Traceback" not in train.stderr and train.stderr.count("\n") == 1
    assert "pip install 'ecg-clip-ja[train]'" in train.stderr
