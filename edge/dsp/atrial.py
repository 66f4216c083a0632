"""Atrial activity of a window: f-waves, flutter waves and P waves apart from the QRS-T (contract 7 v2).

QRS-T cancellation by average beat subtraction (Slocum et al., "Diagnosis of atrial fibrillation from surface
electrocardiograms based on computer-detected atrial activity", J Electrocardiol 25, 1992; Stridh & Sornmo,
"Spatiotemporal QRST cancellation techniques for analysis of atrial fibrillation", IEEE TBME 48, 2001): the
median beat of each beat type is subtracted from ``CANCEL_MS`` around every beat's QRS fiducial (from just
before the QRS onset to the end of the T wave, or the next beat), so the P waves before the QRS stay, and what
is left is the atrial activity plus noise.

On the residual of the leads where atrial activity is largest (II, III, aVF, V1 when present):

- the dominant atrial frequency (the peak of the summed power spectrum in ``ATRIAL_BAND_HZ``; 240-340/min is
  flutter, 350-600/min fibrillation) and the organisation index (the share of 2.5-15 Hz power within
  +-``PEAK_HZ`` of that peak and of its second harmonic: high for the regular flutter waves, low for
  fibrillation; Everett et al., IEEE TBME 48, 2001),
- the amplitude of that activity (RMS in 3-12 Hz, mV),
- the atrial events: peaks of the residual's spatial magnitude at least half the height of the P waves
  found before the dominant beats, at least ``ATRIAL_REFRACTORY_MS`` apart (for AV block: non-conducted P
  waves and P waves independent of the QRS).

numpy only (device code).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.dsp.beats import median

__all__ = ["ATRIAL_LEADS", "atrial_activity", "no_atrial"]

ATRIAL_LEADS = ("II", "III", "aVF", "V1")
CANCEL_MS = (-70.0, 450.0)  # the span cancelled around each QRS fiducial (cut at the next beat)
ATRIAL_BAND_HZ = (3.0, 10.0)
PEAK_HZ = 0.4
ATRIAL_REFRACTORY_MS = 150.0
P_HEIGHT_FRACTION = 0.5
EVENT_NOISE_FACTOR = 3.0  # an atrial event stands this many times above the residual's median magnitude
EVENT_MIN_MV = 0.02


def no_atrial(reason: str) -> dict:
    return {
        "dominant_hz": None,
        "rate_bpm": None,
        "organisation": None,
        "rms_mv": None,
        "p_waves": [],
        "reason": reason,
    }


def _cancel(y: np.ndarray, beats: np.ndarray, groups: Sequence[str], fs: float) -> np.ndarray:
    """``y`` minus each beat type's median beat over ``CANCEL_MS`` around every beat."""
    lo, hi = int(CANCEL_MS[0] * fs / 1000.0), int(CANCEL_MS[1] * fs / 1000.0)
    res = y.copy()
    taper = np.ones(hi - lo)
    ramp = int(0.02 * fs)
    taper[:ramp] = np.linspace(0.0, 1.0, ramp)
    taper[-ramp:] = np.linspace(1.0, 0.0, ramp)
    for g in sorted(set(groups)):
        idx = [
            i for i, t in enumerate(groups) if t == g and beats[i] + lo >= 0 and beats[i] + hi <= y.shape[1]
        ]
        if not idx:
            continue
        segs = np.stack([y[:, beats[i] + lo : beats[i] + hi] for i in idx])
        tmpl = median(segs, axis=0) * taper
        for i in range(len(beats)):
            if groups[i] != g:
                continue
            a, b = beats[i] + lo, beats[i] + hi
            if i + 1 < len(beats):
                b = min(b, beats[i + 1] + lo)  # stop before the next beat's P-QRS
            a0, b0 = max(a, 0), min(b, y.shape[1])
            if b0 <= a0:
                continue
            res[:, a0:b0] -= tmpl[:, a0 - a : b0 - a]
    return res


