"""Wave delineation per beat and per lead, and its robust combination over leads (numpy only).

The single-lead delineator follows the wavelet delineator of Martinez et al. ("A wavelet-based ECG
delineator: evaluation on standard databases", IEEE TBME 51(4), 2004): the signal at 250 Hz is transformed
with the a-trous quadratic-spline wavelet (scales 2^1..2^5; each scale is the slope of a progressively
smoothed signal). The scales and thresholds (:class:`DelineationParams`) were chosen one at a time on the
tuning half of the QT Database (records at even positions of RECORDS) and are reported on the held-out half
too (``bench/bench_qtdb.py``, docs/measurements.md); nothing here knows about the database.

- QRS on scale 2^3: the significant modulus maxima around the detector's fiducial (above ``qrs_peak`` of
  the largest, no more than ``qrs_gap_ms`` apart); the onset is where |W| falls below ``xi_qrs_on`` of the
  first maximum, walking back, the offset where it falls below ``xi_qrs_off`` of the last, walking on;
- T wave on scale 2^5, from ``t_start_ms`` after the fiducial to ``t_window_s`` x sqrt(RR) (at most 0.7 RR):
  the largest modulus maximum and its opposite-sign partner (the down-slope); the T end where |W5| falls
  below ``xi_t_end`` of the down-slope's maximum (the tangent method is there to be compared:
  ``t_end_method``; it did worse on the QT Database);
- P wave on scale 2^4, in the 250 ms before the QRS onset (not before the previous T end): the largest
  maximum and its opposite-sign partner; present when it reaches ``p_presence`` of the QRS's W4 maximum and
  ``p_min_mv`` in amplitude; onset/offset by ``xi_p_on`` / ``xi_p_off`` as for the QRS.

Boundaries are sample positions (fractional: linear interpolation at the threshold crossing) at
:data:`DELINEATION_FS`. :func:`combine_leads` merges the leads' boundaries of one beat with an ordered
statistic that one stray lead cannot move (the CSE programs' idea): from ``ORDERED_MIN_LEADS`` leads the
35th percentile of the onsets and the 65th of the ends; with fewer, the earliest onset / latest end among
the leads within ``spread_ms`` of the leads' median, and the median where they disagree by more.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge.dsp.beats import median  # np.nanmedian without numpy.ma (#23)

__all__ = [
    "BOUNDARIES",
    "DELINEATION_FS",
    "DelineationParams",
    "combine_leads",
    "delineate_beats",
    "delineate_lead",
    "delineate_leads",
    "p_waves",
    "scales_read",
    "wavelet_scales",
]

DELINEATION_FS = 250.0  # the wavelet scales below are those of Martinez et al. at 250 Hz
BOUNDARIES = ("p_on", "p_off", "qrs_on", "qrs_off", "t_end")
N_SCALES = 5
QRS_PEAK = 0.15  # a W2 modulus maximum counts in the QRS when above this fraction of the largest
QRS_GAP_MS = 80.0  # ... and no further than this from the previous one counted
P_MIN_MV = 0.02  # a P wave lower than this (peak to baseline) counts as absent
ORDERED_MIN_LEADS = 4  # from this many leads, combine_leads() takes a percentile of the leads (below)
ORDERED_PCT = 35.0  # ... the 35th percentile of the onsets and the 65th of the ends
P_PR_SPREAD_MS = 24.0  # p_waves(): a beat's P wave lies within this of the beats' usual PR


@dataclass(frozen=True)
class DelineationParams:
    """Thresholds of the single-lead delineator and of the combination over leads."""

    xi_qrs_on: float = 0.08  # |W2| below this fraction of the first QRS maximum: QRS onset
    xi_qrs_off: float = 0.2  # |W2| below this fraction of the last QRS maximum: QRS offset
    xi_p_on: float = 0.5  # |W4| below this fraction of the P wave's first maximum: P onset
    xi_p_off: float = 0.9  # |W4| below this fraction of the P wave's last maximum: P offset
    xi_t_end: float = 0.7  # |W4| below this fraction of the T wave's last maximum: T end (threshold method)
    t_end_method: str = "threshold"  # "threshold" (Martinez 2004) or "tangent"
    p_presence: float = 0.02  # P's W4 maximum above this fraction of the QRS's W4 maximum: P present
    p_min_mv: float = P_MIN_MV  # a P wave lower than this (peak to baseline) counts as absent
    p_mate: float = 0.2  # the P wave's second maximum is at least this fraction of its largest
    spread_ms: tuple[float, ...] = (20.0, 20.0, 12.0, 16.0, 40.0)  # per boundary (BOUNDARIES order)
    combine: str = "robust_extreme"  # "robust_extreme", "median", or "extreme"
    qrs_peak: float = QRS_PEAK  # a W2 modulus maximum counts in the QRS when above this fraction of the largest
    qrs_gap_ms: float = QRS_GAP_MS  # ... and no further than this from the previous one counted
    qrs_scale: int = 3  # the QRS is delineated on scale 2^qrs_scale
    t_scale: int = 5  # the T wave is delineated on scale 2^t_scale
    t_start_ms: float = 120.0  # the T wave is sought from this long after the fiducial (and 40 ms after the QRS)
    t_window_s: float = 0.5  # the T wave's maxima are sought up to this x sqrt(RR / 1 s) after the R (<= 0.7 RR)

    def with_(self, **kw) -> DelineationParams:
        return replace(self, **kw)


DEFAULT_PARAMS = DelineationParams()


def _filters() -> tuple[list[np.ndarray], np.ndarray]:
    """Equivalent impulse responses of the a-trous scales 2^1..2^5 and their gain on a unit ramp."""
    h = np.array([1.0, 3.0, 3.0, 1.0]) / 8.0
    acc = np.array([1.0])
    out = []
    for k in range(N_SCALES):
        up = 2**k
        g = np.zeros(up + 1)
        g[0], g[-1] = 2.0, -2.0
        out.append(np.convolve(acc, g))
        hk = np.zeros(3 * up + 1)
        hk[::up] = h
        acc = np.convolve(acc, hk)
    gains = np.array([np.convolve(np.arange(200.0), q, "valid")[0] for q in out])
    return out, np.abs(gains)


_FILTERS, _GAINS = _filters()
_PAD = max(q.size for q in _FILTERS)


def wavelet_scales(x: np.ndarray, only: tuple[int, ...] | None = None) -> np.ndarray:
    """``W[s, C, T]``: the wavelet transform at scales 2^1..2^5 of lead-first ``x[C, T]`` at 250 Hz.

    Each scale is divided by its gain on a ramp, so ``W[s]`` is the slope (per sample) of the signal
    smoothed at that scale. ``W[s][..., i]`` is the slope between samples ``i - 1`` and ``i`` (half a
    sample early; the boundary functions correct it). ``only``: the scales (1-5) to compute, the others NaN
    (the delineator reads three of the five: :func:`scales_read`).
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    c, t = x.shape
    xp = np.concatenate([np.repeat(x[:, :1], _PAD, axis=1), x, np.repeat(x[:, -1:], _PAD, axis=1)], axis=1)
    n = 1 << int(np.ceil(np.log2(xp.shape[1] + _PAD)))  # linear (not circular) convolution by FFT
    spec = np.fft.rfft(xp, n)
    out = np.empty((N_SCALES, c, t))
    for s, q in enumerate(_FILTERS):
        if only is not None and s + 1 not in only:
            out[s] = np.nan
            continue
        shift = (q.size - 1) // 2
        full = np.fft.irfft(spec * _spectrum(s, n), n)
        out[s] = full[:, _PAD + shift : _PAD + shift + t] / _GAINS[s]
    return out


