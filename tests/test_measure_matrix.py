"""Contract 7 v2: the per-lead matrix, P/T axes, P-terminal force, any set of leads, the typed record."""

from __future__ import annotations

import ast
import csv
import json

import numpy as np
import pytest

from edge.dsp.measure import MEASUREMENT_KEYS, combine_measurements, measure
from edge.dsp.measurements import LEAD_KEYS, Measurements
from edge.dsp.morphology import ptf_v1, qrs_waves
from edge.dsp.signal import LEADS
from firmware_bridge.synthetic import synthesize


@pytest.fixture(scope="module")
def sinus() -> np.ndarray:
    return synthesize(rhythm="sinus", heart_rate_bpm=70, seed=0)


def test_matrix_has_every_lead_and_key(sinus):
    m = measure(sinus, 500.0)
    assert isinstance(m, Measurements)
    assert list(m["leads"]) == list(LEADS)
    for name, row in m["leads"].items():
        assert set(LEAD_KEYS) <= set(row), name
        for k in LEAD_KEYS:
            assert row[k] is not None or k in row["null_reasons"], (name, k)
    ii, avr = m["leads"]["II"], m["leads"]["aVR"]
    assert ii["r_mv"] > 0.5 and ii["p_pos_mv"] > 0.05 and ii["t_pos_mv"] > 0.1  # upright P, R, T in II
    assert (
        avr["r_mv"] < 0.2 and min(avr["q_mv"], avr["s_mv"]) < -0.5 and avr["t_neg_mv"] < -0.05
    )  # aVR inverted
    assert all(
        row[k] <= 0 for row in m["leads"].values() for k in ("q_mv", "s_mv", "s2_mv", "p_neg_mv", "t_neg_mv")
    )
    assert 0 <= m["p_axis_deg"] <= 90 and -30 <= m["axis_deg"] <= 90 and -10 <= m["t_axis_deg"] <= 100
    assert m["p_dur_ms"] is not None and 60 <= m["p_dur_ms"] <= 160
    assert m["ptf_v1"] is not None and m["ptf_v1"] >= 0
    # the old voltages are the matrix's: SV1 = |S in V1|, RV5 = R in V5
    assert m["sv1_mv"] == pytest.approx(-m["leads"]["V1"]["s_mv"], abs=1e-3)
    assert m["rv5_mv"] == pytest.approx(m["leads"]["V5"]["r_mv"], abs=1e-3)


def test_rbbb_has_r_prime_in_v1_and_a_wide_qrs():
    m = measure(synthesize(rhythm="rbbb", heart_rate_bpm=70, seed=0), 500.0)
    v1 = m["leads"]["V1"]
    assert v1["r2_mv"] > v1["r_mv"] > 0 and v1["s_mv"] < 0  # rSR'
    assert m["qrs_ms"] >= 120 and v1["qrs_ms"] >= 120


def test_qrs_wave_rules():
    ms = 2.0
    rs = np.concatenate([np.linspace(0, 1, 10), np.linspace(1, -0.5, 15), np.linspace(-0.5, 0, 10)])
    w = qrs_waves(rs, ms)
    assert (
        w["q_mv"] == 0
        and w["r_mv"] == pytest.approx(1.0, abs=0.01)
        and w["s_mv"] == pytest.approx(-0.5, abs=0.01)
    )
    qs = -np.sin(np.linspace(0, np.pi, 40))
    w = qrs_waves(qs, ms)
    assert (
        w["q_mv"] == pytest.approx(-1.0, abs=0.01)
        and w["r_mv"] == 0
        and w["q_ms"] == pytest.approx(80, abs=2)
    )
    notch = np.concatenate(
        [np.linspace(0, 1, 10), np.linspace(1, 0.99, 2), [0.98, 0.99], np.linspace(1, 0, 10)]
    )
    assert qrs_waves(notch, ms)["r2_mv"] == 0  # a notch that stays positive is one R wave
    small = np.concatenate([[-0.01, -0.02, -0.01], np.linspace(0, 1, 10), np.linspace(1, 0, 10)])
    assert qrs_waves(small, ms)["q_mv"] == 0  # a deflection below 30 uV is not a Q wave


def test_p_terminal_force():
    biphasic = np.concatenate(
        [np.sin(np.linspace(0, np.pi, 25)) * 0.08, -np.sin(np.linspace(0, np.pi, 20)) * 0.1]
    )
    assert ptf_v1(biphasic, 2.0) == pytest.approx(0.1 * 40, rel=0.1)  # 0.1 mV x 40 ms
    assert ptf_v1(np.sin(np.linspace(0, np.pi, 40)) * 0.1, 2.0) == 0.0  # upright P: no terminal force


def test_two_leads_as_a_holter_records(sinus):
    """II and V5 alone (QT Database style): rate and intervals close to the 12-lead ones; the axes and the
    voltages of leads not recorded are null with that reason."""
    full = measure(sinus, 500.0)
    two = measure(sinus[[1, 10]], 500.0, ["MLII", "V5"])
    assert two["hr_bpm"] == pytest.approx(full["hr_bpm"], abs=0.5)
    for k in ("qrs_ms", "qt_ms", "pr_ms"):
        assert two[k] is not None and abs(two[k] - full[k]) <= 20, (k, two[k], full[k])
    assert list(two["leads"]) == ["II", "V5"]
    assert two["axis_deg"] is None and "limb" in two["null_reasons"]["axis_deg"]
    assert two["sv1_mv"] is None and "V1" in two["null_reasons"]["sv1_mv"]
    assert two["rv5_mv"] is not None


