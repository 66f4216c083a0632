"""Pacing spikes (ペーシングスパイク) on the unfiltered samples (DESIGN.md contract 7 v2 ``paced``).

A pacemaker's stimulus lasts 0.1-2 ms: at >= 500 Hz it is a deflection of one to a few samples with a slope
far above anything the heart makes (a QRS rises at most ~0.1 mV per ms; a unipolar spike several mV in
0.5 ms, a bipolar one about 0.5-2 mV). Any band-pass (the measurements' 0.5-100 Hz, the model's 0.5-40 Hz)
smears it into ringing, so spikes are found here on the raw window, before any filter, as the established
programs and IEC 60601-2-27's pace-pulse rejection tests assume.

Detector: per lead, the local curvature ``x[t] - (x[t-k] + x[t+k]) / 2`` with ``k`` about 2 ms (a QRS is
tens of ms wide, so its curvature at that scale is small; a spike's is its full height); the leads'
curvatures are combined as a root sum of squares, a spike is where that exceeds both ``SPIKE_MIN_MV`` and
``SPIKE_NOISE_FACTOR`` x the window's robust noise level, and detections closer than ``SPIKE_MERGE_MS`` are one
spike. Each spike is then placed against the beats: one within ``V_SPIKE_MS`` before a QRS fiducial paces the
ventricle, one earlier within ``A_SPIKE_MS`` (and not a ventricular spike) paces the atrium.

Below ``MIN_FS`` the spikes are not reliably sampled: ``paced`` says ``assessable: false`` and nothing else.
numpy only (device code).
"""

from __future__ import annotations

import numpy as np

from edge.dsp.beats import median  # np.median's values without importing numpy.ma (1.2 MiB, #23)

__all__ = [
    "MIN_FS",
    "find_spikes",
    "pacing_of_beats",
    "no_pacing",
    "sample_median",
    "sorted_median",
    "median_at_most",
]

MIN_FS = 500.0  # below this sampling rate a 0.5 ms stimulus is not reliably seen
CURVATURE_MS = 2.0  # half-width of the curvature stencil
SPIKE_MIN_MV = 0.3  # a spike rises at least this far above its neighbours (combined over the leads)
SPIKE_NOISE_FACTOR = 12.0  # ... and this many times above the window's robust curvature noise
SHARPNESS = 0.6  # curvature at 2 ms / at 6 ms: a spike keeps nearly all of it, a QRS peak far less
SPIKE_MERGE_MS = 6.0  # detections closer than this are one spike
V_SPIKE_MS = (-130.0, 25.0)  # spike time relative to a beat's QRS fiducial that paces the ventricle
A_SPIKE_MS = (-400.0, -130.0)  # ... and that paces the atrium
PACED_SHARE = 0.3  # a chamber counts as paced when at least this share of the window's beats is


def no_pacing(assessable: bool = True, reason: str | None = None) -> dict:
    """``paced`` of a window without spikes (or, with ``assessable=False``, one that cannot tell)."""
    out: dict = {"atrial": False, "ventricular": False, "spikes": 0, "assessable": assessable}
    if not assessable:
        out["atrial"] = out["ventricular"] = out["spikes"] = None
        out["reason"] = reason or f"sampling rate below {MIN_FS:.0f} Hz"
    return out


def find_spikes(x_raw: np.ndarray, fs: float, rows: list[int] | None = None) -> np.ndarray:
    """Sample indices (at ``fs``) of pacing spikes in the unfiltered window ``x_raw[C, T]`` (mV).

    ``rows``: the rows of ``x_raw`` to look at (all when None; no copy of the others is made). Any float
    dtype: the arithmetic is float64 (float32 samples are widened exactly, as a float64 copy would be).
    Returns an empty array below :data:`MIN_FS` (not assessable; the caller says so) or when ``x_raw`` has
    non-finite samples in every lead.
    """
    x = np.asarray(x_raw)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if x.ndim == 1:
        x = x[None]
    if fs < MIN_FS or x.shape[1] < 8:
        return np.zeros(0, dtype=np.int64)
    rows = list(range(x.shape[0])) if rows is None else list(rows)
    sums = x.sum(axis=1)  # a finite row sum: a finite row (one pass over all rows instead of a test per row)
    rows = [r for r in rows if np.isfinite(sums[r]) or np.isfinite(x[r]).all()]
    if not rows:
        return np.zeros(0, dtype=np.int64)
    k = max(1, int(round(CURVATURE_MS * fs / 1000.0)))
    curv = _curvature(x, k, rows)
    # a spike is as tall at 3x the stencil as at 1x (it is one stimulus); a QRS peak's curvature grows with
    # the stencil's width squared, so at 2 ms it is a small part of its curvature at 6 ms
    # robust noise: the median absolute curvature (QRS complexes and spikes are a small share of samples)
    thr = SPIKE_MIN_MV
    if curv.size > 2 * k and not median_at_most(curv[k:-k], SPIKE_MIN_MV * 0.6745 / SPIKE_NOISE_FACTOR):
        thr = max(SPIKE_MIN_MV, SPIKE_NOISE_FACTOR * (sample_median(curv[k:-k]) / 0.6745))
    above = np.flatnonzero(curv > thr)
    if above.size:  # the wide curvature only where the narrow one is high enough (the same test, less work)
        above = above[curv[above] >= SHARPNESS * _curvature_at(x[rows], 3 * k, above)]
    if above.size == 0:
        return np.zeros(0, dtype=np.int64)
    merge = max(1, int(round(SPIKE_MERGE_MS * fs / 1000.0)))
    groups = np.split(above, np.flatnonzero(np.diff(above) > merge) + 1)
    spikes = np.array([g[int(np.argmax(curv[g]))] for g in groups], dtype=np.int64)
    # a spike is narrow: the curvature must fall back below half its height within a few ms on both sides
    # (a clipped or saturated step, e.g. an electrode pop, stays high on one side)
    keep = []
    for s in spikes:
        lo, hi = max(0, s - 3 * merge), min(curv.size, s + 3 * merge + 1)
        left, right = curv[lo:s], curv[s + 1 : hi]
        h = curv[s]
        keep.append(bool(left.size and right.size and left.min() < 0.5 * h and right.min() < 0.5 * h))
    return spikes[np.asarray(keep, dtype=bool)]