def scales_read(params: DelineationParams = DEFAULT_PARAMS) -> tuple[int, ...]:
    """The wavelet scales (1-5) :func:`delineate_lead` reads with ``params`` (QRS, P and T scales)."""
    return tuple(sorted({params.qrs_scale, 4, params.t_scale}))


_SPECTRA: dict[tuple[int, int], np.ndarray] = {}


def _spectrum(s: int, n: int) -> np.ndarray:
    """The FFT (length ``n``) of scale ``s``'s impulse response, kept for the next window of that length."""
    key = (s, n)
    if key not in _SPECTRA:
        if len(_SPECTRA) > 64:
            _SPECTRA.clear()
        _SPECTRA[key] = np.fft.rfft(_FILTERS[s], n)
    return _SPECTRA[key]


class _Lead:
    """One lead's wavelet scales and samples (1-D sequences of Python floats), and per scale the positions of
    its modulus maxima and of its sign changes: the delineator's walks read a few samples at a time, where a
    numpy call per step costs more than the step."""

    __slots__ = ("changes", "maxima", "t", "wq", "wt", "w4", "x")

    def __init__(
        self, wq: Sequence, w4: Sequence, wt: Sequence, x: Sequence, maxima: tuple, changes: tuple, t: int
    ):
        self.wq, self.w4, self.wt, self.x, self.t = wq, w4, wt, x, t
        self.maxima, self.changes = maxima, changes


