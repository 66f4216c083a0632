"""QRS (beat) detection across leads, numpy only (the device path has no scipy).

The detector follows the structure of Pan & Tompkins ("A real-time QRS detection algorithm", IEEE TBME
32(3), 1985) with the multi-lead energy of the spatial velocity used by CSE-era programs: the band-passed
leads are differentiated, their squared slopes summed over the leads (so no single lead decides), the
square root (the spatial velocity) integrated over a moving window of about one QRS width, and the peaks of
that envelope accepted against an adaptive threshold with a refractory period, a T-wave slope check and a
search-back for missed beats when an RR gap is much longer than usual.

Thresholds are relative to the record's own beats (a robust reference over about 10 s around each
candidate), so the detector is indifferent to the recording's gain. It works on any length: a 10-s window
on the device, a 30-min Holter record in the EC57 test.

``(x, fs) -> sample indices``: ``x`` is lead-first ``float[C, T]`` (any unit, NaN not allowed), ``fs`` in Hz.
"""

from __future__ import annotations

import bisect
import functools

import numpy as np

from edge.dsp.signal import filter_resample

__all__ = ["ANALYSIS_FS", "QRS_BAND_HZ", "median", "median_of", "moving_average", "detection_envelope", "detect_beats", "pick_beats"]

ANALYSIS_FS = 500.0  # every measurement works at this rate (resampled in the frequency domain)
QRS_BAND_HZ = (5.0, 30.0)  # the band the detector looks at
REFRACTORY_S = 0.24  # no two QRS complexes closer than this (250 bpm)
MWI_S = 0.10  # moving-window integration, about one QRS width
THRESHOLD = 0.30  # a beat's envelope peak must reach this fraction of the local reference
SEARCHBACK_THRESHOLD = 0.15  # in an RR gap > SEARCHBACK_GAP x the usual RR, the best peak above this
SEARCHBACK_GAP = 1.66
T_WAVE_S = 0.36  # a peak this soon after a beat with less than half its slope is that beat's T wave
REFERENCE_S = 10.0  # span of the local reference around a candidate