def median_at_most(a: np.ndarray, bound: float) -> bool:
    """True when the median of the 1-D ``a`` is certainly below ``bound`` (by a margin that no rounding of a
    product with it can cross): fewer than half the samples exceed ``bound * (1 - 1e-9)``, so both middle
    order statistics lie under it. One comparison pass instead of a partition; False says only "unknown"."""
    n = a.size
    if n == 0 or not np.isfinite(a.sum()):
        return False  # (a NaN: the median is NaN, as np.median says)
    return 2 * int(np.count_nonzero(a > bound * (1.0 - 1e-9))) < n - 1


def sorted_median(values: list[float]) -> float:
    """``np.median`` of a few finite floats (a plain list: sorting it in Python costs less than a numpy call;
    the same order statistics and the same ``(a + b) / 2`` for an even count)."""
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def sample_median(a: np.ndarray) -> float:
    """``np.median`` of a 1-D float array by partition (the same order statistics and arithmetic as
    :func:`edge.dsp.beats.median`'s sort, at a fraction of its cost for thousands of samples)."""
    n = a.size
    if n == 0 or np.isnan(a).any():
        return float(median(a))
    h = n // 2
    if n % 2:
        return float(np.partition(a, h)[h])
    s = np.partition(a, (h - 1, h))
    return float((s[h - 1] + s[h]) / 2.0)


def _curvature(x: np.ndarray, k: int, rows: list[int] | None = None) -> np.ndarray:
    """Root sum over the leads (``rows``) of ``x[t] - (x[t-k] + x[t+k]) / 2`` (0 at the edges), in float64.

    One lead at a time into one buffer: the squares are summed lead after lead, which is the order of
    numpy's ``sum(axis=0)`` over a lead-first array (the same values), without a ``[C, T]`` temporary
    whose fresh pages would each fault in."""
    rows = list(range(x.shape[0])) if rows is None else rows
    out = np.zeros(x.shape[1])
    if x.shape[1] > 2 * k:
        n = x.shape[1] - 2 * k
        acc, mid = out[k:-k], np.empty(n)
        for j, r in enumerate(rows):
            xr = x[r]
            np.add(xr[: -2 * k], xr[2 * k :], out=mid, dtype=np.float64)
            mid *= 0.5
            np.subtract(xr[k:-k], mid, out=mid, dtype=np.float64)
            if j == 0:
                np.multiply(mid, mid, out=acc)
            else:
                mid *= mid
                acc += mid
        np.sqrt(acc, out=acc)
    return out


def _curvature_at(x: np.ndarray, k: int, idx: np.ndarray) -> np.ndarray:
    """:func:`_curvature` ``(x, k)`` at the samples ``idx`` only (the same arithmetic)."""
    out = np.zeros(idx.size)
    inside = (idx >= k) & (idx < x.shape[1] - k)
    if x.shape[1] > 2 * k and inside.any():
        i = idx[inside]
        mid = np.add(x[:, i - k], x[:, i + k], dtype=np.float64)
        mid *= 0.5
        mid = np.subtract(x[:, i], mid, dtype=np.float64)
        out[inside] = np.sqrt((mid * mid).sum(axis=0))
    return out


def pacing_of_beats(spikes: np.ndarray, beats: np.ndarray, fs: float) -> tuple[list[str | None], dict]:
    """Which beats were paced, and the window's ``paced`` dict (contract 7 v2).

    ``spikes`` and ``beats`` (QRS fiducials) are sample indices at ``fs``. Per beat: ``"v"`` (a spike just
    before or at its QRS), ``"a"`` (a spike before its P wave only), ``"av"`` (both), or ``None``.
    Returns ``(per_beat, {"atrial", "ventricular", "spikes", "assessable"})``.
    """
    if fs < MIN_FS:
        return [None] * len(beats), no_pacing(False)
    spikes = np.asarray(spikes, dtype=np.int64)
    beats = np.asarray(beats, dtype=np.int64)
    to_ms = 1000.0 / fs
    # every beat against every spike at once: rel[b, s] = (spike - beat) in ms
    rel = (spikes[None, :] - beats[:, None]) * to_ms
    v_all = ((rel >= V_SPIKE_MS[0]) & (rel <= V_SPIKE_MS[1])).any(axis=1).tolist()
    lo = np.full(beats.size, A_SPIKE_MS[0])
    if beats.size > 1:  # not before 200 ms after the previous beat
        lo[1:] = np.maximum(A_SPIKE_MS[0], (beats[:-1] - beats[1:]) * to_ms + 200.0)
    a_all = ((rel >= lo[:, None]) & (rel < A_SPIKE_MS[1])).any(axis=1).tolist()
    per_beat: list[str | None] = [
        "av" if a and v else "v" if v else "a" if a else None for a, v in zip(a_all, v_all, strict=True)
    ]
    n = max(len(per_beat), 1)
    share_v = sum(p in ("v", "av") for p in per_beat) / n
    share_a = sum(p in ("a", "av") for p in per_beat) / n
    paced = {
        "atrial": bool(share_a >= PACED_SHARE),
        "ventricular": bool(share_v >= PACED_SHARE),
        "spikes": int(spikes.size),
        "assessable": True,
    }
    return per_beat, paced
