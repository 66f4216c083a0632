"""Findings a clinician reads, on real data: the shipped bundle through ecg-eval and ecg-edge classify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]

REPO_ROOT = Path(__file__).resolve().parents[1]


def _eval(tmp_path, *args):
    from training.cli import eval_main

    out = tmp_path / "eval"
    assert eval_main(["edge/bundles/default", "--out", str(out), "--cache", str(tmp_path / "cache"), *args]) == 0
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def test_ecg_eval_reports_findings_at_the_bundle_thresholds(shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    m = _eval(tmp_path, "--data", f"ptbxl={shared_data / 'ptbxl'}", "--folds", "10")
    d = m["decisions"]
    assert d["n_ecgs"] == m["n_ecgs"] > 40
    # No contradiction reaches the clinician, though the thresholds alone let some through.
    assert d["contradictory_pairs"] == 0 and d["contradictory_pairs_before_rules"] > 0
    assert d["findings_per_ecg"] > 0 and d["truth_per_ecg"] > 0
    assert d["findings_to_truth"] == pytest.approx(d["findings_per_ecg"] / d["truth_per_ecg"])
    rows = {r["id"]: r for r in d["per_label"]}
    for r in rows.values():
        assert r["tp"] + r["fp"] + r["fn"] + r["tn"] == r["n_known"]
        if r["n_pos"]:
            assert r["sensitivity"] == pytest.approx(r["tp"] / r["n_pos"])
        if r["tp"] + r["fp"]:
            assert r["ppv"] == pytest.approx(r["tp"] / (r["tp"] + r["fp"]))
    # The known-label mask reaches the metrics: the axis is known only where PTB-XL's heart_axis states it.
    assert rows["NORM"]["n_known"] == d["n_ecgs"]
    assert 0 < rows["LAD"]["n_known"] < d["n_ecgs"] and rows["LAD"]["n_known"] == rows["RAD"]["n_known"]
    assert next(r for r in m["per_label"] if r["id"] == "LAD")["n_known"] == rows["LAD"]["n_known"]


def test_ecg_eval_on_other_hospitals_partial_labels(shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    m = _eval(tmp_path, "--data", f"challenge2020={shared_data / 'challenge2020'}", "--folds", "1-10")
    d = m["decisions"]
    assert d["contradictory_pairs"] == 0
    rows = {r["id"]: r for r in d["per_label"]}
    # 21 records state only the scored classes: NORM and MI are unknown for them (their windows drop out).
    assert rows["NORM"]["n_known"] < rows["AFIB"]["n_known"] == d["n_ecgs"]
    assert rows["MI"]["n_known"] < d["n_ecgs"]


def test_complete_lbbb_record_00180_has_no_contradictory_findings(shared_data, capsys):
    """The issue's record: PTB-XL 00180 (complete LBBB) through ecg-edge classify."""
    from edge.cli.main import main
    from edge.readers.records import read_recording
    from edge.runtime.engine import Classifier

    record = shared_data / "ptbxl" / "records500" / "00000" / "00180_hr"
    assert main(["classify", str(record), "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert lines and all(not line["skipped"] for line in lines)
    with Classifier.from_bundle() as clf:
        for line in lines:
            assert clf.rules.contradictions(line["findings"]) == []
            # No parent listed beside its child.
            assert clf.rules.most_specific(line["findings"]) == sorted(
                line["findings"], key=lambda lid: clf.rules.index[lid]
            )
        rec = read_recording(record)
        x, fs = np.asarray(rec.x_mv), rec.fs
        result = clf.classify_window(x[:, : int(10 * fs)], fs, rec.leads)
        assert result.findings == lines[0]["findings"]
        assert result.measurements["qrs_ms"] >= 120  # complete LBBB: a wide QRS, measured
        assert "CLBBB" in result.findings and not {"LVH", "VCLVH", "STE", "IVCD"} & set(result.findings)
        assert "左脚ブロック" in result.withheld["STE"]  # ST is not read in LBBB, and the view says so
        # every stated finding says how it was decided, and the model's only at or above its threshold
        for lid in result.findings:
            why, i = result.why[lid], clf.rules.index[lid]
            if why.by == "model":
                assert result.scores[i] >= clf.thresholds[i]
            elif why.by == "criteria":
                assert why.rule and why.source and why.values
            else:
                assert lid in result.rhythm.ids
        # the rules' job: whatever the thresholds let through, the findings never contradict themselves
        assert not clf.rules.contradictions(result.findings)


def test_ecg_eval_writes_each_windows_measurements(shared_data, tmp_path, monkeypatch):
    import csv

    monkeypatch.chdir(REPO_ROOT)
    table = tmp_path / "measurements.csv"
    m = _eval(tmp_path, "--data", f"ptbxl={shared_data / 'ptbxl'}", "--folds", "10", "--measurements", str(table))
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert len(rows) == m["n_ecgs"] and m["measured_windows"] == len(rows)
    hr = [float(r["hr_bpm"]) for r in rows if r["hr_bpm"]]
    assert len(hr) == len(rows) and all(25 <= h <= 250 for h in hr)
    assert all(r["record"].startswith("ptbxl:") and r["fold"] == "10" for r in rows)
