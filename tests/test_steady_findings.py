"""Steady statements in a stream (contract 5 v3): stated after holding in 2 of the last 3 windows, withdrawn
after failing in 2 of 3, changed at most once per 30 s; alarms at once; window_findings keep the raw set."""

from __future__ import annotations

import numpy as np
import pytest

from edge.dsp.signal import LEADS
from edge.runtime.engine import Classifier
from edge.runtime.stream import SteadyFindings, StreamClassifier, running_median
from firmware_bridge.synthetic import synthesize

FS = 500


def test_two_of_three_vote_without_dwell():
    s = SteadyFindings(dwell=1)
    assert s.update(["SR", "NORM"]) == []  # one window is not enough
    assert s.update(["SR", "NORM"]) == ["SR", "NORM"]
    assert s.update(["SR", "AVB"]) == ["SR", "NORM"]  # AVB once, NORM failed once: nothing changes
    assert s.update(["SR", "AVB"]) == ["SR", "AVB"]  # AVB twice in 3; NORM failed twice in 3
    assert s.update(["SR"]) == ["SR", "AVB"]
    assert s.update(["SR"]) == ["SR"]


def test_alarm_is_not_delayed_and_dwell_holds_the_rest():
    s = SteadyFindings(dwell=5)
    s.update(["SR"])
    assert s.update(["SR"]) == ["SR"]
    assert s.update(["SR", "STE"]) == ["SR", "STE"]  # ST elevation: stated the first window it holds
    assert s.update(["SR", "VT"], alarms=["VT"]) == ["SR", "VT", "STE"]
    assert s.update(["AFIB"]) == ["SR", "VT", "STE"]  # the rest waits for the dwell (5 windows)
    for _ in range(3):
        shown = s.update(["AFIB"])
    assert shown == ["AFIB"]
    with pytest.raises(ValueError):
        SteadyFindings(span=3, need=4)


def test_withheld_statement_leaves_at_once():
    s = SteadyFindings(dwell=15)
    s.update(["SR", "NORM"])
    assert s.update(["SR", "NORM"]) == ["SR", "NORM"]
    assert s.update(["SR"], withheld=["NORM"]) == ["SR"]  # V2 came off: 正常心電図 cannot stand, dwell or not


def test_lead_off_withdraws_a_statement_that_needs_the_lead(clf):
    x = synthesize(rhythm="sinus", fs=FS, seed=2, duration_s=40.0)
    x[7, 20 * FS :] = 0.0  # V2 off from 20 s
    masks = np.zeros(x.shape[1], np.uint16)
    masks[20 * FS :] = 1 << 7
    stream = StreamClassifier(clf, FS, LEADS)
    out = []
    for a in range(0, x.shape[1], FS):
        out += stream.feed(x[:, a : a + FS].T, a, masks[a : a + FS])
    before = [r for r in out if not r.quality.lead_off]
    after = [r for r in out if r.quality.lead_off]
    assert any("NORM" in r.findings for r in before), [r.findings for r in before]
    # never stated without V2; withheld with its reason wherever the model proposes it (a window whose model
    # reading is another label has nothing to withhold)
    assert after and all("NORM" not in r.findings for r in after), [r.findings for r in after]
    assert sum("NORM" in r.withheld for r in after) >= len(after) // 2, [r.withheld for r in after]


def test_running_median_of_measurements():
    items = [
        {"hr_bpm": 70.0, "qrs_ms": 166.0, "p_present": True},
        {"hr_bpm": 72.0, "qrs_ms": 198.0},
        {"hr_bpm": 71.0, "qrs_ms": 168.0, "p_present": False, "pr_ms": None},
    ]
    m = running_median(items)
    assert m["qrs_ms"] == 168.0 and m["hr_bpm"] == 71.0 and m["p_present"] is False and m["pr_ms"] is None
    assert running_median([None]) is None


@pytest.fixture(scope="module")
def clf():
    with Classifier.from_bundle() as classifier:
        yield classifier


def _stream(clf, rhythm: str, seed: int, seconds: float = 120.0):
    x = synthesize(rhythm=rhythm, fs=FS, seed=seed, duration_s=seconds)
    stream = StreamClassifier(clf, FS, LEADS)
    out = []
    for a in range(0, x.shape[1], FS):
        out += stream.feed(x[:, a : a + FS].T, a)
    return out


def _changes(sets) -> int:
    sets = [frozenset(s) for s in sets]
    first = next((i for i, s in enumerate(sets) if s), len(sets))  # the first statement is not a change
    return sum(a != b for a, b in zip(sets[first:-1], sets[first + 1 :], strict=True))


@pytest.mark.parametrize("rhythm", ["lbbb", "pvc"])
def test_steady_rhythm_changes_at_most_twice_a_minute(clf, rhythm):
    results = _stream(clf, rhythm, seed=1)
    assert len(results) == 56 and all(not r.skipped for r in results)
    stated = [r.findings for r in results]
    assert _changes(stated) <= 4, stated
    assert any(r.window_findings != r.findings for r in results)  # the raw per-window set is kept apart
    line = results[-1].to_json("sim")
    assert line["window_findings"] == results[-1].window_findings and "window_measurements" in line
    assert all(set(r.why) >= set(r.findings) for r in results)  # every stated finding keeps its why
    qrs = [r.measurements["qrs_ms"] for r in results[2:]]
    raw = [r.window_measurements["qrs_ms"] for r in results[2:]]
    assert np.std(qrs) <= np.std(raw)