def _prepare(w: np.ndarray, x: np.ndarray, params: DelineationParams) -> list[_Lead]:
    """``w[5, C, T]`` (:func:`wavelet_scales`) and ``x[C, T]``: every lead's rows as memoryviews (a sample
    becomes a Python float only when the walks read it: a whole-row ``tolist`` cost more than the walks), and
    the modulus maxima of the three scales read (``|W|`` above its left neighbour and not below its right
    one) and their sign changes (``k``: the sign of ``W[k + 1]`` differs from ``W[k]``'s), found for every
    lead and scale in one numpy pass each."""
    scales = (params.qrs_scale - 1, 3, params.t_scale - 1)
    used = sorted(set(scales))
    sel = np.ascontiguousarray(np.asarray(w, dtype=np.float64)[used])  # [S, C, T]
    n_s, n_c, t = sel.shape
    flat_w = memoryview(sel.reshape(-1))
    flat_x = memoryview(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))
    grouped: list[list[int]] = [[] for _ in range(n_s * n_c)]
    changes: list[list[int]] = [[] for _ in range(n_s * n_c)]
    if t >= 3:
        a = np.abs(sel)
        grouped = _by_row((a[..., 1:-1] > a[..., :-2]) & (a[..., 1:-1] >= a[..., 2:]), 1)
        sg = np.sign(sel)
        changes = _by_row(sg[..., 1:] != sg[..., :-1], 0)
    k = [used.index(s) for s in scales]

    def view(j: int, c: int) -> memoryview:
        return flat_w[(k[j] * n_c + c) * t : (k[j] * n_c + c + 1) * t]

    return [
        _Lead(view(0, c), view(1, c), view(2, c), flat_x[c * t : (c + 1) * t],
              tuple(grouped[k[j] * n_c + c] for j in range(3)), tuple(changes[k[j] * n_c + c] for j in range(3)), t)
        for c in range(n_c)
    ]


def _by_row(mask: np.ndarray, offset: int) -> list[list[int]]:
    """The True positions (+ ``offset``) of every row of ``mask[S, C, L]``, row by row (``S * C`` lists)."""
    rows = mask.shape[0] * mask.shape[1]
    row, pos = np.divmod(np.flatnonzero(mask), mask.shape[2])  # row = scale * C + lead
    cuts = np.searchsorted(row, np.arange(rows + 1)).tolist()
    pos = (pos + offset).tolist()
    return [pos[cuts[r] : cuts[r + 1]] for r in range(rows)]


def _extrema(maxima: list[int], lo: int, hi: int) -> list[int]:
    """The modulus maxima in ``[lo, hi)`` (positions 1 .. T - 2 can be maxima)."""
    return maxima[bisect.bisect_left(maxima, lo) : bisect.bisect_left(maxima, hi)]


def _cross_abs(w: Sequence, start: int, thr: float, step: int, limit: int) -> float | None:
    """Fractional position where ``|w|`` first falls below ``thr`` walking from ``start`` by ``step``,
    no further than ``limit`` (nor the signal's ends); ``None`` when it does not."""
    end = min(limit, len(w) - 1) if step > 0 else max(limit, 0)
    prev = abs(w[start])
    for i in range(start + step, end + step, step):
        v = abs(w[i])
        if v < thr:
            frac = (prev - thr) / max(prev - v, 1e-12)
            return start + step * (abs(i - start) - 1 + frac)
        prev = v
    return None


def _first_sign_change(changes: list[int], a: int, b: int) -> int | None:
    """Offset from ``a`` of the first sample in ``w[a : b + 1]`` whose sign differs from the next one's
    (``changes``: the lead's sign changes, :func:`_prepare`)."""
    j = bisect.bisect_left(changes, a)
    return changes[j] - a if j < len(changes) and changes[j] <= b - 1 else None


def _sign(v: float) -> int:
    return (v > 0) - (v < 0)


