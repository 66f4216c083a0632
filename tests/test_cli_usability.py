"""The command-line items a new user tripped over (issue 24): a 3-lead .npy without --leads, CSV columns
named "Lead I", the classify output within 80 columns, `make demo VIEW=...`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from edge.cli.main import main
from edge.dsp.signal import LEADS
from edge.views.narrow import text_width, window_block, wrap
from firmware_bridge.synthetic import synthesize

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    return synthesize(rhythm="sinus", fs=500, seed=5, duration_s=10.0)


def _classify(*args: str) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(["classify", *args])
    return code, buf.getvalue()


def test_three_lead_npy_without_leads_says_what_to_pass(tmp_path, ecg, capsys):
    path = tmp_path / "three.npy"
    np.save(path, ecg[:3])
    code, out = _classify(str(path), "--fs", "500")
    err = capsys.readouterr().err
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "3 channels without names" in err and "--leads I,II,III" in err
    code, out = _classify(str(path), "--fs", "500", "--leads", "I,II,III", "--json")
    assert code == 0 and json.loads(out.splitlines()[0])["quality"]["usable_leads"]


def _csv(path: Path, header: list[str], x: np.ndarray, fs: float = 500.0) -> Path:
    rows = np.column_stack([np.arange(x.shape[1]) / fs, x.T])
    np.savetxt(path, rows, delimiter=",", header=",".join(["time", *header]), comments="", fmt="%.6f")
    return path


def test_csv_columns_named_lead_i_are_understood(tmp_path, ecg):
    plain = _csv(tmp_path / "plain.csv", list(LEADS), ecg)
    named = _csv(tmp_path / "named.csv", [f"Lead {n}" for n in LEADS], ecg)
    units = _csv(tmp_path / "uv.csv", [f"{n} (uV)" for n in LEADS], ecg * 1000.0)
    lines = [json.loads(_classify(str(p), "--json")[1].splitlines()[0]) for p in (plain, named, units)]
    assert all(line["quality"]["ok"] for line in lines)
    assert (
        [t["id"] for t in lines[0]["top"]]
        == [t["id"] for t in lines[1]["top"]]
        == [t["id"] for t in lines[2]["top"]]
    )
    assert lines[2]["measurements"]["hr_bpm"] == lines[0]["measurements"]["hr_bpm"]  # µV scaled to mV


def test_unknown_csv_column_is_named_and_exits_non_zero(tmp_path, ecg, capsys):
    path = _csv(tmp_path / "odd.csv", ["Lead 1", *LEADS[1:]], ecg)
    code, out = _classify(str(path))
    err = capsys.readouterr().err
    assert code == 1 and "'Lead 1'" in err and "--leads" in err and err.count("\n") == 1


def test_classify_output_fits_80_columns(tmp_path, capsys):
    x = synthesize(rhythm="lbbb", fs=500, seed=2, duration_s=20.0)  # long findings with their reasons
    path = tmp_path / "lbbb.npy"
    np.save(path, x)
    code, out = _classify(str(path), "--fs", "500")
    assert code == 0
    body = out.splitlines()[1:]  # the first line names the file, as long as its path
    assert len(body) > 4 and max(text_width(line) for line in body) <= 80, out


def test_wrap_keeps_width_with_japanese_and_long_words():
    text = "完全左脚ブロック [基準 完全左脚ブロック: QRS ≥120 ms、V1でS優位、" + "x" * 150
    lines = wrap(text, 40, indent="    ")
    assert max(text_width(line) for line in lines) <= 40 and "".join(s.strip() for s in lines).replace(
        " ", ""
    ) == text.replace(" ", "")
    block = window_block(
        "0.0 s",
        "OK",
        ["洞調律 0.600"] * 3,
        ["洞調律 [リズム解析 " + "心拍数 72 bpm、" * 12 + "]"],
        "心拍数 72 bpm  " * 10,
    )
    assert max(text_width(line) for line in block) <= 80


def test_make_demo_takes_the_view_address():
    proc = subprocess.run(["make", "-n", "demo", "VIEW=127.0.0.1:9090", "NO_BROWSER=1"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    demo = [line for line in proc.stdout.splitlines() if "edge.cli.demo" in line]
    assert demo and "--view 127.0.0.1:9090" in demo[-1] and "--no-browser" in demo[-1]
    proc = subprocess.run(["make", "-n", "demo"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "--view" not in [line for line in proc.stdout.splitlines() if "edge.cli.demo" in line][-1]


def test_report_without_matplotlib_fails_before_the_table(tmp_path, ecg):
    """On a board without the report extra: one line naming the extra, exit 1, and no table printed first."""
    path = tmp_path / "ecg.npy"
    np.save(path, ecg)
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None  # import matplotlib now raises ImportError\n"
        "from edge.cli.main import main\n"
        f"sys.exit(main(['classify', {str(path)!r}, '--fs', '500', '--report', {str(tmp_path / 'r.pdf')!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout
    assert proc.stderr.count("\n") == 1 and "pip install 'ecg-clip-ja[report]'" in proc.stderr
    assert not (tmp_path / "r.pdf").exists()


def test_run_puts_the_bedside_patient_in_every_window_line(tmp_path, tiny_bundle):
    from firmware_bridge.leads import LEADS_12
    from firmware_bridge.simulator import DeviceSimulator, SimulatorConfig
    from firmware_bridge.sources import SyntheticSource
    from firmware_bridge.transport import FdTransport, open_pty

    master, port = open_pty()
    sim = DeviceSimulator(SyntheticSource("sinus", LEADS_12, 1000, seed=8), FdTransport(master, slave_path=port),
                          SimulatorConfig(speed=10, wait_start=True))  # fmt: skip
    sim.start_thread()
    out = tmp_path / "run.jsonl"
    try:
        code = main(["run", "--port", port, "--bundle", str(tiny_bundle), "--hop", "1", "--max-windows", "2",
                     "--out", str(out), "--quiet", "--patient-id", "BED-3", "--sex", "F", "--age", "81"])  # fmt: skip
    finally:
        sim.stop()
    windows = [json.loads(s) for s in out.read_text(encoding="utf-8").splitlines() if '"event"' not in s]
    assert code == 0 and len(windows) == 2
    assert all(
        w["patient"] == {"id": "BED-3", "sex": "F", "age": 81} and "acquired" not in w for w in windows
    )