def moving_average(x: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average of a 1-D signal over ``n`` samples (no delay)."""
    if n <= 1:
        return x
    c = np.cumsum(np.concatenate([[0.0], x]))
    half = n // 2
    idx = np.arange(x.size)
    lo = np.maximum(idx - half, 0)  # np.clip(idx - half, 0, size): its upper bound never binds
    hi = np.minimum(idx + (n - half), x.size)  # n - half >= 1: np.clip's lower bound never binds
    return (c[hi] - c[lo]) / np.maximum(hi - lo, 1)


def median(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """``np.median(a, axis)`` by a full sort: the same values (an order statistic, or the mean of the two
    middle ones), at less cost for the few beats a window holds (numpy's partition is slower there). The
    middle values are read by basic indexing (``np.take`` along an axis costs 10x more)."""
    s = np.sort(a, axis=axis)
    if s.dtype.kind not in "fc":
        s = s.astype(np.float64)  # np.median of integers is a float
    n = s.shape[axis]
    if n == 0:
        return np.median(a, axis=axis)
    ax = axis % s.ndim
    pre = (slice(None),) * ax
    if s.dtype.kind in "fc" and np.isnan(s[pre + (n - 1,)]).any():
        return np.median(a, axis=axis)  # NaN sorts last; np.median gives NaN for such values
    mid = s[pre + (n // 2,)]
    if n % 2:
        return mid.copy() if s.ndim > 1 else mid  # not a view that keeps the whole sorted array alive
    return (s[pre + (n // 2 - 1,)] + mid) / 2.0


MEDIAN_NETWORK_MAX = 20  # median_of(): a comparator network up to this many arrays, a sort beyond


@functools.lru_cache(maxsize=32)
def _median_network(n: int) -> tuple[tuple[int, int], ...]:
    """Comparators ``(i, j)`` (min to i, max to j) of Batcher's merge-exchange sort of ``n`` wires (Knuth,
    TAOCP 5.2.2, algorithm M), without those that cannot reach the middle wire(s)."""
    comps = []
    if n > 1:
        t = (n - 1).bit_length()
        p = 1 << (t - 1)
        while p > 0:
            q, r, d = 1 << (t - 1), 0, p
            while True:
                comps.extend((i, i + d) for i in range(n - d) if i & p == r)
                if q == p:
                    break
                d, q, r = q - p, q >> 1, p
            p >>= 1
    need = {n // 2, (n - 1) // 2}
    kept = []
    for i, j in reversed(comps):
        if i in need or j in need:
            kept.append((i, j))
            need |= {i, j}
    return tuple(reversed(kept))


def median_of(arrays: list[np.ndarray]) -> np.ndarray:
    """``np.median(np.stack(arrays, axis=-1), axis=-1)`` of equal-shaped finite float arrays, without the stack: up to
    ``MEDIAN_NETWORK_MAX`` arrays by a comparator network (whole-array minimum/maximum per comparator: the same
    order statistics as a sort, ~3x cheaper than sorting every element's few values), beyond by :func:`median`.
    The arrays are not modified."""
    n = len(arrays)
    if n == 0 or n > MEDIAN_NETWORK_MAX or any(np.asarray(v).dtype.kind != "f" for v in arrays):
        return median(np.stack(arrays, axis=-1), axis=-1)
    a = list(arrays)
    owned = [False] * n  # a[k] is our own buffer (else one of the caller's arrays: never written)
    spare: list[np.ndarray] = []
    for i, j in _median_network(n):
        lo = np.minimum(a[i], a[j], out=spare.pop() if spare else None)
        if owned[j]:
            np.maximum(a[i], a[j], out=a[j])
        else:
            a[j], owned[j] = np.maximum(a[i], a[j]), True
        if owned[i]:
            spare.append(a[i])
        a[i], owned[i] = lo, True
    mid = a[n // 2]
    if n % 2:
        return mid if owned[n // 2] else np.array(mid)
    return (a[n // 2 - 1] + mid) / 2.0


# np.median, np.percentile and np.unique each import numpy.ma (1.2 MiB resident) for their masked-array
# checks; the device path uses these instead: the same values (tests/test_edge_engine.py compares them).
def percentile_rows(a: np.ndarray, q: float) -> np.ndarray:
    """``np.percentile(a, q, axis=1)`` (linear, numpy's arithmetic) of a 2-D array, without numpy.ma."""
    a = np.asarray(a)
    n = a.shape[1]
    if n == 0 or (a.dtype.kind in "fc" and np.isnan(a).any()):
        return np.percentile(a, q, axis=1)  # numpy gives NaN for a row holding one
    vi = (n - 1) * (q / 100.0)
    lo = int(vi // 1)
    hi = min(lo + 1, n - 1)
    g = vi - lo
    s = np.partition(a, lo, axis=1)  # one selection; the next order statistic is the least of those above it
    lo_v = s[:, lo]
    hi_v = s[:, lo + 1 :].min(axis=1) if hi > lo else lo_v
    d = hi_v - lo_v
    return hi_v - d * (1.0 - g) if g >= 0.5 else lo_v + d * g


def unique_ints(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` of a 1-D integer array (sorted, each value once), without numpy.ma."""
    s = np.sort(np.asarray(a).ravel())
    if s.size < 2:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def detection_envelope(y: np.ndarray, fs: float, dtype: type | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spatial velocity and its moving-window integral of band-passed leads ``y[C, T]`` at ``fs``.

    Each lead's slope is scaled by a robust estimate of its own QRS slope (the 99th percentile of its
    absolute slope), so a lead with a large amplitude does not drown the others and a flat lead adds
    nothing; the scaled squared slopes are summed and square-rooted. ``dtype``: the arithmetic's type (default
    ``y``'s; float64 on float32 leads gives what ``y.astype(np.float64)`` gives, without that copy).
    """
    y = np.asarray(y)
    dt = np.dtype(dtype) if dtype is not None else y.dtype
    d = np.empty(y.shape, dtype=dt)  # np.diff(y, axis=1, prepend=y[:, :1]) without the concatenated copy
    np.subtract(y[:, :1], y[:, :1], out=d[:, :1], dtype=dt)
    np.subtract(y[:, 1:], y[:, :-1], out=d[:, 1:], dtype=dt)
    scale = percentile_rows(np.abs(d[:, ::4]), 99)  # every 4th sample is plenty, and 4x cheaper
    ok = scale > 1e-9
    if not ok.any():
        z = np.zeros(y.shape[1])
        return z, z
    if d.dtype == np.float64:
        d = d if ok.all() else d[ok]
        d /= scale[ok, None]  # in place: the same quotient, no new array
    else:
        d = d[ok] / scale[ok, None]
    sv = np.sqrt(np.einsum("ct,ct->t", d, d) / ok.sum())
    return sv, moving_average(sv, max(1, int(round(MWI_S * fs))))


def _local_maxima(e: np.ndarray) -> np.ndarray:
    """Indices of the strict-left, non-strict-right local maxima of ``e`` (plateaus count once)."""
    if e.size < 3:
        return np.zeros(0, dtype=np.int64)
    i = np.flatnonzero((e[1:-1] > e[:-2]) & (e[1:-1] >= e[2:])) + 1
    return i


def _refractory(cand: np.ndarray, height: np.ndarray, gap: int) -> np.ndarray:
    """Greedy non-maximum suppression: the highest peaks first, none within ``gap`` of a kept one."""
    order = np.argsort(-height, kind="stable").tolist()
    pos = cand.tolist()
    kept: list[int] = []
    taken: list[int] = []  # kept positions, sorted (plain Python: one insertion per kept peak)
    for j in order:
        p = pos[j]
        k = bisect.bisect_left(taken, p)
        if (k > 0 and p - taken[k - 1] < gap) or (k < len(taken) and taken[k] - p < gap):
            continue
        taken.insert(k, p)
        kept.append(j)
    return np.sort(cand[np.asarray(kept, dtype=np.int64)]) if kept else np.zeros(0, dtype=np.int64)


def _local_reference(pos: np.ndarray, h: np.ndarray, fs: float) -> np.ndarray:
    """For each candidate, the median height of the tallest candidates within +-REFERENCE_S/2.

    "Tallest" = as many as beats at 40 bpm would give in that span, so T waves and noise (more numerous,
    smaller) do not pull the reference down and a few ectopic beats do not pull it up.
    """
    half = int(REFERENCE_S * fs / 2)
    if pos[-1] - pos[0] <= 2 * half:  # one window: one reference
        k = max(2, int(np.ceil(max((pos[-1] - pos[0]) / fs, 1.0) * 40 / 60)))
        return np.full(pos.size, median(np.sort(h)[-k:]))
    ref = np.empty(pos.size)
    lo = np.searchsorted(pos, pos - half)
    hi = np.searchsorted(pos, pos + half, side="right")
    for i in range(pos.size):
        seg = h[lo[i] : hi[i]]
        span_s = (min(pos[-1], pos[i] + half) - max(pos[0], pos[i] - half)) / fs
        k = max(2, int(np.ceil(max(span_s, 1.0) * 40 / 60)))
        top = np.sort(seg)[-k:] if seg.size > k else seg
        ref[i] = median(top)
    return ref


def pick_beats(sv: np.ndarray, env: np.ndarray, fs: float) -> np.ndarray:
    """Beat positions (samples at ``fs``) from the spatial velocity ``sv`` and its integral ``env``."""
    cand = _local_maxima(env)
    if cand.size:  # ripples far below any QRS never become beats: skip them early (speed only)
        cand = cand[env[cand] >= 0.5 * SEARCHBACK_THRESHOLD * percentile_rows(env[cand][None], 99)[0]]
    if cand.size == 0:
        return cand
    cand = _refractory(cand, env[cand], int(round(REFRACTORY_S * fs)))
    h = env[cand]
    ref = _local_reference(cand, h, fs)
    accepted = h >= THRESHOLD * ref
    # T-wave check: a candidate soon after an accepted beat, with much less slope, is its T wave.
    slope = _window_max(sv, cand, int(0.05 * fs))
    t_gap = int(T_WAVE_S * fs)
    last = -1
    pos, sl, acc = cand.tolist(), slope.tolist(), accepted.tolist()  # plain Python: a loop over candidates
    for i in range(len(pos)):
        if not acc[i]:
            continue
        if last >= 0 and pos[i] - pos[last] < t_gap and sl[i] < 0.5 * sl[last]:
            accepted[i] = False
            continue
        last = i
    # Search-back: in an RR gap much longer than the usual RR, take the best candidate above a lower bar.
    beats = cand[accepted]
    if beats.size >= 3:
        rr = median(np.diff(beats))
        extra = []
        bl = beats.tolist()
        for a, b in zip(bl[:-1], bl[1:], strict=True):
            if b - a <= SEARCHBACK_GAP * rr:
                continue
            inside = (cand > a + REFRACTORY_S * fs) & (cand < b - REFRACTORY_S * fs) & ~accepted
            inside &= h >= SEARCHBACK_THRESHOLD * ref
            if inside.any():
                j = np.flatnonzero(inside)
                extra.append(cand[j[np.argmax(h[j])]])
        if extra:
            beats = np.sort(np.concatenate([beats, np.asarray(extra, dtype=beats.dtype)]))
    # Fiducial: the steepest point of the complex (spatial velocity maximum) near the envelope peak.
    w = int(round(0.06 * fs))
    if beats.size == 0:
        return np.zeros(0, dtype=np.int64)
    padded = np.concatenate([np.full(w, -np.inf), sv, np.full(w, -np.inf)])  # sv >= 0: edges never win
    idx = beats.astype(np.int64)[:, None] + np.arange(2 * w + 1)[None, :]
    out = beats.astype(np.int64) - w + np.argmax(padded[idx], axis=1)
    return unique_ints(out)


def _window_max(sv: np.ndarray, at: np.ndarray, w: int) -> np.ndarray:
    """``sv[max(0, p - w) : p + w + 1].max()`` for every ``p`` in ``at`` (one gather, no loop)."""
    padded = np.concatenate([np.full(w, -np.inf), sv, np.full(w, -np.inf)])
    return padded[np.asarray(at, dtype=np.int64)[:, None] + np.arange(2 * w + 1)[None, :]].max(axis=1)


def detect_beats(x: np.ndarray, fs: float, band_hz: tuple[float, float] = QRS_BAND_HZ) -> np.ndarray:
    """QRS positions (sample indices at ``fs``) in a lead-first record ``x[C, T]`` of any length.

    The record is band-passed to ``band_hz`` (the QRS band) and resampled to :data:`ANALYSIS_FS` in one
    frequency-domain step; long records are processed in overlapping 60-s chunks to bound memory.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    n = x.shape[1]
    chunk, overlap = int(60 * fs), int(2 * fs)
    found: list[np.ndarray] = []
    start = 0
    while start < n:
        stop = min(n, start + chunk + overlap)
        y, _ = filter_resample(x[:, start:stop], fs, ANALYSIS_FS, band_hz)
        sv, env = detection_envelope(y, ANALYSIS_FS)
        b = pick_beats(sv, env, ANALYSIS_FS)
        b = np.rint(b * fs / ANALYSIS_FS).astype(np.int64) + start
        keep_lo = start if start == 0 else start + overlap // 2
        keep_hi = n if stop == n else stop - overlap // 2
        found.append(b[(b >= keep_lo) & (b < keep_hi)])
        if stop == n:
            break
        start = stop - overlap
    return unique_ints(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)