def delineate_lead(
    w: np.ndarray,
    x: np.ndarray,
    r: int,
    rr: float,
    prev_t_end: float | None = None,
    params: DelineationParams = DEFAULT_PARAMS,
) -> dict:
    """One beat in one lead: ``{p_on, p_peak, p_off, qrs_on, qrs_off, t_peak, t_end, p_present, ...}``.

    ``w[5, T]`` is :func:`wavelet_scales` of the lead, ``x[T]`` the lead (mV, 250 Hz), ``r`` the beat's
    fiducial sample, ``rr`` the local RR interval (samples). Positions are fractional samples; a
    boundary not found is ``None``.
    """
    lead = _prepare(np.asarray(w)[:, None, :], np.asarray(x)[None, :], params)[0]
    return _delineate(lead, r, rr, prev_t_end, params)


def delineate_leads(
    w: np.ndarray, x: np.ndarray, r: int, rr: float, params: DelineationParams = DEFAULT_PARAMS
) -> list[dict]:
    """:func:`delineate_lead` of one beat in every lead of ``x[C, T]`` (``w[5, C, T]``)."""
    return [_delineate(lead, r, rr, None, params) for lead in _prepare(w, x, params)]


def _delineate(lead: _Lead, r: int, rr: float, prev_t_end: float | None, params: DelineationParams) -> dict:
    """:func:`delineate_lead` on a prepared lead (plain Python on the few modulus maxima of each wave)."""
    fs = DELINEATION_FS
    ms = fs / 1000.0
    out: dict = dict.fromkeys(("p_on", "p_peak", "p_off", "qrs_on", "qrs_off", "t_peak", "t_end"))
    out["p_present"] = None
    t = lead.t
    wq, w4, wt, x = lead.wq, lead.w4, lead.wt, lead.x
    m_q, m_4, m_t = lead.maxima
    # --- QRS on scale 2^qrs_scale
    lo, hi = max(1, r - int(120 * ms)), min(t - 1, r + int(120 * ms))
    ext = _extrema(m_q, lo, hi)
    if not ext:
        return out
    amp = [abs(wq[i]) for i in ext]
    big = amp.index(max(amp))
    thr_sig = params.qrs_peak * amp[big]
    first = last = big
    gap = int(params.qrs_gap_ms * ms)
    for j in range(big - 1, -1, -1):
        if ext[first] - ext[j] > gap:
            break
        if amp[j] >= thr_sig:
            first = j
    for j in range(big + 1, len(ext)):
        if ext[j] - ext[last] > gap:
            break
        if amp[j] >= thr_sig:
            last = j
    n_first, n_last = ext[first], ext[last]
    on = _cross_abs(wq, n_first, params.xi_qrs_on * abs(wq[n_first]), -1, n_first - int(100 * ms))
    off = _cross_abs(wq, n_last, params.xi_qrs_off * abs(wq[n_last]), 1, n_last + int(120 * ms))
    if on is None or off is None:
        return out
    out["qrs_on"], out["qrs_off"] = on - 0.5, off - 0.5
    q_on, q_off = int(on), math.ceil(off)
    base = _median_sorted(sorted(x[max(0, q_on - int(20 * ms)) : q_on + 1]))
    out["baseline"] = base
    qrs_w4 = max(map(abs, w4[max(0, q_on) : min(t, q_off + 1)]))
    # --- T wave on scale 2^t_scale
    t_lo = max(q_off + int(40 * ms), r + int(params.t_start_ms * ms))
    t_hi = min(t - 1, r + int(min(0.7 * rr, params.t_window_s * np.sqrt(rr / fs) * fs)))
    ext = _extrema(m_t, t_lo, t_hi)
    if ext:
        amp = [abs(wt[i]) for i in ext]
        sg = [_sign(wt[i]) for i in ext]
        big = amp.index(max(amp))
        later = [j for j in range(big + 1, len(ext)) if amp[j] >= 0.3 * amp[big]]
        sign = sg[big]
        after = [j for j in later if sg[j] != sign]
        if after:
            n_peak, n_last = ext[big], ext[after[0]]
        else:  # the largest maximum is the down-slope itself (the up-slope's maximum is smaller or earlier)
            before = [j for j in range(big) if amp[j] >= 0.3 * amp[big] and sg[j] != sign]
            n_peak, n_last = (ext[before[-1]] if before else None), ext[big]
        if n_peak is not None:
            zc = _first_sign_change(lead.changes[2], n_peak, n_last)
            out["t_peak"] = None if zc is None else float(n_peak + zc + 0.5)
        limit = min(t - 1, r + int(rr) - int(60 * ms)) if rr > 0 else t - 1
        if params.t_end_method == "tangent":
            slope = wt[n_last]
            if abs(slope) > 1e-9:
                end = n_last - 0.5 + (base - x[n_last]) / slope
                if n_last < end < limit:
                    out["t_end"] = float(end)
        else:
            end = _cross_abs(wt, n_last, params.xi_t_end * abs(wt[n_last]), 1, limit)
            out["t_end"] = None if end is None else end - 0.5
    # --- P wave on scale 2^4
    p_hi = q_on - int(4 * ms)
    p_lo = max(0, q_on - int(250 * ms))
    if prev_t_end is None and out["t_end"] is not None and rr > 0:
        prev_t_end = out["t_end"] - rr  # the previous beat's T end, as this beat's (a regular rhythm)
    if prev_t_end is not None:
        p_lo = max(p_lo, int(prev_t_end))
    ext = _extrema(m_4, p_lo, p_hi)
    if len(ext) >= 2:
        amp = [abs(w4[i]) for i in ext]
        sg = [_sign(w4[i]) for i in ext]
        big = amp.index(max(amp))
        sign = sg[big]
        partners = [j for j in range(len(ext)) if j != big and sg[j] != sign]
        partners = [j for j in partners if abs(ext[j] - ext[big]) <= int(100 * ms)]
        if partners:
            mate = max(partners, key=lambda j: amp[j])
            a, b = sorted((big, mate))
            n_first, n_last = ext[a], ext[b]
            zc = _first_sign_change(lead.changes[1], n_first, n_last)
            peak = n_first + zc if zc is not None else (n_first + n_last) // 2
            height = abs(x[peak] - base)
            present = (
                amp[big] >= params.p_presence * qrs_w4
                and height >= params.p_min_mv
                and amp[mate] >= params.p_mate * amp[big]
            )
            out["p_present"] = bool(present)
            if present:
                p_on = _cross_abs(
                    w4, n_first, params.xi_p_on * amp[a], -1, max(0, n_first - int(80 * ms))
                )
                p_off = _cross_abs(
                    w4, n_last, params.xi_p_off * amp[b], 1, min(q_on, n_last + int(80 * ms))
                )
                out["p_peak"] = float(peak)
                out["p_on"] = None if p_on is None else p_on - 0.5
                out["p_off"] = None if p_off is None else p_off - 0.5
        else:
            out["p_present"] = False
    elif p_hi - p_lo > int(40 * ms):
        out["p_present"] = False
    return out


