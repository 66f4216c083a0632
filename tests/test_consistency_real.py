"""No stated finding contradicts the window's own measurements, on every real record in ../shared (contract 8.4).

Every record of ptbxl (500, 10 s), cinc2021, challenge2020, wfdb_samples and qtdb (2 leads) is classified with
the default bundle, as ``ecg-edge classify`` does (long records: their first windows, see ``MAX_WINDOWS``), and
each window's findings are checked against its measurements with :func:`edge.interpret.criteria_check
.contradictions`. A unit test shows the checker catches planted contradictions.
"""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest

from edge.interpret.criteria_check import contradictions

MAX_WINDOWS = 2  # windows per long record (qtdb: 15 min, MIT-BIH 100: 30 min, Challenge up to 58 s)


def test_the_checker_catches_planted_contradictions():
    m = {"hr_bpm": 72.0, "pr_ms": None, "qrs_ms": 52.0, "axis_deg": -96.0, "p_present": True, "qtc_ms": 410.0}
    found = dict(contradictions(["SR", "1AVB", "CRBBB", "LAD", "LAFB", "WPW", "NORM", "AFLT"], m))
    assert found["1AVB"] == "pr_ms not measured"
    assert found["CRBBB"].startswith("qrs_ms 52 outside") and found["LAD"].startswith("axis_deg -96 outside")
    assert "LAFB" in found and "WPW" in found and "NORM" in found
    assert "SR" not in found and "AFLT" not in found  # flutter: P wave but no PR measured
    assert dict(contradictions(["AFLT"], {**m, "pr_ms": 190.0}))["AFLT"] == "P wave and PR measured"
    assert dict(contradictions(["STACH", "LAE"], {"hr_bpm": 80.0, "p_present": False})) == {
        "STACH": "no P wave measured",
        "LAE": "no P wave measured",
    }
    assert contradictions(["SR", "NORM", "CLBBB"], {"hr_bpm": 70.0, "p_present": True, "qrs_ms": 150.0}) == [
        ("NORM", "qrs_ms 150 outside None..120")
    ]
    assert contradictions(["LVOLT", "LNGQT"], {"limb_qrs_max_mv": 0.4, "qtc_ms": 480.0}) == []


def _records(root: Path) -> list[tuple[str, Path]]:
    out = [("ptbxl", p.with_suffix("")) for p in sorted((root / "ptbxl" / "records500").rglob("*_hr.hea"))]
    for source in ("cinc2021", "challenge2020", "wfdb_samples", "qtdb"):
        out += [(source, p.with_suffix("")) for p in sorted((root / source).glob("*.hea"))]
    return out


@pytest.fixture(scope="module")
def classified(shared_data):
    """``[(source, record, window_start, findings, measurements, (rhythm JSON, withheld))]`` for every window read (a
    window skipped for its quality, e.g. a QT Database record whose two leads are not standard leads, has no
    findings: ``None``)."""
    from edge.readers.records import read_recording
    from edge.runtime.engine import Classifier

    rows = []
    with Classifier.from_bundle() as clf:
        for source, path in _records(shared_data):
            rec = read_recording(path)
            x = np.asarray(rec.x_mv)
            n = int(round(clf.signal.window_s * rec.fs))
            for r in clf.record_windows(x[:, : n * MAX_WINDOWS], rec.fs, rec.leads):
                stated = None if r.skipped else list(r.findings) + list(r.zero_shot_findings)
                rhythm = None if r.rhythm is None else r.rhythm.to_json()
                rows.append((source, path.name, r.window_start_sample, stated, r.measurements, (rhythm, r.withheld)))
    return rows


@pytest.mark.slow
@pytest.mark.shared_data
def test_every_record_in_shared_was_read(classified, shared_data):
    by_source: dict[str, set[str]] = {}
    for source, name, *_ in classified:
        by_source.setdefault(source, set()).add(name)
    expected = {}
    for source, path in _records(shared_data):
        expected.setdefault(source, set()).add(path.name)
    assert {s: len(v) for s, v in by_source.items()} == {s: len(v) for s, v in expected.items()}
    assert len(expected["ptbxl"]) == 500 and len(expected["qtdb"]) >= 100
    read = {name for source, name, _, stated, *_ in classified if stated is not None}
    assert len(read) >= 500 + 30 + 40  # every 12-lead record; the 2-lead records with standard lead names


