"""Pacing spikes on the unfiltered samples (edge.dsp.pacing) and paced beats (contract 7 v2 ``paced``)."""

from __future__ import annotations

import numpy as np

from edge.dsp.measure import measure
from edge.dsp.pacing import MIN_FS, find_spikes, pacing_of_beats
from firmware_bridge.synthetic import synthesize


def test_spikes_found_in_paced_and_not_in_sinus():
    for seed in range(3):
        paced = synthesize(rhythm="paced_v", duration_s=10, seed=seed)
        assert 9 <= find_spikes(paced, 500).size <= 13  # 70/min: 11-12 stimuli in 10 s
        for name in ("sinus", "afib", "pvc", "lbbb"):
            assert find_spikes(synthesize(rhythm=name, duration_s=10, seed=seed), 500).size == 0, name


def test_dual_chamber_spikes_and_measurements():
    x = synthesize(rhythm="paced_dual", duration_s=10, seed=1)
    m = measure(x, 500)
    assert m["paced"]["atrial"] and m["paced"]["ventricular"] and m["paced"]["spikes"] >= 18
    assert set(m["beat_types"]) == {"P"} and len(m["beat_types"]) == len(m["beats"])


def test_higher_rate_and_below_min_fs():
    x = synthesize(rhythm="paced_a", duration_s=10, seed=2, fs=1000)
    assert measure(x, 1000)["paced"]["atrial"]
    low = synthesize(rhythm="paced_v", duration_s=10, seed=2, fs=250)
    assert low.shape[1] == 2500 and MIN_FS > 250
    paced = measure(low, 250)["paced"]
    assert paced["assessable"] is False and paced["ventricular"] is None


def test_spike_placement_against_beats():
    beats = np.array([1000, 1500, 2000])
    per_beat, paced = pacing_of_beats(np.array([985, 1400, 1485, 1900]), beats, 500)
    assert per_beat == ["v", "av", "a"] and paced["spikes"] == 4
