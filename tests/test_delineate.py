"""edge.dsp.delineate: the wavelet delineator per beat and per lead, and the robust combination over leads."""

from __future__ import annotations

import numpy as np
import pytest

from edge.dsp.delineate import (
    DELINEATION_FS,
    combine_leads,
    delineate_beats,
    delineate_lead,
    p_waves,
    wavelet_scales,
)
from edge.dsp.signal import filter_resample
from firmware_bridge.synthetic import synthesize, true_intervals

FS = DELINEATION_FS


def test_wavelet_scales_are_slopes():
    """Each scale is the slope (per sample) of the smoothed signal: a ramp gives its slope on every scale."""
    x = np.arange(400.0)[None] * 0.01
    w = wavelet_scales(x)
    assert w.shape == (5, 1, 400)
    assert np.allclose(w[:, 0, 60:-60], 0.01, rtol=1e-6)
    step = (np.arange(400) >= 200).astype(float)[None]
    w = wavelet_scales(step)
    for s in range(5):  # a rising edge: a positive modulus maximum at the edge on every scale
        assert abs(int(np.argmax(w[s, 0])) - 200) <= 2**s
        assert w[s, 0].min() >= -1e-12


def test_combination_ignores_one_stray_lead():
    """Eight leads agree within a few samples, one lead is far off: the combination does not move."""
    leads = np.array([100.0, 101.0, 102.0, 100.5, 101.5, 99.5, 100.0, 60.0])
    on = combine_leads(leads, "qrs_on")
    assert 99.5 <= on <= 101.0  # an early onset among the leads, not the stray 60
    ends = np.array([300.0, 302.0, 301.0, 380.0])
    assert 301.0 <= combine_leads(ends, "t_end") <= 302.5  # a late end, not the stray 380
    two = np.array([100.0, 60.0])  # two leads that disagree: neither extreme
    assert combine_leads(two, "qrs_on") == pytest.approx(80.0)
    assert combine_leads(np.array([100.0, 97.0]), "qrs_on") == pytest.approx(97.0)  # two that agree: earliest
    assert combine_leads(np.array([np.nan, np.nan]), "t_end") is None
    assert combine_leads(np.array([np.nan, 42.0]), "p_on") == 42.0


def _synthetic(rhythm: str, hr: float, seed: int = 0):
    x = synthesize(rhythm=rhythm, heart_rate_bpm=hr, hrv=0.0, seed=seed, noise_mv=0.01, fs=500.0)
    y, _ = filter_resample(x[[1, 10]], 500.0, FS, (0.5, 100.0))  # II and V5, as a Holter records
    return y.astype(np.float64)


def test_two_leads_every_beat_in_order():
    """On two leads of a sinus rhythm every beat has P on < P off < QRS on < QRS off < T end, with a QRS
    and QT close to the generator's and the same boundaries beat after beat."""
    from edge.dsp.beats import detect_beats

    y = _synthetic("sinus", 70)
    beats = detect_beats(y, FS)
    per_lead, comb = delineate_beats(y, beats)
    assert len(per_lead) == 2 and len(comb) == beats.size
    inner = comb[1:-1]
    truth = true_intervals("normal", 60 / 70)
    for row in inner:
        assert row["p_present"] is True
        order = [row[k] for k in ("p_on", "p_off", "qrs_on", "qrs_off", "t_end")]
        assert all(v is not None for v in order) and order == sorted(order), row
        assert (
            abs((row["qrs_off"] - row["qrs_on"]) * 4 - truth["qrs_ms"]) <= 25
        )  # generator offset, test_measure
        assert abs((row["t_end"] - row["qrs_on"]) * 4 - truth["qt_ms"]) <= 30
    # two leads that disagree by more than the spread give their midpoint, two that agree the earliest/latest
    # (combine_leads): on the generator's Gaussian waves II and V5 sit near that spread, so QRS varies by beat
    qrs = [(r["qrs_off"] - r["qrs_on"]) * 4 for r in inner]
    assert abs(np.median(qrs) - truth["qrs_ms"]) <= 25


def test_no_p_wave_in_atrial_fibrillation():
    from edge.dsp.beats import detect_beats

    y = _synthetic("afib", 90, seed=3)
    beats = detect_beats(y, FS)
    present = p_waves(y, FS, beats)
    assert len(present) == beats.size
    assert sum(bool(p) for p in present) <= 0.25 * len(present)
    sinus = _synthetic("sinus", 70)
    present = p_waves(sinus, FS, detect_beats(sinus, FS))
    assert sum(bool(p) for p in present[1:]) >= 0.9 * (len(present) - 1)


def test_a_flat_lead_gives_nothing_not_a_guess():
    w = wavelet_scales(np.zeros((1, 500)))
    d = delineate_lead(w[:, 0], np.zeros(500), 250, 200.0)
    assert d["qrs_on"] is None and d["t_end"] is None and d["p_on"] is None