@pytest.mark.slow
@pytest.mark.shared_data
def test_no_stated_finding_contradicts_the_windows_measurements(classified):
    bad = [
        f"{source}:{name}@{start} {lid}: {why}"
        for source, name, start, stated, m, _ in classified
        if stated is not None
        for lid, why in contradictions(stated, m)
    ]
    assert not bad, f"{len(bad)} contradictions in {len(classified)} windows:\n" + "\n".join(bad[:40])


@pytest.mark.slow
@pytest.mark.shared_data
def test_every_window_with_enough_beats_states_one_rhythm(classified):
    """Contract 5 v3 / 8.1: every window read with enough beats has exactly one rhythm statement, stated first in
    its findings (or "undetermined" with its reason), never withheld; its modifiers are stated too (a parent such
    as 2AVB through its stated child MOBITZ2: no parent beside its child)."""
    from edge.interpret.catalogue import load_catalogue
    from edge.interpret.rhythm import MIN_BEATS, PRIMARY_RHYTHMS, UNDETERMINED

    parents = {lb.id: set(lb.parents) for lb in load_catalogue().labels}

    bad, n = [], 0
    for source, name, start, stated, m, (rhythm, withheld) in classified:
        if stated is None or len((m or {}).get("beats") or []) < MIN_BEATS:
            continue
        n += 1
        where = f"{source}:{name}@{start}"
        primary = [x for x in stated if x in PRIMARY_RHYTHMS]
        if rhythm is None:
            bad.append(f"{where}: no rhythm")
        elif rhythm["statement"] == UNDETERMINED:
            if primary or not rhythm["reason"]:
                bad.append(f"{where}: undetermined ({rhythm['reason']}) beside {primary}")
        elif primary != [rhythm["statement"]] or stated[0] != rhythm["statement"]:
            bad.append(f"{where}: {rhythm['statement']} not stated first: {stated} withheld {withheld}")
        elif not set(rhythm["modifiers"]) <= set(stated).union(*(parents.get(x, set()) for x in stated)):
            bad.append(f"{where}: modifiers {rhythm['modifiers']} not all in {stated}")
    assert n >= 600
    assert not bad, f"{len(bad)} of {n} windows:\n" + "\n".join(bad[:40])


def _ptbxl_codes(root: Path) -> dict[str, set[str]]:
    out = {}
    with (root / "ptbxl" / "ptbxl_database.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[Path(row["filename_hr"]).name] = set(ast.literal_eval(row["scp_codes"]))
    return out


ISCHEMIA = {"STE", "STD", "INVT", "STTC", "NSSTT", "NST", "TAB", "ISCH", "QWAVE"}


@pytest.mark.slow
@pytest.mark.shared_data
def test_injury_and_infarction_records_are_never_normal(classified, shared_data):
    """PTB-XL records labelled with injury (INJ*) or ST elevation, and PTB s0010_re (acute inferolateral
    infarction, Q waves in II and aVF a day after): never 正常心電図; an ischaemia/infarction statement."""
    from edge.interpret.catalogue import load_catalogue

    cat = load_catalogue()
    mi_family = {lb.id for lb in cat.labels if lb.category in ("infarction", "ischemia/ST-T")} | ISCHEMIA
    codes = _ptbxl_codes(shared_data)
    injured = {n for n, c in codes.items() if c & {"INJAS", "INJAL", "INJLA", "INJIN", "INJIL", "STE_"}}
    checked = 0
    for source, name, start, stated, *_ in classified:
        if stated is None:
            continue
        if (source == "ptbxl" and name in injured) or name == "s0010_re":
            checked += 1
            assert "NORM" not in stated, f"{name}@{start}: {stated}"
            assert set(stated) & mi_family, (
                f"{name}@{start}: no ischaemia or infarction statement in {stated}"
            )
        if name == "s0010_re":
            assert {"IMI", "ILMI"} & set(stated) and not {"ASMI", "AMI"} & set(stated), stated
    assert checked >= 3
