"""Window signal quality (edge.dsp.quality): missing samples, lead-off, flat, saturated, implausible."""

from __future__ import annotations

import numpy as np
import pytest

from edge.dsp.quality import (
    QualityConfig,
    assess_window,
    failed_quality,
    flagged_leads,
    lead_off_names,
    usable_leads,
    usable_twelve,
)
from edge.dsp.signal import LEADS
from firmware_bridge.synthetic import synthesize

EIGHT = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    return synthesize(rhythm="sinus", fs=500, seed=1, duration_s=10.0)


def test_clean_window_is_ok(ecg):
    q = assess_window(ecg, LEADS)
    assert q == {
        "ok": True,
        "missing_samples": 0,
        "lead_off": [],
        "flat": [],
        "saturated": [],
        "implausible": [],
        "usable_leads": list(LEADS),
        "inconsistent": [],
    }


def test_missing_samples_counted(ecg):
    x = ecg.copy()
    x[:, 100:130] = np.nan
    x[3, 4000] = np.nan  # one channel only: still a missing sample
    q = assess_window(x, LEADS)
    assert not q["ok"] and q["missing_samples"] == 31
    assert q["flat"] == [] and q["saturated"] == []
    allowed = assess_window(x, LEADS, config=QualityConfig(max_missing=40))
    assert allowed["ok"]


def test_all_missing(ecg):
    q = assess_window(np.full_like(ecg, np.nan), LEADS)
    assert not q["ok"] and q["missing_samples"] == ecg.shape[1]


def test_lead_off_from_mask_array_and_names():
    x = synthesize(rhythm="sinus", fs=500, seed=2, duration_s=10.0)[[0, 1, 6, 7, 8, 9, 10, 11]]
    assert assess_window(x, EIGHT, lead_off=0b1000)["lead_off"] == ["V2"]
    masks = np.zeros(x.shape[1], np.uint16)
    masks[10:20] = 0b1
    masks[30] = 0b10000000
    q = assess_window(x, EIGHT, lead_off=masks)
    assert q["lead_off"] == ["I", "V6"] and q["ok"]  # partial leads: read from the rest
    assert q["usable_leads"] == ["II", "V1", "V2", "V3", "V4", "V5"]  # III, aVR, aVL, aVF need lead I
    assert lead_off_names(["V3"], EIGHT) == ["V3"]


def test_flat_lead(ecg):
    x = ecg.copy()
    x[7] = 0.3 + 0.001 * np.sin(np.arange(x.shape[1]))  # 0.7 µV std: a shorted electrode
    q = assess_window(x, LEADS)
    assert q["flat"] == ["V2"] and q["ok"] and "V2" not in q["usable_leads"]
    assert len(q["usable_leads"]) == 11


def test_saturated_at_rail_and_beyond_10_mv(ecg):
    x = ecg.copy()
    x[0, ::50] = 32.767  # 2 % of samples at the int16 rail of a 1 µV/LSB device
    q = assess_window(x, LEADS, rail_mv=32.767)
    assert q["saturated"] == ["I"] and q["implausible"] == [] and q["ok"]
    assert q["usable_leads"] == list(LEADS)  # I = II - III from the clean limb leads
    y = ecg.copy()
    y[6, 1000:1200] = 12.0  # beyond 10 mV for 4 % of the window
    assert assess_window(y, LEADS)["saturated"] == ["V1"]
    z = ecg.copy()
    z[2, 100] = 3.0  # a single tall spike is not saturation
    assert assess_window(z, LEADS)["ok"]


def test_implausible_amplitude(ecg):
    x = ecg.copy()
    x[9, 2000] = 9.5
    x[9, 2001] = -9.5  # 19 mV peak to peak: still plausible
    assert assess_window(x, LEADS)["ok"]
    x[9, 2002] = -11.0
    x[9, 2003] = 9.9  # 20.9 mV peak to peak, but a few samples: not saturated
    q = assess_window(x, LEADS)
    assert q["implausible"] == ["V4"] and q["saturated"] == [] and q["ok"]
    assert "V4" not in q["usable_leads"]


def test_shape_mismatch_and_failed_report(ecg):
    with pytest.raises(ValueError, match="lead names"):
        assess_window(ecg, EIGHT)
    q = failed_quality("boom", 5)
    assert q["ok"] is False and q["error"] == "boom" and q["missing_samples"] == 5


def test_fast_on_a_window(ecg):
    import time

    t0 = time.perf_counter()
    for _ in range(20):
        assess_window(ecg, LEADS)
    assert (time.perf_counter() - t0) / 20 < 0.02


def test_lead_flat_for_part_of_the_window_needs_the_rate(ecg):
    x = ecg.copy()
    x[8, 3000:] = 0.05  # V3 falls off after 6 s without a lead-off bit
    assert assess_window(x, LEADS)["flat"] == []  # over the whole window it still varies
    q = assess_window(x, LEADS, fs=500)
    assert q["flat"] == ["V3"] and q["ok"] and "V3" not in q["usable_leads"]
    assert assess_window(ecg, LEADS, fs=500)["ok"]


def test_no_usable_lead_fails_the_window(ecg):
    x = np.zeros_like(ecg)
    q = assess_window(x, LEADS, fs=500)
    assert not q["ok"] and q["usable_leads"] == [] and len(q["flat"]) == 12
    off = assess_window(ecg[[0, 1, 6, 7, 8, 9, 10, 11]], EIGHT, lead_off=0xFF)
    assert not off["ok"] and off["usable_leads"] == []


def test_usable_leads_derivation():
    assert usable_leads(EIGHT) == list(LEADS)
    assert usable_leads(EIGHT, {"II"}) == ["I", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert usable_leads(["II", "V5"]) == ["II", "V5"]
    assert usable_leads(["I", "III", "ch7"]) == ["I", "II", "III", "aVR", "aVL", "aVF"]


def test_usable_twelve_zeroes_and_derives(ecg):
    x8 = ecg[[0, 1, 6, 7, 8, 9, 10, 11]]
    q = assess_window(x8, EIGHT, lead_off=0b1000)  # V2 off
    y = usable_twelve(x8, EIGHT, q["usable_leads"], flagged_leads(q))
    assert y.shape == (12, ecg.shape[1])
    assert not y[7].any()  # V2 zeroed
    np.testing.assert_allclose(y[2], ecg[1] - ecg[0], atol=1e-5)  # III derived
    np.testing.assert_array_equal(y[9], ecg[9])
    full = ecg.copy()
    full[0] = 32.767  # lead I saturated on a 12-lead device: derived from II - III
    q = assess_window(full, LEADS, rail_mv=32.767)
    y = usable_twelve(full, LEADS, q["usable_leads"], flagged_leads(q))
    np.testing.assert_allclose(y[0], ecg[1] - ecg[2], atol=1e-5)
