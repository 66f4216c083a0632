"""The 12-lead report (``ecg-edge classify FILE --report``): text, page size and layout of the PDF, the PNG,
one-line errors, and matplotlib kept off the device path."""

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

from edge.cli.main import main as edge_main
from edge.views.report import DISCLAIMER, LAYOUT, PAGE_MM, measurement_text

REPO = Path(__file__).resolve().parents[1]
RECORD_00180 = Path("ptbxl") / "records500" / "00000" / "00180_hr"
MM_TO_PT = 72 / 25.4


def _classify(*args: str) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = edge_main(["classify", *args])
    return code, buf.getvalue()


def _pdf_text(path: Path) -> tuple[str, tuple[float, float], int]:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(str(path))
    page = reader.pages[0]
    return page.extract_text(), (float(page.mediabox.width), float(page.mediabox.height)), len(reader.pages)


@pytest.mark.slow
def test_pdf_report_of_ptbxl_00180_has_leads_measurements_and_japanese_findings(shared_data, tmp_path):
    record = shared_data / RECORD_00180
    out = tmp_path / "00180.pdf"
    code, stdout = _classify(str(record), "--report", str(out))
    assert code == 0 and out.stat().st_size > 10_000
    code, stdout = _classify(str(record), "--json")
    line = json.loads(stdout.splitlines()[0])
    text, (width, height), pages = _pdf_text(out)
    assert pages == 1
    assert abs(width - PAGE_MM[0] * MM_TO_PT) < 1 and abs(height - PAGE_MM[1] * MM_TO_PT) < 1  # A4 landscape
    words = text.split()
    for lead in [name for row in LAYOUT for name in row]:
        assert lead in words, f"lead {lead} missing from the report"
    m = line["measurements"]
    assert m and m["hr_bpm"] is not None
    assert f"心拍数 {m['hr_bpm']:.0f} bpm" in text
    for key in ("qrs_ms", "qt_ms", "qtc_ms"):
        if m[key] is not None:
            assert f"{m[key]:.0f} ms" in text
    assert measurement_text(m).split("   ")[0] in text
    names = {t["id"]: t["ja"] for t in line["top"]}
    from edge.runtime.engine import Classifier

    with Classifier.from_bundle() as clf:
        names |= {lb["id"]: lb["ja"] for lb in clf.labels}
    assert line["findings"], "00180 gives no finding: the test would check nothing"
    for fid in line["findings"]:
        assert names[fid] in text
    assert line["bundle"] in text and DISCLAIMER in text.replace("\n", "")
    assert "00180_hr" in text and "25 mm/s" in text and "10 mm/mV" in text


def test_png_report_of_a_synthetic_ecg(tmp_path):
    from firmware_bridge.synthetic import synthesize

    path = tmp_path / "ecg.npy"
    np.save(path, synthesize(rhythm="lbbb", fs=500, seed=7, duration_s=10.0))
    out = tmp_path / "report.png"
    code, _ = _classify(str(path), "--fs", "500", "--report", str(out))
    assert code == 0
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.shape[1] > img.shape[0] and abs(img.shape[1] / img.shape[0] - PAGE_MM[0] / PAGE_MM[1]) < 0.01
    ink = (img[..., :3].max(axis=2) < 0.3).mean()  # dark pixels: the traces and text
    assert 0.005 < ink < 0.2


def test_report_draws_at_true_paper_scale(tmp_path):
    """A 5 Hz sine of 1 mV peak to peak: 10 mm high and one period per 5 mm (25 mm/s) on the page."""
    import matplotlib.image as mpimg

    from edge.runtime.engine import Result
    from edge.views import report

    fs = 500
    wave = (0.5 * np.sin(2 * np.pi * 5.0 * np.arange(10 * fs) / fs)).astype(np.float32)
    result = Result(quality={"ok": True, "missing_samples": 0}, bundle="test@0")
    out = report.write_report(tmp_path / "scale.png", np.tile(wave, (12, 1)), fs, None, result, source="sine")
    img = mpimg.imread(out)[..., :3]
    px_per_mm = img.shape[1] / PAGE_MM[0]
    # The rhythm strip (lead II, last row), away from its label and calibration pulse.
    base_mm = report._GRID_Y0 + 0.45 * report._ROW_MM
    rows = slice(int((PAGE_MM[1] - base_mm - 12) * px_per_mm), int((PAGE_MM[1] - base_mm + 12) * px_per_mm))
    cols = slice(int((report._TRACE_X0 + 10) * px_per_mm), int((report._TRACE_X0 + 240) * px_per_mm))
    dark = img[rows, cols].max(axis=2) < 0.3  # the trace is black, the grid pink
    ys = np.flatnonzero(dark.any(axis=1))
    height_mm = (ys[-1] - ys[0] + 1) / px_per_mm
    assert abs(height_mm - 10.0) < 0.5, height_mm  # 10 mm/mV (plus the line's width)
    top = np.array([np.flatnonzero(c)[0] if c.any() else np.nan for c in dark.T], dtype=float)
    top = np.nan_to_num(top - np.nanmean(top))
    spectrum = np.abs(np.fft.rfft(top * np.hanning(top.size)))
    cycles_per_px = np.argmax(spectrum[1:]) + 1
    period_mm = top.size / cycles_per_px / px_per_mm
    assert abs(period_mm - 5.0) < 0.15, period_mm  # 0.2 s at 25 mm/s


def test_report_errors_are_one_line(tmp_path, capsys):
    code, _ = _classify("a.npy", "--report", str(tmp_path / "r.txt"))
    assert code == 1 and "the report is a .pdf or a .png file" in capsys.readouterr().err
    code, _ = _classify("a.npy", "b.npy", "--report", str(tmp_path / "r.pdf"))
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "one FILE" in err


def test_classify_without_report_never_imports_matplotlib(tmp_path):
    from firmware_bridge.synthetic import synthesize

    path = tmp_path / "ecg.npy"
    np.save(path, synthesize(rhythm="sinus", fs=500, seed=1, duration_s=10.0))
    code = (
        "import sys, io, contextlib\n"
        "import edge.views.report, edge.views.webview, edge.views.terminal\n"
        "from edge.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['classify', {str(path)!r}, '--fs', '500']) == 0\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported on the device path'\n"
        "print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