def combine_leads(
    values: np.ndarray, boundary: str, params: DelineationParams = DEFAULT_PARAMS
) -> float | None:
    """One boundary of one beat from the leads' values (NaN where a lead found none).

    Onsets take the earliest and ends the latest of the leads within ``spread_ms`` of the leads' median
    (``robust_extreme``), so one lead's stray boundary is ignored; ``median`` and ``extreme`` (plain
    earliest/latest) are there to be compared on the QT Database.
    """
    # a dozen leads at most: plain Python on the sorted values (np.median / np.percentile's own arithmetic,
    # checked against them in tests/test_delineate.py, without their per-call cost)
    v = sorted(float(a) for a in np.asarray(values, dtype=np.float64).ravel() if math.isfinite(a))
    if not v:
        return None
    onset = boundary.endswith("_on")
    med = _median_sorted(v)
    if params.combine == "median" or len(v) == 1:
        return med
    if params.combine == "extreme":
        return v[0] if onset else v[-1]
    if len(v) >= ORDERED_MIN_LEADS:  # many leads: a low / high percentile of the leads' boundaries
        return _percentile_sorted(v, ORDERED_PCT if onset else 100 - ORDERED_PCT)
    spread = params.spread_ms[BOUNDARIES.index(boundary)] * DELINEATION_FS / 1000.0
    near = [a for a in v if abs(a - med) <= spread]
    if len(near) < 2:
        return med
    return near[0] if onset else near[-1]


def _median_sorted(v: list[float]) -> float:
    """``np.median`` of the sorted values ``v`` (the mean of the two middle ones for an even count)."""
    n = len(v)
    if n == 0:
        return math.nan
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2.0


