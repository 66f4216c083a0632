"""Rhythm analysis (DESIGN.md contract 8.1, issue #21): one statement per window, modifiers, second opinion.

Synthetic rhythms (firmware_bridge.synthetic) through the one measurement function and analyse_rhythm, through
``ecg-edge classify`` on a saved .npy and through the stream; PTB-XL 00382 (paced) and 00449 (2:1 flutter,
regular narrow-complex tachycardia 175/min) with the real data.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.dsp.measure import measure
from edge.interpret.rhythm import UNDETERMINED, Rhythm, analyse_rhythm, rr_irregularity, second_opinion
from firmware_bridge.synthetic import synthesize

FS = 500

# synthetic rhythm -> (statement, modifiers that must be there, detail or None)
EXPECTED = {
    "sinus": ("SR", (), None),
    "sinus_brady": ("SBRAD", (), None),
    "sinus_tachy": ("STACH", (), None),
    "afib": ("AFIB", (), None),
    "flutter": ("AFLT", (), "4:1"),
    "svt": ("SVTAC", (), None),
    "junctional": ("JR", (), None),
    "vt": ("VT", (), None),
    "paced_v": ("PACE", (), "ventricular"),
    "paced_a": ("PACE", (), "atrial"),
    "paced_dual": ("PACE", (), "dual"),
    "pvc": ("SR", ("PVC",), None),
    "pac": ("SR", ("PAC",), None),
    "trigeminy": ("SR", ("PVC", "TRIGU"), None),
    "avb1": ("SR", ("1AVB",), None),
    "mobitz1": ("SR", ("2AVB", "MOBITZ1"), None),
    "mobitz2": ("SR", ("2AVB", "MOBITZ2"), None),
    "avb2to1": ("SR", ("2AVB",), "2:1"),  # the atria at 80/min: sinus rhythm with 2:1 block, ventricles at 40
}


def rhythm_of(x: np.ndarray, fs: float = FS) -> Rhythm:
    return analyse_rhythm(measure(x, fs), fs)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("seed", [1, 2, 5])
def test_synthetic_rhythms_read_right(name, seed):
    statement, mods, detail = EXPECTED[name]
    r = rhythm_of(synthesize(rhythm=name, duration_s=10, seed=seed, fs=FS))
    assert r.statement == statement, (name, seed, r.to_json())
    assert set(mods) <= set(r.modifiers), r.to_json()
    if detail:
        assert r.detail == detail, r.to_json()
    assert r.reason  # a Japanese reason, always


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_complete_av_block_is_read_as_dissociation(seed):
    r = rhythm_of(synthesize(rhythm="avb3", duration_s=10, seed=seed))
    assert "3AVB" in r.modifiers and r.statement in ("SR", "SBRAD"), r.to_json()
    assert r.counts["nonconducted_p"] >= 2


def test_no_av_block_in_sinus_rhythm_and_its_neighbours():
    for name in ("sinus", "sinus_brady", "sinus_tachy", "pvc", "pac", "rbbb", "lbbb", "afib"):
        for seed in range(4):
            r = rhythm_of(synthesize(rhythm=name, duration_s=10, seed=seed))
            assert not {"2AVB", "3AVB", "MOBITZ1", "MOBITZ2", "1AVB"} & set(r.modifiers), (
                name,
                seed,
                r.to_json(),
            )


def test_premature_beats_are_not_atrial_fibrillation():
    for seed in range(6):
        for name in ("pac", "pvc"):
            assert rhythm_of(synthesize(rhythm=name, duration_s=10, seed=seed)).statement != "AFIB"


def test_too_few_beats_is_undetermined_with_a_reason():
    flat = np.zeros((12, 10 * FS), np.float32)
    r = analyse_rhythm(measure(flat, FS), FS)
    assert r.statement == UNDETERMINED and "心拍" in r.reason
    assert r.to_json()["statement"] == UNDETERMINED and r.ids == []


def test_json_and_why():
    r = rhythm_of(synthesize(rhythm="afib", duration_s=10, seed=3))
    j = r.to_json()
    assert set(j) >= {"statement", "modifiers", "counts", "reason", "model_disagrees"}
    json.dumps(j)
    w = r.why().to_json()
    assert w["by"] == "rhythm" and w["values"]["hr_bpm"] > 0


def test_model_strongly_disagreeing_is_flagged_not_overruled():
    r = rhythm_of(synthesize(rhythm="afib", duration_s=10, seed=3))
    thr = {"SR": 0.4, "AFIB": 0.4}
    agree = second_opinion(r, {"AFIB": 0.6, "SR": 0.3}, thr)
    assert not agree.model_disagrees
    clash = second_opinion(r, {"AFIB": 0.2, "SR": 0.6}, thr)
    assert clash.model_disagrees and clash.model_reading == "SR" and clash.statement == "AFIB"
    weak = second_opinion(r, {"AFIB": 0.2, "SR": 0.42}, thr)  # within the margin: no flag
    assert not weak.model_disagrees


def test_rr_irregularity_measures():
    assert rr_irregularity(np.array([0.8, 0.8])) == {}
    regular = rr_irregularity(np.full(10, 0.8))
    assert regular["cv"] == 0 and regular["change_share"] == 0
    rng = np.random.default_rng(0)
    chaotic = rr_irregularity(0.8 * rng.lognormal(0, 0.2, 20))
    assert chaotic["nrmssd"] > 0.1 and chaotic["change_share"] > 0.5


@pytest.mark.parametrize("name", ["afib", "paced_v", "flutter", "svt"])
def test_classify_reads_the_rhythm(tmp_path, capsys, name):
    from edge.cli.main import main

    path = tmp_path / f"{name}.npy"
    np.save(path, synthesize(rhythm=name, duration_s=10, seed=3))
    assert main(["classify", str(path), "--fs", "500", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    statement = EXPECTED[name][0]
    assert line["rhythm"]["statement"] == statement
    # stated, with its why: the measurements agree with the rhythm (no P wave and no PR in AF or flutter)
    assert statement in line["findings"] and line["findings"][0] == statement, line
    assert line["why"][statement]["by"] == "rhythm"
    assert statement not in line.get("withheld", {}), line
    if statement in ("AFIB", "AFLT"):
        assert line["measurements"]["p_present"] is False and line["measurements"]["pr_ms"] is None


@pytest.mark.parametrize("name", ["afib", "paced_dual", "flutter", "svt"])
def test_stream_reads_the_rhythm(name):
    from edge.runtime.engine import Classifier
    from edge.runtime.stream import StreamClassifier

    x = synthesize(rhythm=name, duration_s=24, seed=4)
    with Classifier.from_bundle() as clf:
        stream = StreamClassifier(clf, fs=FS, n_channels=12, hop_s=5.0)
        results = []
        for i in range(0, x.shape[1], 250):  # half-second blocks, as frames arrive
            results += stream.feed(x[:, i : i + 250].T)
    assert len(results) >= 3
    statements = [r.rhythm.statement for r in results]
    assert statements.count(EXPECTED[name][0]) >= len(statements) - 1, statements


@pytest.mark.parametrize("name", ["afib", "paced_dual", "flutter", "svt"])
def test_rhythm_over_the_serial_wire(name):
    """The device simulator streams the synthetic rhythm over a pty (wire protocol, 12 channels, 1 uV counts);
    the bedside runtime's JSON lines carry the rhythm of every window."""
    import threading
    import time

    from edge.runtime.engine import Classifier
    from edge.runtime.serial import RunConfig, Runtime
    from firmware_bridge.leads import LEADS_12
    from firmware_bridge.simulator import DeviceSimulator, SimulatorConfig
    from firmware_bridge.sources import SyntheticSource
    from firmware_bridge.transport import FdTransport, open_pty

    master, path = open_pty()
    source = SyntheticSource(name, LEADS_12, 1000, fs=FS, seed=6)
    config = SimulatorConfig(speed=0, wait_start=True, frame_samples=25, duration=32.0)
    sim = DeviceSimulator(source, FdTransport(master, slave_path=path), config)
    sim.start_thread()
    lines: list[dict] = []
    with Classifier.from_bundle() as clf:
        runtime = Runtime(clf, RunConfig(port=path, hop_s=10.0), on_result=lambda r, line: lines.append(line))
        thread = threading.Thread(target=runtime.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while len(lines) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        runtime.stop()
        thread.join(10)
    sim.stop()
    windows = [ln for ln in lines if "rhythm" in ln and ln.get("quality", {}).get("ok")]
    assert len(windows) >= 3, lines
    statements = [ln["rhythm"]["statement"] for ln in windows]
    assert statements.count(EXPECTED[name][0]) >= len(statements) - 1, statements


@pytest.mark.slow
@pytest.mark.parametrize("record", ["E00008", "E00015", "Q0010", "Q0017", "Q0026", "Q0050", "Q0630"])
def test_challenge_records_with_premature_beats_are_not_af(shared_data, record):
    """Challenge 2020 records (CPSC-Extra, Georgia) stating premature atrial/ventricular beats, no AF."""
    wfdb = pytest.importorskip("wfdb")
    rec = wfdb.rdrecord(str(shared_data / "challenge2020" / record))
    n = int(10 * rec.fs)
    for start in range(0, rec.sig_len - n + 1, n):  # every 10-s window of the record
        x = rec.p_signal[start : start + n].T.astype(np.float32)
        r = analyse_rhythm(measure(x, rec.fs, rec.sig_name), rec.fs)
        assert r.statement != "AFIB", (record, start, r.to_json())


@pytest.mark.parametrize(("ecg_id", "statement"), [(382, "PACE"), (449, "AFLT")])
def test_ptbxl_paced_and_flutter_records(shared_data, ecg_id, statement):
    wfdb = pytest.importorskip("wfdb")
    rec = wfdb.rdrecord(str(shared_data / "ptbxl" / "records500" / "00000" / f"{ecg_id:05d}_hr"))
    m = measure(rec.p_signal.T.astype(np.float32), rec.fs, rec.sig_name)
    r = analyse_rhythm(m, rec.fs)
    assert r.statement == statement, r.to_json()


def test_a_statement_the_measurements_contradict_becomes_undetermined_with_its_reason():
    """The rhythm never states what its window's own measurements contradict (the decision's last guard would
    withhold it, leaving no rhythm): it says "undetermined", naming the reading and what contradicts it."""
    m = dict(measure(synthesize(rhythm="sinus", duration_s=10, seed=1, fs=FS), FS))
    assert analyse_rhythm(m, FS).statement == "SR"
    no_p = {**m, "p_present": False, "pr_ms": None}  # the beats' P waves against a window without P waves
    r = analyse_rhythm(no_p, FS)
    assert r.statement == UNDETERMINED and "洞調律" in r.reason and "矛盾" in r.reason, r.to_json()
    assert r.values["conflicting_reading"] == "SR" and "SR" not in r.ids


def test_rate_statements_read_the_measured_heart_rate():
    m = dict(measure(synthesize(rhythm="sinus", duration_s=10, seed=1, fs=FS), FS))
    for hr, statement in ((59.9, "SBRAD"), (60.1, "SR"), (100.4, "STACH"), (99.6, "SR")):
        r = analyse_rhythm({**m, "hr_bpm": hr}, FS)
        assert r.statement == statement, (hr, r.to_json())


def test_one_p_wave_verdict_for_rhythm_and_measurements():
    """measure()'s p_present/pr_ms agree with the beats' P waves the rhythm reads: sinus rhythm with P waves and
    a PR, atrial fibrillation and flutter without either; a long PR (first-degree block) measured."""
    for name, seeds in (("sinus", range(3)), ("afib", range(3)), ("flutter", range(3)), ("avb1", range(3))):
        for seed in seeds:
            m = measure(synthesize(rhythm=name, duration_s=10, seed=seed, fs=FS), FS)
            r = analyse_rhythm(m, FS)
            if name in ("afib", "flutter"):
                assert m["p_present"] is False and m["pr_ms"] is None, (name, seed, m["p_beats_share"])
            else:
                assert m["p_present"] is True and m["pr_ms"] is not None, (name, seed, m["p_beats_share"])
            if name == "avb1":
                assert m["pr_ms"] > 200 and "1AVB" in r.modifiers, (seed, m["pr_ms"], r.to_json())


def test_a_modifier_is_explained_by_its_own_rule_not_the_statements():
    """心室期外収縮 beside 洞調律 says how many premature beats were found, not 'P wave before most beats'."""
    from edge.interpret.rhythm import Rhythm

    r = Rhythm("SR", ("PVC",), {"beats": 11, "N": 10, "V": 1}, "P波あり", values={"hr_bpm": 64.0}, rule="洞調律の規則")
    assert r.why().rule == "洞調律の規則" and r.why("SR").values == {"hr_bpm": 64.0}
    pvc = r.why("PVC")
    assert pvc.by == "rhythm" and pvc.rule.startswith("心室期外収縮") and pvc.values == {"beats": 11, "V": 1}
