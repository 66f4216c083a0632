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
from edge.dsp.pacing import median_at_most, sample_median, sorted_median

__all__ = [
    "ATRIAL_LEADS",
    "atrial_activity",
    "no_atrial",
    "detrend",
    "p_wave_template",
    "p_wave_tests",
    "template_pr_ms",
]

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


_TAPER: dict[tuple[int, int, int], np.ndarray] = {}


def _taper(lo: int, hi: int, ramp: int) -> np.ndarray:
    """The cancellation's window: 1 with ``ramp``-sample linear ramps at both ends (kept, read only)."""
    key = (lo, hi, ramp)
    if key not in _TAPER:
        if len(_TAPER) > 16:
            _TAPER.clear()
        taper = np.ones(hi - lo)
        taper[:ramp] = np.linspace(0.0, 1.0, ramp)
        taper[-ramp:] = np.linspace(1.0, 0.0, ramp)
        taper.flags.writeable = False
        _TAPER[key] = taper
    return _TAPER[key]


def _lead_offsets(c: int, t: int) -> np.ndarray:
    """``np.arange(c) * t``: where each lead starts in a flattened ``[c, t]`` array."""
    return np.arange(c) * t


def _cancel(
    y: np.ndarray, beats: np.ndarray, groups: Sequence[str], fs: float, in_place: bool = False
) -> np.ndarray:
    """``y`` minus each beat type's median beat over ``CANCEL_MS`` around every beat (a copy, or ``y`` itself
    with ``in_place``: every template is taken before anything is subtracted)."""
    lo, hi = int(CANCEL_MS[0] * fs / 1000.0), int(CANCEL_MS[1] * fs / 1000.0)
    taper = _taper(lo, hi, int(0.02 * fs))
    y = np.ascontiguousarray(y)
    t = y.shape[1]
    bl = beats.tolist()
    nb = len(bl)
    tmpls = []
    for g in sorted(set(groups)):
        idx = [i for i, k in enumerate(groups) if k == g and bl[i] + lo >= 0 and bl[i] + hi <= t]
        if idx:
            # [B, C, W]: the beats' [C, W] slices stacked, by one flat gather (y is contiguous)
            starts = np.asarray([bl[i] + lo for i in idx])[:, None, None]
            segs = y.ravel()[_lead_offsets(y.shape[0], t)[None, :, None] + starts + np.arange(hi - lo)]
            tmpls.append((g, median(segs, axis=0) * taper))
    res = y if in_place else y.copy()
    for g, tmpl in tmpls:
        for i in range(nb):
            if groups[i] != g:
                continue
            a, b = bl[i] + lo, bl[i] + hi
            if i + 1 < nb:
                b = min(b, bl[i + 1] + lo)  # stop before the next beat's P-QRS
            a0, b0 = max(a, 0), min(b, t)
            if b0 <= a0:
                continue
            res[:, a0:b0] -= tmpl[:, a0 - a : b0 - a]
    return res


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


_SPECTRAL: dict[tuple[int, float], tuple] = {}


