"""Reports and CSV files from hostile names and texts (issue 25, item 11): one-line errors, no formulas.

Was: a report for a file named ``bad$x^{$.npy`` raised in matplotlib's mathtext (and left a truncated PDF);
``$\\frac..$`` names were drawn as formulas; ``ecg-labels-from-reports`` raised on a field over 128 KiB, a long
mapping phrase, or an ``--out`` that is a folder; cells starting with ``=``, ``+``, ``-``, ``@`` were written
verbatim into output CSVs (formula injection when a spreadsheet opens them).
"""

from __future__ import annotations

import csv
import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from edge.cli.main import main as edge_main
from training.csv_safe import safe_cell
from training.report_labels import main as labels_main


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    from firmware_bridge.synthetic import synthesize

    return synthesize(rhythm="sinus", fs=500, seed=11, duration_s=10.0)


@pytest.mark.parametrize("name", ["bad$x^{$.npy", "$\\frac{a}{b}$.npy"])
def test_report_for_a_file_named_like_a_formula(tmp_path, ecg, capsys, name):
    pytest.importorskip("matplotlib")
    pypdf = pytest.importorskip("pypdf")
    path = tmp_path / name
    np.save(path, ecg)
    out = tmp_path / "report.pdf"
    with redirect_stdout(io.StringIO()):
        code = edge_main(["classify", str(path), "--fs", "500", "--report", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "Traceback" not in capsys.readouterr().err
    text = pypdf.PdfReader(str(out)).pages[0].extract_text()
    assert name.removesuffix(".npy").replace("\\", "") in text.replace("\\", "")  # drawn as written
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_report_that_cannot_be_written_is_one_line_and_leaves_nothing(tmp_path, ecg, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "ecg.npy"
    np.save(path, ecg)
    folder = tmp_path / "report.pdf"
    folder.mkdir()  # --report names a folder
    with redirect_stdout(io.StringIO()):
        assert edge_main(["classify", str(path), "--fs", "500", "--report", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ecg.npy", "report.pdf"]


@pytest.mark.parametrize(
    ("value", "safe"),
    [("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+cmd", "'+cmd"), ("-cmd|x", "'-cmd|x"),
     ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("-5", "-5"), ("+1.5e3", "+1.5e3"), ("SR", "SR"), (3, 3)],
)  # fmt: skip
def test_safe_cell(value, safe):
    assert safe_cell(value) == safe


def _reports(tmp_path: Path, rows: list[list[str]]) -> Path:
    path = tmp_path / "reports.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["path", "report", "patient_id"], *rows])
    return path


def test_labels_from_reports_neutralises_formulas(tmp_path):
    src = _reports(tmp_path, [['=HYPERLINK("http://evil")', "洞調律", "-5"], ["@cmd", "心房細動", "+p70"]])
    out = tmp_path / "manifest.csv"
    assert labels_main([str(src), "--out", str(out)]) == 0
    rows = list(csv.reader(out.open(encoding="utf-8")))
    cells = [c for row in rows for c in row]
    assert not any(c.startswith(("=", "+", "@")) for c in cells)
    assert rows[1][0] == "'=HYPERLINK(\"http://evil\")" and rows[1][-1] == "-5" and rows[2][0] == "'@cmd"
    assert rows[2][-1] == "'+p70"  # a passed column too


def test_labels_from_reports_errors_are_one_line(tmp_path, capsys, monkeypatch):
    import training.report_labels as report_labels

    long_report = _reports(tmp_path, [["a.npy", "洞調律。" + "心電図" * 60_000, "60"]])  # a field over 128 KiB
    assert labels_main([str(long_report), "--out", str(tmp_path / "m.csv")]) == 0  # long reports are fine
    monkeypatch.setattr(report_labels, "MAX_FIELD", 10_000)
    assert labels_main([str(long_report), "--out", str(tmp_path / "m.csv")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    monkeypatch.undo()
    small = _reports(tmp_path, [["a.npy", "洞調律", "60"]])
    folder = tmp_path / "out"
    folder.mkdir()
    assert labels_main([str(small), "--out", str(folder)]) == 1  # --out is a folder
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err
    mapping = tmp_path / "map.csv"
    mapping.write_text("phrase,label\n" + "あ" * 200_000 + ",SR\n", encoding="utf-8")
    assert labels_main([str(small), "--out", str(tmp_path / "m.csv"), "--mapping", str(mapping)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "longer than" in err and "Traceback" not in err


def test_per_label_table_of_ecg_eval_neutralises_formulas(tmp_path):
    from training.evaluate import write_per_label_csv

    path = tmp_path / "per_label.csv"
    write_per_label_csv({"per_label": [{"id": "X", "ja": "=1+1", "auroc": -0.5}]}, path)
    rows = list(csv.reader(path.open(encoding="utf-8-sig")))
    assert rows[1] == ["X", "'=1+1", "-0.5"]
