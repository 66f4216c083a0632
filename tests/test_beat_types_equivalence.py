"""The faster forms in edge.dsp.beat_types / atrial / pacing give the values of the plain ones they replace
(issue #23 item 5): medians, the curvature of the pacing detector, the alignment of the beats and the 3-12 Hz
RMS by Parseval. The plain forms are written out here as references."""

from __future__ import annotations

import numpy as np

from edge.dsp import atrial, beat_types, pacing
from edge.dsp.beats import QRS_BAND_HZ, detection_envelope, pick_beats
from edge.dsp.signal import filter_resample_bands
from firmware_bridge.synthetic import synthesize


def test_medians_equal_numpy():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 10, 11, 4999, 5000):
        a = rng.standard_normal(n)
        assert pacing.sample_median(a) == float(np.median(a))
        assert pacing.sorted_median(a.tolist()) == float(np.median(a))
        a[rng.integers(n)] = a[0]  # ties
        assert pacing.sample_median(a) == float(np.median(a))
    assert np.isnan(pacing.sample_median(np.array([1.0, np.nan, 2.0])))


def test_median_at_most_never_wrong():
    rng = np.random.default_rng(4)
    for _ in range(300):
        a = np.abs(rng.standard_normal(int(rng.integers(1, 60))))
        bound = float(rng.uniform(0.0, 2.0))
        if pacing.median_at_most(a, bound):
            assert float(np.median(a)) < bound
    a = np.full(11, 0.5)
    assert pacing.median_at_most(a, 0.6) and not pacing.median_at_most(a, 0.5)
    assert not pacing.median_at_most(np.array([0.1, np.nan, 0.1]), 10.0)


def _curvature_plain(x: np.ndarray, k: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(x.shape[1])
    mid = x[:, k:-k] - 0.5 * (x[:, : -2 * k] + x[:, 2 * k :])
    out[k:-k] = np.sqrt((mid * mid).sum(axis=0))
    return out


def test_curvature_and_spikes_float32_rows():
    x = synthesize(rhythm="paced_dual", duration_s=10, seed=2)  # float32
    rows = [0, 1, 6, 7, 8, 9, 10, 11]
    assert np.array_equal(pacing._curvature(x, 2, rows), _curvature_plain(x[rows], 2))
    spikes = pacing.find_spikes(x, 500, rows)
    assert spikes.size >= 18
    assert np.array_equal(spikes, pacing.find_spikes(x[rows].astype(np.float64), 500))
    x2 = x.astype(np.float64)
    x2[3, 100] = np.nan  # a lead with a gap is left out, not the window
    assert np.array_equal(pacing.find_spikes(x2, 500), pacing.find_spikes(np.delete(x2, 3, axis=0), 500))


def _align_plain(y: np.ndarray, beats: np.ndarray, half: int, lag: int) -> np.ndarray:
    """One shift at a time (the loop _align replaces)."""
    ok = (beats - half - lag >= 0) & (beats + half + lag <= y.shape[1])
    idx = beats[ok][:, None] + np.arange(-half - lag, half + lag)[None, :]
    seg = y[:, idx].transpose(1, 0, 2)
    if ok.sum() < 2:
        return beats
    tmpl = np.median(seg[:, :, lag:-lag], axis=0)
    tmpl = (tmpl - tmpl.mean()).ravel()
    best = np.zeros(seg.shape[0], dtype=np.int64)
    score = np.full(seg.shape[0], -np.inf)
    for s in range(-lag, lag + 1, 2):
        part = seg[:, :, lag + s : seg.shape[2] - lag + s].reshape(seg.shape[0], -1)
        part = part - part.mean(axis=1, keepdims=True)
        c = (part @ tmpl) / np.maximum(np.linalg.norm(part, axis=1) * np.linalg.norm(tmpl), 1e-12)
        better = c > score
        best[better], score[better] = s, c[better]
    out = beats.copy()
    out[ok] = beats[ok] + best
    return out


def _filtered_and_beats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 0.5-100 Hz leads and the detected beats at 500 Hz (as measure() has them)."""
    y, qrs = filter_resample_bands(x.astype(np.float64), 500.0, 500.0, [(0.5, 100.0), QRS_BAND_HZ])
    sv, env = detection_envelope(qrs.astype(np.float64), 500.0)
    return y.astype(np.float64), pick_beats(sv, env, 500.0)


def test_alignment_equals_shift_loop():
    rows = np.array([0, 1, 6, 7, 8, 9, 10, 11])
    for rhythm in ("sinus", "pvc", "afib", "lbbb", "bigeminy", "vt"):
        for seed in (0, 1):
            y, beats = _filtered_and_beats(synthesize(rhythm=rhythm, duration_s=10, seed=seed))
            # a jittered detector: fiducials moved by up to 10 samples
            jitter = np.random.default_rng(seed).integers(-10, 11, beats.size)
            beats = np.clip(beats + jitter, 0, y.shape[1] - 1)
            got = beat_types._align(y, beats, 30, 12, rows)
            assert np.array_equal(got, _align_plain(y[rows], beats, 30, 12)), (rhythm, seed)


def test_band_rms_by_parseval():
    rng = np.random.default_rng(5)
    for n in (5000, 4999):
        x = rng.standard_normal((4, n))
        spec = np.fft.rfft(x, axis=1)
        f = np.fft.rfftfreq(n, 1 / 500.0)
        keep = (f >= 3.0) & (f <= 12.0)
        masked = np.where(keep, spec, 0)
        plain = np.sqrt(np.mean(np.fft.irfft(masked, n=n, axis=1) ** 2, axis=1))
        got = atrial._band_rms(spec[:, keep], n)
        assert np.allclose(got, plain, rtol=1e-13, atol=0)