def _spectral(n: int, fs: float) -> tuple:
    """The frequency grid of an ``n``-sample residual and what is read of it (kept, read only): ``f``, the
    atrial band's mask, the 2.5-15 Hz bins (slice), the smoothing half-width, the mask ``f <= 15`` and the
    bins kept by the 3-12 Hz and 1-15 Hz band-passes (slices: ``f`` is increasing)."""
    key = (n, fs)
    if key not in _SPECTRAL:
        if len(_SPECTRAL) > 16:
            _SPECTRAL.clear()
        f = np.fft.rfftfreq(n, 1.0 / fs)

        def bins(lo: float, hi: float) -> slice:
            kept = np.flatnonzero((f >= lo) & (f <= hi))
            return slice(int(kept[0]), int(kept[-1]) + 1) if kept.size else slice(0, 0)

        band = (f >= ATRIAL_BAND_HZ[0]) & (f <= ATRIAL_BAND_HZ[1])
        k = max(1, int(round(PEAK_HZ / (f[1] - f[0])))) if f.size > 1 else 1
        upto15 = f <= 15.0
        for a in (f, band, upto15):
            a.flags.writeable = False
        _SPECTRAL[key] = (f, band, bins(2.5, 15.0), k, upto15, bins(3.0, 12.0), bins(1.0, 15.0))
    return _SPECTRAL[key]


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
    # the residual, then the arrays of the transforms reused (each fresh [4, T] array costs its page faults)
    res = _cancel(y[rows].astype(np.float64, copy=False), beats, groups, fs, in_place=True)  # y[rows]: a copy
    nr, n = res.shape
    f, band, b_total, k, upto15, b_rms, b_events = _spectral(n, fs)
    # spectrum of the residual (Hann window), summed over the atrial leads
    work = res - res.mean(axis=1, keepdims=True)
    work *= _hann(n)  # in place: the same product, one array less
    spec_w = np.fft.rfft(work, axis=1)
    # |X|**2 as re**2 + im**2 (abs() computes a hypot first: the same power up to the last place)
    power = spec_w.real * spec_w.real
    power += spec_w.imag * spec_w.imag
    power = power.sum(axis=0)
    total = power[b_total].sum()
    if not band.any() or total <= 0:
        return no_atrial("no atrial signal")
    # smooth over +-PEAK_HZ so one broad peak is not split into bins
    smooth = np.convolve(power, np.ones(2 * k + 1), mode="same")
    fd = float(f[band][int(np.argmax(smooth[band]))])
    near = (np.abs(f - fd) <= PEAK_HZ) | (np.abs(f - 2 * fd) <= PEAK_HZ)
    organisation = float(power[near & upto15].sum() / total)
    # the residual's zero-phase ideal band-passes by FFT mask: 3-12 Hz for the RMS (its energy read off the
    # spectrum), 1-15 Hz for the events
    spec = np.fft.rfft(res, axis=1, out=spec_w)  # (the windowed spectrum is read no more)
    rms = sorted_median(_band_rms(spec[:, b_rms], n).tolist())
    spec[:, : b_events.start] = 0
    spec[:, b_events.stop :] = 0
    out = {
        "dominant_hz": round(fd, 2),
        "rate_bpm": round(60.0 * fd, 1),
        "organisation": round(organisation, 3),
        "rms_mv": round(rms, 4),
        "p_waves": _atrial_events(np.fft.irfft(spec, n=n, axis=1, out=res), fs, beats, typed),
    }
    return out


def _band_rms(bins: np.ndarray, n: int) -> np.ndarray:
    """Per row, the RMS of the ``n``-sample signal whose ``rfft`` is ``bins`` inside a band and zero outside
    it (the band holding neither the 0 Hz nor the Nyquist bin), by Parseval: ``sum x**2 = 2 sum |X_k|**2 / n``,
    the value of the band-pass's inverse transform squared and averaged, up to rounding in the last places."""
    energy = (bins.real * bins.real + bins.imag * bins.imag).sum(axis=1)
    return np.sqrt(2.0 * energy / (float(n) * float(n)))


def _atrial_events(r: np.ndarray, fs: float, beats: np.ndarray, typed: Sequence[dict]) -> list[int]:
    """Peaks of the residual's spatial magnitude (``r``: the residual band-passed 1-15 Hz, overwritten; 40 ms
    smoothing) as tall as the P waves."""
    r *= r  # in place
    mag = np.sqrt(r.sum(axis=0))
    w = max(1, int(0.04 * fs))
    mag = np.convolve(mag, np.ones(w) / w, mode="same")
    # the reference height: the P waves before beats that have one (in the 300-70 ms before the fiducial);
    # without such beats (P waves at a changing PR: Mobitz I, complete block) the tallest residual waves
    before, after = int(0.3 * fs), int(0.07 * fs)
    starts = [
        b - before for b, t in zip(beats.tolist(), typed, strict=False) if t.get("p") and b - before >= 0
    ]
    inside = [a for a in starts if a + before - after <= mag.size]
    heights = [float(mag[a : a + before - after].max()) for a in starts if a + before - after > mag.size]
    if inside:
        heights += mag[np.asarray(inside)[:, None] + np.arange(before - after)[None, :]].max(axis=1).tolist()
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
    if len(heights) >= 2:
        thr = P_HEIGHT_FRACTION * sorted_median(heights)
    else:
        tall = np.sort(mag[kept])[::-1][: max(2, len(beats))]
        thr = P_HEIGHT_FRACTION * float(median(tall))
    # the noise floor (median magnitude) matters only where it is above the other two: one counting pass says
    # when it certainly is not, else its value (by partition: np.median's, without importing numpy.ma, #23)
    if not median_at_most(mag, max(thr, EVENT_MIN_MV) / EVENT_NOISE_FACTOR):
        thr = max(thr, EVENT_NOISE_FACTOR * sample_median(mag), EVENT_MIN_MV)
    else:
        thr = max(thr, EVENT_MIN_MV)
    return sorted(k for k in kept if mag[k] >= thr)


