"""The signal contract (edge.dsp.signal): known signals through the one preprocessing function."""

from __future__ import annotations

import numpy as np
import pytest

from edge.dsp.signal import (
    EIGHT_CHANNEL_LEADS,
    LEADS,
    SignalConfig,
    SignalError,
    bandpass,
    canonical_lead_name,
    iter_windows,
    preprocess,
    resample,
    to_twelve_leads,
)


def _sine(freq: float, fs: float, seconds: float = 10.0, amp: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _amplitude_at(x: np.ndarray, fs: float, freq: float) -> float:
    spec = np.abs(np.fft.rfft(x)) * 2 / x.size
    freqs = np.fft.rfftfreq(x.size, 1 / fs)
    return float(spec[np.argmin(np.abs(freqs - freq))])


@pytest.mark.parametrize("freq", [5.0, 10.0, 20.0])
def test_bandpass_keeps_in_band_sine(freq):
    x = _sine(freq, 100.0)[None]
    y, fs = bandpass(x, 100.0, (0.5, 40.0))
    assert fs == 100.0
    mid = slice(200, 800)  # away from the edges
    assert _amplitude_at(y[0, mid], fs, freq) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("freq", [0.05, 0.1, 48.0])
def test_bandpass_removes_out_of_band_sine(freq):
    x = _sine(freq, 100.0, amp=1.0)[None]
    y, _ = bandpass(x, 100.0, (0.5, 40.0))
    assert np.abs(y[0, 200:800]).max() < 0.25


def test_resample_preserves_sine_and_length():
    x = _sine(7.0, 500.0)[None]
    y, fs = resample(x, 500.0, 100.0)
    assert fs == 100.0 and y.shape == (1, 1000)
    assert _amplitude_at(y[0], 100.0, 7.0) == pytest.approx(1.0, abs=0.02)
    y2, _ = resample(_sine(7.0, 257.0)[None], 257.0, 100.0)  # odd rate
    assert abs(y2.shape[1] - 1000) <= 1


def test_derived_leads_follow_their_formulas():
    rng = np.random.default_rng(0)
    lead_i, lead_ii = rng.normal(size=(2, 500)).astype(np.float32)
    chest = rng.normal(size=(6, 500)).astype(np.float32)
    x8 = np.vstack([lead_i, lead_ii, chest])
    x12 = to_twelve_leads(x8)
    np.testing.assert_allclose(x12[2], lead_ii - lead_i, atol=1e-6)
    np.testing.assert_allclose(x12[3], -(lead_i + lead_ii) / 2, atol=1e-6)
    np.testing.assert_allclose(x12[4], lead_i - lead_ii / 2, atol=1e-6)
    np.testing.assert_allclose(x12[5], lead_ii - lead_i / 2, atol=1e-6)
    np.testing.assert_array_equal(x12[6:], chest)
    assert x12.dtype == np.float32


def test_leads_by_name_in_any_case_and_order():
    rng = np.random.default_rng(1)
    x12 = to_twelve_leads(rng.normal(size=(8, 100)).astype(np.float32))
    names = [n.upper() for n in LEADS][::-1]  # reversed order, upper case (AVR, AVL, ...)
    out = to_twelve_leads(x12[::-1], names)
    np.testing.assert_array_equal(out, x12)
    lower = to_twelve_leads(x12, [n.lower() for n in LEADS])
    np.testing.assert_array_equal(lower, x12)
    # Limb leads II and III only: I is derived by Einthoven's law.
    sub = to_twelve_leads(np.vstack([x12[1], x12[2], x12[6:]]), ["II", "III", *EIGHT_CHANNEL_LEADS[2:]])
    np.testing.assert_allclose(sub, x12, atol=1e-5)
    assert canonical_lead_name(" avf ") == "aVF"


@pytest.mark.parametrize(
    ("x", "leads", "match"),
    [
        (np.zeros((5, 100)), None, "5 channels"),
        (np.zeros(100), None, "2-D"),
        (np.zeros((8, 100)), ["I", "II", "V1", "V2", "V3", "V4", "V5", "X"], "missing chest"),
        (np.zeros((7, 100)), ["I", "V1", "V2", "V3", "V4", "V5", "V6"], "two of the limb leads"),
    ],
)
def test_bad_shapes_and_missing_leads_raise(x, leads, match):
    with pytest.raises(SignalError, match=match):
        to_twelve_leads(x, leads)


def test_preprocess_rejects_nan_and_short_windows():
    x = np.zeros((12, 5000), dtype=np.float32)
    x[3, 10] = np.nan
    with pytest.raises(SignalError, match="NaN"):
        preprocess(x, 500.0)
    with pytest.raises(SignalError, match="needs 10 s"):
        preprocess(np.zeros((12, 2500), dtype=np.float32), 500.0)


def test_preprocess_output_contract():
    rng = np.random.default_rng(2)
    cfg = SignalConfig()
    y = preprocess(rng.normal(size=(12, 5000)).astype(np.float32) * 3 + 7, 500.0, cfg)
    assert y.shape == (12, 1000) and y.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=1), 1, atol=0.01)
    # Gain does not matter with per-lead z-scores: x and 4x give the same input.
    x = rng.normal(size=(12, 5000)).astype(np.float32)
    np.testing.assert_allclose(preprocess(x, 500.0), preprocess(4 * x, 500.0), rtol=5e-3, atol=1e-3)
    # A flat (lead-off) lead stays near zero instead of blowing up.
    x[4] = 0.0
    assert np.abs(preprocess(x, 500.0)[4]).max() < 1e-3