def _percentile_sorted(v: list[float], q: float) -> float:
    """``np.percentile(v, q)`` (linear interpolation, numpy's own arithmetic) of the sorted values ``v``."""
    vi = (len(v) - 1) * (q / 100.0)
    lo = int(math.floor(vi))
    hi = min(lo + 1, len(v) - 1)
    g = vi - lo
    a, b = v[lo], v[hi]
    d = b - a
    return b - d * (1.0 - g) if g >= 0.5 else a + d * g


def delineate_beats(
    x: np.ndarray, beats: np.ndarray, params: DelineationParams = DEFAULT_PARAMS, w: np.ndarray | None = None
) -> tuple[list[list[dict]], list[dict]]:
    """Every beat in every lead of ``x[C, T]`` (mV, 250 Hz, band-passed), and the leads combined.

    ``beats`` are fiducial samples at 250 Hz. Returns ``(per_lead, combined)``: ``per_lead[c][b]`` is
    :func:`delineate_lead`'s dict, ``combined[b]`` has the :data:`BOUNDARIES` (fractional samples or
    ``None``) and ``p_present`` (the majority of the leads that could tell).
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    beats = np.asarray(beats, dtype=np.int64)
    if w is None:
        w = wavelet_scales(x)
    per_lead: list[list[dict]] = [[] for _ in range(x.shape[0])]
    rr_all = np.diff(beats)
    for c, lead in enumerate(_prepare(w, x, params)):
        prev_t = None
        for b, r in enumerate(beats):
            rr = float(rr_all[b - 1] if b > 0 else (rr_all[0] if rr_all.size else DELINEATION_FS))
            rr_next = float(rr_all[b] if b < rr_all.size else rr)
            d = _delineate(lead, int(r), rr_next, prev_t if b > 0 else None, params)
            if d["t_end"] is None and b > 0:
                d["prev_rr"] = rr
            per_lead[c].append(d)
            prev_t = d["t_end"]
    combined = []
    for b in range(beats.size):
        row: dict = {}
        for name in BOUNDARIES:
            vals = np.array(
                [np.nan if per_lead[c][b][name] is None else per_lead[c][b][name] for c in range(x.shape[0])]
            )
            row[name] = combine_leads(vals, name, params)
        votes = [
            per_lead[c][b]["p_present"] for c in range(x.shape[0]) if per_lead[c][b]["p_present"] is not None
        ]
        row["p_present"] = None if not votes else sum(votes) * 2 >= len(votes)
        if not row["p_present"]:
            row["p_on"] = row["p_off"] = None
        combined.append(row)
    return per_lead, combined


def p_waves(x: np.ndarray, fs: float, beats: np.ndarray) -> list[bool | None]:
    """Whether a P wave precedes each beat (``None`` where it cannot be told), for the rhythm analysis.

    ``x[C, T]``: band-passed leads (mV) at ``fs``; ``beats``: QRS samples at ``fs``. The leads are taken
    to 250 Hz by linear interpolation (they are band-limited well below 125 Hz), delineated per beat, and
    a beat has a P wave when most leads that could tell found one.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    beats = np.asarray(beats, dtype=np.float64)
    if beats.size == 0:
        return []
    if fs != DELINEATION_FS:
        n = int(round(x.shape[1] * DELINEATION_FS / fs))
        t_new = np.arange(n) * fs / DELINEATION_FS
        x = np.stack([np.interp(t_new, np.arange(x.shape[1]), lead) for lead in x])
        beats = beats * DELINEATION_FS / fs
    _, combined = delineate_beats(x, np.rint(beats).astype(np.int64))
    # a P wave conducted to its QRS keeps its PR: a wave found at a PR far from the beats' usual one is an
    # atrial wave that happened to be there (fibrillation, flutter), not this beat's P wave
    pr = np.array([np.nan if r["p_on"] is None else r["qrs_on"] - r["p_on"] for r in combined])
    if np.isfinite(pr).sum() < 2:
        return [False if row["p_present"] is False else None for row in combined]
    usual = float(median(pr[~np.isnan(pr)]))  # np.nanmedian's value without numpy.ma (#23)
    near = np.abs(pr - usual) <= P_PR_SPREAD_MS * DELINEATION_FS / 1000.0
    if near.sum() * 2 < len(combined):  # no usual PR: the waves are not conducted P waves
        return [False if row["p_present"] is not None else None for row in combined]
    return [
        None if row["p_present"] is None else bool(row["p_present"] and ok)
        for row, ok in zip(combined, near, strict=True)
    ]