def _band(x: np.ndarray, fs: float, lo: float, hi: float, spec: np.ndarray | None = None) -> np.ndarray:
    """Zero-phase ideal band-pass by FFT mask (last axis); ``spec``: ``rfft(x)`` when already computed."""
    spec = np.fft.rfft(x, axis=-1) if spec is None else spec.copy()
    f = np.fft.rfftfreq(x.shape[-1], 1.0 / fs)
    spec[..., (f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, n=x.shape[-1], axis=-1)


_HANN: dict[int, np.ndarray] = {}


def _hann(n: int) -> np.ndarray:
    """``np.hanning(n)``, kept for the next window of that length (read only)."""
    if n not in _HANN:
        if len(_HANN) > 16:
            _HANN.clear()
        w = np.hanning(n)
        w.flags.writeable = False
        _HANN[n] = w
    return _HANN[n]


def atrial_activity(
    y: np.ndarray, fs: float, beats: np.ndarray, typed: Sequence[dict], leads: Sequence[str]
) -> dict:
    """``{"dominant_hz", "rate_bpm", "organisation", "rms_mv", "p_waves"}`` of one window (see module doc).

    ``y[C, T]`` band-passed mV at ``fs``; ``beats`` QRS fiducials at ``fs``; ``typed`` the beats' types and P
    presence (:func:`edge.dsp.beat_types.type_beats`); ``leads`` names the rows of ``y``.
    """
    beats = np.asarray(beats, dtype=np.int64)
    if beats.size < 2 or y.shape[1] < 2 * fs:
        return no_atrial("fewer than 2 beats")
    groups = [("N" if b["type"] in ("N", "S") else b["type"]) for b in typed]
    rows = [i for i, name in enumerate(leads) if name in ATRIAL_LEADS] or list(range(len(leads)))
    res = _cancel(y[rows].astype(np.float64, copy=False), beats, groups, fs)  # (y[rows] is a copy already)
    # spectrum of the residual (Hann window), summed over the atrial leads
    n = res.shape[1]
    win = _hann(n)
    f = np.fft.rfftfreq(n, 1.0 / fs)
    centred = res - res.mean(axis=1, keepdims=True)
    centred *= win  # in place: the same product, one array less
    power = (np.abs(np.fft.rfft(centred, axis=1)) ** 2).sum(axis=0)
    band = (f >= ATRIAL_BAND_HZ[0]) & (f <= ATRIAL_BAND_HZ[1])
    total = power[(f >= 2.5) & (f <= 15.0)].sum()
    if not band.any() or total <= 0:
        return no_atrial("no atrial signal")
    # smooth over +-PEAK_HZ so one broad peak is not split into bins
    k = max(1, int(round(PEAK_HZ / (f[1] - f[0]))))
    smooth = np.convolve(power, np.ones(2 * k + 1), mode="same")
    fd = float(f[band][int(np.argmax(smooth[band]))])
    near = (np.abs(f - fd) <= PEAK_HZ) | (np.abs(f - 2 * fd) <= PEAK_HZ)
    organisation = float(power[near & (f <= 15.0)].sum() / total)
    spec = np.fft.rfft(res, axis=-1)  # the residual's spectrum, for both band-passes below
    rms = float(median(np.sqrt(np.mean(_band(res, fs, 3.0, 12.0, spec) ** 2, axis=1))))
    out = {
        "dominant_hz": round(fd, 2),
        "rate_bpm": round(60.0 * fd, 1),
        "organisation": round(organisation, 3),
        "rms_mv": round(rms, 4),
        "p_waves": _atrial_events(res, fs, beats, typed, spec),
    }
    return out


def _atrial_events(
    res: np.ndarray, fs: float, beats: np.ndarray, typed: Sequence[dict], spec: np.ndarray | None = None
) -> list[int]:
    """Peaks of the residual's spatial magnitude (1-15 Hz, 40 ms smoothing) as tall as the P waves."""
    r = _band(res, fs, 1.0, 15.0, spec)
    r *= r  # in place (r is this function's own)
    mag = np.sqrt(r.sum(axis=0))
    w = max(1, int(0.04 * fs))
    mag = np.convolve(mag, np.ones(w) / w, mode="same")
    # the reference height: the P waves before beats that have one (in the 300-70 ms before the fiducial);
    # without such beats (P waves at a changing PR: Mobitz I, complete block) the tallest residual waves
    heights = []
    for b, t in zip(beats, typed, strict=False):
        a, z = b - int(0.3 * fs), b - int(0.07 * fs)
        if t.get("p") and a >= 0:
            heights.append(float(mag[a:z].max()))
    cand = np.flatnonzero((mag[1:-1] > mag[:-2]) & (mag[1:-1] >= mag[2:])) + 1
    gap = int(ATRIAL_REFRACTORY_MS * fs / 1000.0)
    kept: list[int] = []
    taken = bytearray(mag.size + 2 * gap)  # offset by gap: no bounds checks (plain Python: hundreds of peaks)
    block = b"\x01" * (2 * gap - 1)
    for c in cand[np.argsort(-mag[cand])].tolist():
        if not taken[c + gap]:
            kept.append(c)
            taken[c + 1 : c + 2 * gap] = block
    if not kept:
        return []
    noise = float(median(mag))  # np.median's value without importing numpy.ma (#23)
    if len(heights) >= 2:
        thr = P_HEIGHT_FRACTION * float(median(np.asarray(heights)))
    else:
        tall = np.sort(mag[kept])[::-1][: max(2, len(beats))]
        thr = P_HEIGHT_FRACTION * float(median(tall))
    thr = max(thr, EVENT_NOISE_FACTOR * noise, EVENT_MIN_MV)
    return sorted(k for k in kept if mag[k] >= thr)