# P waves before the beats (edge.dsp.beat_types reads them to type the beats; the thresholds are its)
P_MIN_MV = 0.04  # the P template must hold a wave at least this tall (largest lead, detrended)
P_NOISE_FACTOR = 3.0  # ... and this many times the noise left in the median
P_CORR = 0.5  # a beat's segment correlates at least this much with the template
P_SIZE = (0.35, 3.0)  # ... at this size relative to the template (least-squares projection)

_RAMP: dict[int, np.ndarray] = {}


def detrend(seg: np.ndarray) -> np.ndarray:
    """``seg`` minus the straight line between its two ends (per lead, last axis)."""
    n = seg.shape[-1]
    if n not in _RAMP:
        if len(_RAMP) > 16:
            _RAMP.clear()
        _RAMP[n] = np.linspace(0.0, 1.0, n)
        _RAMP[n].flags.writeable = False
    a, b = seg[..., :1], seg[..., -1:]
    line = (b - a) * _RAMP[n]
    line += a  # (a + line: the same sum)
    return np.subtract(seg, line, out=line)


def p_wave_template(s: np.ndarray) -> np.ndarray | None:
    """The P template of one shape's beats, ``s[B, C, W]`` (their detrended P segments): the median segment
    when it holds a wave of at least ``P_MIN_MV`` and ``P_NOISE_FACTOR`` times the beat-to-beat noise (the
    mean absolute deviation as a robust SD); None with fewer than 2 beats or no such wave."""
    if len(s) < 2:
        return None
    med = median(s, axis=0)
    dev = s - med
    noise = np.abs(dev, out=dev).mean() * 1.2533 / np.sqrt(len(s))
    peak = float(np.abs(med).max())
    return med if peak >= P_MIN_MV and peak >= P_NOISE_FACTOR * noise else None


def p_wave_tests(pseg: np.ndarray, tmpl: np.ndarray) -> tuple[list[bool], list[bool]]:
    """Per beat (``pseg[B, C, W]``, one row each), does its P segment match the template ``tmpl[C, W]``:
    by shape (correlation >= ``P_CORR`` at a least-squares size within ``P_SIZE``), and by its own wave
    (correlation >= 0.3 and its peak within ``P_SIZE`` of the template's)?

    All beats at once: the same formulas as one beat at a time, the dot products and norms summed in another
    order (a matrix product instead of a ``dot`` per beat: the correlation and size can move in the last place)."""
    tflat = (tmpl - tmpl.mean()).ravel()
    t_norm = np.linalg.norm(tflat)
    t_energy = max(float(tflat @ tflat), 1e-12)
    t_peak = max(float(np.abs(tmpl).max()), 1e-12)
    flat = pseg.reshape(len(pseg), -1)
    cen = flat - flat.mean(axis=1, keepdims=True)
    dot = cen @ tflat
    cen *= cen
    den = np.sqrt(cen.sum(axis=1)) * t_norm
    c = np.zeros_like(dot)
    np.divide(dot, den, out=c, where=den > 0)
    size = dot / t_energy
    own = np.maximum(flat.max(axis=1), -flat.min(axis=1)) / t_peak  # max |x| (exact), no |flat| array
    by_shape = (c >= P_CORR) & (size >= P_SIZE[0]) & (size <= P_SIZE[1])
    return by_shape.tolist(), ((c >= 0.3) & (own >= P_SIZE[0]) & (own <= P_SIZE[1])).tolist()


def template_pr_ms(tmpl: np.ndarray | None, p_lo: int, q_on: int | None, fs: float) -> float | None:
    """PR interval (ms) of the dominant beats from their P template (its first sample ``p_lo`` samples from the
    QRS fiducial) and their QRS onset ``q_on`` (samples from the fiducial). P onset: walking back from the
    template's spatial-magnitude peak to 20 % of it."""
    if tmpl is None or q_on is None:
        return None
    mag = np.sqrt((tmpl * tmpl).sum(axis=0))
    k = int(np.argmax(mag))
    below = np.flatnonzero(mag[: k + 1] < 0.2 * mag[k])
    if below.size == 0:
        return None
    p_on = p_lo + int(below[-1])
    return round((q_on - p_on) * 1000.0 / fs, 1)