def test_config_round_trip_and_validation():
    cfg = SignalConfig(fs=250.0, window_s=5.0, band_hz=(0.67, 100.0), normalization="window_zscore")
    assert SignalConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.n_samples == 1250
    with pytest.raises(SignalError):
        SignalConfig(band_hz=(0.5, 60.0))  # above Nyquist of 100 Hz
    with pytest.raises(SignalError):
        SignalConfig(normalization="minmax")


def test_iter_windows_covers_the_record():
    assert list(iter_windows(5000, 500, 10)) == [(0, 5000)]
    assert list(iter_windows(4000, 500, 10)) == []
    assert list(iter_windows(12000, 500, 10)) == [(0, 5000), (5000, 10000), (7000, 12000)]
    assert list(iter_windows(7000, 500, 10, hop_s=2)) == [(0, 5000), (1000, 6000), (2000, 7000)]


@pytest.mark.slow
def test_500hz_and_100hz_copies_of_a_ptbxl_record_agree(shared_data):
    wfdb = pytest.importorskip("wfdb")
    base = shared_data / "ptbxl"
    hr = wfdb.rdrecord(str(base / "records500/00000/00001_hr"))
    lr = wfdb.rdrecord(str(base / "records100/00000/00001_lr"))
    a = preprocess(hr.p_signal.T, hr.fs, leads=hr.sig_name)
    b = preprocess(lr.p_signal.T, lr.fs, leads=lr.sig_name)
    inner = slice(50, 950)  # filter edges differ slightly
    corr = [np.corrcoef(a[i, inner], b[i, inner])[0, 1] for i in range(12)]
    assert min(corr) > 0.97, corr
    assert np.abs(a[:, inner] - b[:, inner]).mean() < 0.15


@pytest.mark.parametrize("freq", [0.3, 0.5, 1.0, 5.0, 20.0, 35.0, 40.0, 45.0])
def test_gain_equals_scipy_filtfilt_butterworth(freq):
    """The numpy band-pass applies exactly the zero-phase gain of scipy's butter + sosfiltfilt."""
    signal = pytest.importorskip("scipy.signal")
    from edge.dsp.signal import butter_zero_phase_gain

    sos = signal.butter(2, [0.5, 40.0], btype="bandpass", fs=100.0, output="sos")
    _, h = signal.sosfreqz(sos, worN=[freq], fs=100.0)
    expected = float(np.abs(h[0]) ** 2)  # forward + backward
    assert butter_zero_phase_gain(np.array([freq]), (0.5, 40.0), 2, 100.0)[0] == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.slow
def test_preprocessing_matches_scipy_reference_on_real_ecg(shared_data):
    """Same model input as resample_poly + sosfiltfilt (the scipy route) on a 500 Hz PTB-XL record."""
    signal = pytest.importorskip("scipy.signal")
    wfdb = pytest.importorskip("wfdb")
    from edge.dsp.signal import normalize

    rec = wfdb.rdrecord(str(shared_data / "ptbxl/records500/00000/00010_hr"))
    x = rec.p_signal.T.astype(np.float64)
    ours = preprocess(x, rec.fs, leads=rec.sig_name)
    y = signal.resample_poly(x, 1, 5, axis=-1)
    sos = signal.butter(2, [0.5, 40.0], btype="bandpass", fs=100.0, output="sos")
    y = signal.sosfiltfilt(sos, y, axis=-1, padlen=100)
    ref = normalize(y.astype(np.float32))
    inner = slice(50, 950)
    corr = [np.corrcoef(ours[i, inner], ref[i, inner])[0, 1] for i in range(12)]
    assert min(corr) > 0.995, corr