def test_measurements_record_is_json_and_typed(sinus):
    m = measure(sinus, 500.0)
    d = m.to_json()
    assert type(d) is dict and json.loads(json.dumps(d)) == d
    assert m.qrs_ms == m["qrs_ms"] == m.get("qrs_ms") and m.lead("II") == m["leads"]["II"]
    assert m.reason("qrs_ms") is None
    back = Measurements.from_json(json.loads(json.dumps(d)))
    assert back == m
    e = Measurements.empty("missing samples")
    assert all(e[k] is None for k in MEASUREMENT_KEYS) and e.reason("qt_ms") == "missing samples"


def test_combined_record_keeps_the_matrix(sinus):
    a = measure(sinus[:, :5000], 500.0)
    b = measure(synthesize(rhythm="sinus", heart_rate_bpm=70, seed=1), 500.0)
    c = combine_measurements([a, b])
    assert isinstance(c, Measurements) and set(c["leads"]) == set(LEADS)
    assert c["leads"]["II"]["r_mv"] == pytest.approx(
        np.median([a["leads"]["II"]["r_mv"], b["leads"]["II"]["r_mv"]]), abs=1e-3
    )
    assert c["paced"] == {"atrial": False, "ventricular": False, "spikes": 0}


# --- real data ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_electrode_off_and_a_stray_lead(shared_data):
    """Real 12-lead records (PTB-XL): with any one lead flat (electrode off) it is left out and PR, QRS and QT
    move by no more than 12 ms; a lead whose samples are displaced by 80 ms does not move QRS by more than 12 ms
    (the leads are combined by percentiles, so one stray lead cannot set the global boundary)."""
    wfdb = pytest.importorskip("wfdb")
    with open(shared_data / "ptbxl" / "ptbxl_database.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if ast.literal_eval(r["scp_codes"]).get("NORM", 0) >= 100][:3]
    for r in rows:
        rec = wfdb.rdrecord(str(shared_data / "ptbxl" / r["filename_hr"]))
        x, names = rec.p_signal.T.astype(np.float32), rec.sig_name
        full = measure(x, rec.fs, names)
        for lead in (6, 8, 11):  # V1, V3, V6 (a flat limb lead is derived again from the other two)
            off = x.copy()
            off[lead] = 0.0
            m = measure(off, rec.fs, names)
            assert LEADS[lead] not in m["leads"]
            for k in ("qrs_ms", "qt_ms", "pr_ms"):
                if full[k] is not None and m[k] is not None:
                    assert abs(m[k] - full[k]) <= 12, (r["ecg_id"], LEADS[lead], k, m[k], full[k])
        stray = x.copy()
        stray[9] = np.roll(x[9], int(0.08 * rec.fs))  # V4 80 ms late
        m = measure(stray, rec.fs, names)
        assert abs(m["qrs_ms"] - full["qrs_ms"]) <= 12, (r["ecg_id"], m["qrs_ms"], full["qrs_ms"])


@pytest.mark.slow
def test_ptbxl_bundle_branch_block_qrs_is_wide(shared_data):
    """PTB-XL records with complete RBBB/LBBB (scp_codes CRBBB/CLBBB, 16 in the shared subset) have a QRS
    >= 120 ms in most (the criteria need QRS >= 120 ms to state them); normal ECGs (NORM 100 %) are narrow."""
    wfdb = pytest.importorskip("wfdb")
    with open(shared_data / "ptbxl" / "ptbxl_database.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    wide, norm = [], []
    for r in rows:
        codes = ast.literal_eval(r["scp_codes"])
        is_bbb = "CRBBB" in codes or "CLBBB" in codes
        is_norm = codes.get("NORM", 0) >= 100 and len(norm) < 30
        if not (is_bbb or is_norm):
            continue
        rec = wfdb.rdrecord(str(shared_data / "ptbxl" / r["filename_hr"]))
        m = measure(rec.p_signal.T.astype(np.float32), rec.fs, rec.sig_name)
        (wide if is_bbb else norm).append(m["qrs_ms"] if m["qrs_ms"] is not None else np.nan)
    wide, norm = np.asarray(wide), np.asarray(norm)
    assert wide.size >= 10 and np.mean(wide >= 120) >= 0.75, wide
    assert norm.size >= 20 and 75 <= np.nanmedian(norm) <= 110 and np.mean(norm < 120) >= 0.9, norm


def test_classify_json_carries_the_matrix(tmp_path, capsys):
    """``ecg-edge classify --json`` (default bundle) carries contract 7 v2 in ``measurements``."""
    from edge.cli.main import main

    path = tmp_path / "rbbb.npy"
    np.save(path, synthesize(rhythm="rbbb", seed=3, duration_s=10.0))
    assert main(["classify", str(path), "--fs", "500", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    m = line["measurements"]
    assert set(MEASUREMENT_KEYS) <= set(m) and set(m["leads"]) == set(LEADS)
    assert m["leads"]["V1"]["r2_mv"] > 0 and m["qrs_ms"] >= 120
    assert set(m["paced"]) >= {"atrial", "ventricular", "spikes"} and len(m["beat_types"]) == len(m["beats"])
