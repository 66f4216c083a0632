"""Beat types and the P wave before each beat (DESIGN.md contract 7 v2 ``beats``).

Each detected beat gets a type, as the AAMI EC57 beat classes and the AHA statement list name them:

- ``N`` dominant (the window's most common QRS shape, on time),
- ``S`` premature supraventricular (early, QRS of the dominant shape, or narrow with a P wave),
- ``V`` premature ventricular (QRS of another shape, wide or very different, without a P wave before it;
  a late one of that shape is a ventricular escape beat and is typed ``V`` too),
- ``P`` paced (a pacing spike before its QRS or P wave, or of the shape of beats that have one: at 500 Hz a
  spike is under-sampled in some beats),
- ``Q`` unclassified (another shape, neither early nor wide).

Shapes: the QRS (+-60 ms, all given leads) of every pair of beats is correlated; the beats are clustered
greedily (the beat with the most partners at correlation >= ``SAME_SHAPE`` and its partners first), and the
dominant cluster is the largest (on a tie, the narrower, then the one with P waves). A beat is early when its RR
is below ``PREMATURE`` x the RR expected there (the median RR between dominant beats). QRS width per cluster:
the span where the cluster's median beat's spatial velocity exceeds ``WIDTH_FRACTION`` of its peak.

P wave before a beat: the dominant beats' median of the segment ``P_WINDOW_MS`` before the QRS fiducial
(detrended between its ends, per lead) is the P template when it holds a wave of at least ``P_MIN_MV`` above the
beat-to-beat noise; a beat has a P wave when its own segment correlates >= ``P_CORR`` with that template at a
similar size, or (for a beat of another shape, e.g. an atrial premature beat with its own P) when its segment
holds a wave of the template's size. Without a P template no beat has a P wave (atrial fibrillation, junctional
rhythm); ``p`` is ``None`` where the segment runs into the previous beat. (The P template, the per-beat tests
and their thresholds ``P_MIN_MV``, ``P_CORR``, ``P_SIZE`` are in :mod:`edge.dsp.atrial`, with the atrial activity.)

``(y, fs, beats)``: lead-first band-passed ``y[C, T]`` in mV at ``fs`` (the measurements' 500 Hz), beat fiducials
as sample indices at ``fs``. numpy only (device code).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edge.dsp.atrial import detrend, p_wave_template, p_wave_tests, template_pr_ms
from edge.dsp.beats import median
from edge.dsp.pacing import sorted_median

__all__ = ["BEAT_TYPES", "type_beats", "paced_summary"]

BEAT_TYPES = ("N", "S", "V", "P", "Q")
_INDEPENDENT = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
SAME_SHAPE = 0.85  # QRS correlation for two beats of one shape
NEAR_SHAPE = (
    0.7  # a shape whose median beat correlates this much with the dominant one, as narrow, is dominant
)
ALIGN_MS = 24.0  # fiducials are re-aligned on the QRS shape by up to this much
PREMATURE = 0.85  # RR below this fraction of the expected RR: premature
WIDE_EXTRA_MS = 30.0  # a shape this much wider than the dominant one is ventricular
WIDE_QRS_MS = 120.0
WIDTH_FRACTION = 0.07
QRS_HALF_MS = 60.0
P_WINDOW_MS = (-360.0, -70.0)  # the segment before the QRS fiducial searched for the P wave (at slow rates)


def _segments(
    y: np.ndarray, beats: np.ndarray, lo: int, hi: int, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``[B, C, hi - lo]`` segments around the beats that fit in the window, and the mask of those beats.

    ``rows``: the rows of ``y`` to take (all when None), taken after the segments (no copy of ``y[rows]``)."""
    ok = (beats + lo >= 0) & (beats + hi <= y.shape[1])
    idx = beats[ok][:, None] + _arange(lo, hi)[None, :]
    return _gather(y, rows, idx), ok


def _gather(y: np.ndarray, rows: np.ndarray | None, idx: np.ndarray) -> np.ndarray:
    """``y[rows][:, idx].transpose(1, 0, 2)`` for sample indices ``idx[B, W]`` (``[B, C, W]``, a transposed
    view): the samples of all leads taken at once (a small index array), then the rows."""
    g = y.take(idx, axis=1)
    return (g if rows is None else g[rows]).transpose(1, 0, 2)


_CONST: dict[tuple, np.ndarray] = {}


def _kept(key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
    """``make()``'s array, kept for the next window of the same ``key`` (read only)."""
    if key not in _CONST:
        if len(_CONST) > 64:
            _CONST.clear()
        _CONST[key] = make()
        _CONST[key].flags.writeable = False
    return _CONST[key]


def _arange(lo: int, hi: int) -> np.ndarray:
    return _kept(("arange", lo, hi), lambda: np.arange(lo, hi))


def _corr_matrix(seg: np.ndarray) -> np.ndarray:
    flat = seg.reshape(seg.shape[0], -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1)
    flat = flat / np.maximum(norm, 1e-12)[:, None]
    return flat @ flat.T


def _clusters(corr: np.ndarray) -> np.ndarray:
    """Greedy shape clusters: label per beat (0, 1, ...), clusters in the order found."""
    n = corr.shape[0]
    label = np.full(n, -1)
    same = corr >= SAME_SHAPE
    k = 0
    while (label < 0).any():
        free = label < 0
        partners = (same & free[None, :] & free[:, None]).sum(axis=1)
        partners[~free] = -1
        seed = int(np.argmax(partners))
        members = free & same[seed]
        members[seed] = True
        label[members] = k
        k += 1
    return label


def _bank(tmpl: np.ndarray, width: int, shifts: int, step: int) -> np.ndarray:
    """``[C * width, shifts]`` whose column ``j`` holds ``tmpl[C, w]`` shifted by ``j * step`` samples within
    a flattened ``[C, width]`` segment, zero elsewhere (written through one strided view)."""
    nc, w = tmpl.shape
    buf = np.zeros(nc * width * shifts)
    it = buf.itemsize
    view = np.lib.stride_tricks.as_strided(
        buf, shape=(nc, w, shifts), strides=(width * shifts * it, shifts * it, (step * shifts + 1) * it)
    )
    view[...] = tmpl[:, :, None]
    return buf.reshape(nc * width, shifts)


def _align(
    y: np.ndarray, beats: np.ndarray, half: int, lag: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """Fiducials moved (by at most ``lag`` samples) to best match the median QRS of all beats.

    The detector's fiducial (steepest point) can sit on the R up-stroke in one beat and the down-stroke in the
    next; shapes are compared after this alignment. Score of a shift: the correlation of the beat's shifted
    QRS (all leads, centred) with the centred median QRS. All shifts of all beats in one matrix product: the
    shifted templates as the columns of a banded matrix, so the products with the template, the sums and
    the sums of squares of every shifted segment come out at once (the centred norm as sum of squares minus
    sum squared over n: the same correlation up to rounding in the last places)."""
    seg, fit = _segments(y, beats, -half - lag, half + lag, rows)
    if fit.sum() < 2:
        return beats
    core = seg[:, :, lag:-lag]
    tmpl = median(core, axis=0)
    tmpl = (tmpl - tmpl.mean()).ravel()
    t_norm = np.linalg.norm(tmpl)
    nb, nc, width = seg.shape
    w = core.shape[2]
    shifts = np.arange(-lag, lag + 1, 2)  # 4 ms steps at 500 Hz: finer than the shape comparison needs
    ones = _kept(("ones", nc, width, w, shifts.size), lambda: _bank(np.ones((nc, w)), width, shifts.size, 2))
    x = seg.reshape(nb, nc * width)
    dot = x @ _bank(tmpl.reshape(nc, w), width, shifts.size, 2)
    s1 = x @ ones
    s2 = (x * x) @ ones
    n = float(nc * w)
    dot -= s1 * (tmpl.sum() / n)
    norm = np.sqrt(np.maximum(s2 - s1 * s1 / n, 0.0))
    c = dot / np.maximum(norm * t_norm, 1e-12)
    # the first shift with the highest score (a NaN score never wins; none at all: no shift)
    c[np.isnan(c)] = -np.inf
    pick = np.argmax(c, axis=1)
    best = shifts[pick]
    best[np.isneginf(c[np.arange(nb), pick])] = 0
    out = beats.copy()
    out[fit] = beats[fit] + best
    return out


def _gradient(a: np.ndarray) -> np.ndarray:
    """``np.gradient(a, axis=1)`` (unit spacing, first-order edges) with numpy's arithmetic, without its
    per-call set-up (it is called for every beat shape)."""
    if a.shape[1] < 2:
        return np.gradient(a, axis=1)
    d = np.empty_like(a, dtype=np.result_type(a.dtype, np.float64))
    d[:, 1:-1] = (a[:, 2:] - a[:, :-2]) / 2.0
    d[:, 0] = a[:, 1] - a[:, 0]
    d[:, -1] = a[:, -1] - a[:, -2]
    return d


def _shape_figures(mean_beat: np.ndarray, fs: float) -> tuple[float, int | None]:
    """QRS width (ms) and QRS onset (samples from the fiducial, negative; None when flat) of a shape's mean
    beat ``[C, W]`` centred on its fiducial: the span where its spatial velocity reaches ``WIDTH_FRACTION`` of
    its peak, and the first sample of that span (one gradient for both)."""
    d = _gradient(mean_beat)
    sv = np.sqrt((d * d).sum(axis=0))
    above = np.flatnonzero(sv >= WIDTH_FRACTION * sv.max())
    if not above.size:
        return 0.0, None
    return float(above[-1] - above[0] + 1) * 1000.0 / fs, int(above[0]) - mean_beat.shape[1] // 2


def type_beats(
    y: np.ndarray,
    fs: float,
    beats: np.ndarray,
    pacing: list[str | None] | None = None,
    info: dict | None = None,
    rows: list[int] | np.ndarray | None = None,
) -> list[dict]:
    """Per beat ``{"sample", "type", "p"}`` (``sample`` at ``fs``; ``p`` True/False/None), plus ``"paced"``
    (``"a"``, ``"v"``, ``"av"``) where a pacing spike marks it. See the module docstring.

    ``rows``: the rows (leads) of ``y`` to use, all when None (the same as passing ``y[rows]``, without that
    copy). ``info``, when given, receives ``p_template`` (the dominant beats' P segment ``[C, W]``, or None)."""
    beats = np.asarray(beats, dtype=np.int64)
    n = beats.size
    out = [{"sample": int(b), "type": "Q", "p": None} for b in beats]
    if n == 0:
        return out
    rows = None if rows is None else np.asarray(rows, dtype=np.intp)
    pacing = list(pacing) if pacing is not None else [None] * n
    half = int(QRS_HALF_MS * fs / 1000.0)
    beats = _align(y, beats, half, int(ALIGN_MS * fs / 1000.0), rows)
    seg, fit = _segments(y, beats, -half, half, rows)
    label = np.full(n, -1)
    if fit.any():
        label[fit] = _clusters(_corr_matrix(seg))
    ids = list(range(label.max() + 1))
    # widths on +-100 ms (a wide QRS does not fit the +-60 ms compared for shape), and the QRS onset of each
    # shape from the same mean beat (its beats correlate >= SAME_SHAPE already, and a mean costs far less than
    # a median)
    wseg, wfit = _segments(y, beats, -int(0.1 * fs), int(0.1 * fs), rows)
    wlab = label[wfit]
    width: dict[int, float] = {}
    onset: dict[int, int | None] = {}
    for k in ids:
        sel = wlab == k
        width[k], onset[k] = _shape_figures(wseg[sel].mean(axis=0), fs) if sel.any() else (0.0, None)
    count = dict(zip(ids, np.bincount(label[label >= 0], minlength=len(ids)).tolist(), strict=False))
    # pacing spikes are under-sampled at 500 Hz (and the spike itself changes the filtered QRS): when >= 2
    # beats and a fifth of all carry the same mark, the window is paced that way and so are its dominant beats
    marks = [m for m in pacing if m]
    common = max(set(marks), key=marks.count) if marks else None
    window_mark = common if common and marks.count(common) >= max(2, 0.2 * n) else None
    rr = np.diff(beats) / fs
    # P waves (needs the dominant shape first; ties broken by width, then by P presence)
    # at fast rates the P wave sits closer to the QRS (and the previous T wave closer still): the window
    # starts at most 0.5 RR before the fiducial (a long PR, first-degree block, needs the full 360 ms)
    rr_med = sorted_median(rr.tolist()) if rr.size else 1.0
    p_lo = int(max(P_WINDOW_MS[0], -max(150.0, 500.0 * rr_med)) * fs / 1000.0)
    p_hi = int(P_WINDOW_MS[1] * fs / 1000.0)
    # ... and ends 10 ms before the QRS onset of the most common shape (a wide QRS starts well before its
    # steepest point, the fiducial)
    if ids:
        big = max(ids, key=lambda k: count[k])
        if onset[big] is not None:
            p_hi = min(p_hi, onset[big] - int(0.01 * fs))
    # the P segments beat-first in memory ([B, C, W] C-ordered: one row per beat below)
    p_ok = (beats + p_lo >= 0) & (beats + p_hi <= y.shape[1])
    pseg = _gather(y, rows, beats[p_ok][:, None] + _arange(p_lo, p_hi)[None, :])
    pseg = detrend(pseg) if pseg.size else pseg
    pfit_idx = np.flatnonzero(p_ok)

    def p_template(k: int) -> np.ndarray | None:
        return p_wave_template(pseg[np.flatnonzero(label[pfit_idx] == k)])

    if ids:  # the largest shape; on a tie the narrower, then the one with P waves (computed only for ties)
        top = max((count[k], -width[k]) for k in ids)
        tied = [k for k in ids if (count[k], -width[k]) == top]
        dominant = tied[0] if len(tied) == 1 else max(tied, key=lambda k: p_template(k) is not None)
    else:
        dominant = -1
    tmpl = p_template(dominant) if dominant >= 0 else None
    if info is not None:
        info["p_template"] = tmpl
        info["pr_ms"] = template_pr_ms(tmpl, p_lo, onset[dominant] if dominant >= 0 else None, fs)
        info["dominant_qrs_ms"] = round(width[dominant], 1) if dominant >= 0 and width[dominant] > 0 else None
    lab, rr_l, at = label.tolist(), rr.tolist(), beats.tolist()  # plain Python for the per-beat loops
    dom_rr = [rr_l[i - 1] for i in range(1, n) if lab[i] == dominant and lab[i - 1] == dominant]
    expected = sorted_median(dom_rr) if dom_rr else sorted_median(rr_l) if rr_l else 0.0
    too_close, fitting = -p_lo + int(0.15 * fs), pfit_idx.tolist()
    if tmpl is not None and fitting:
        by_shape, by_own = p_wave_tests(pseg, tmpl)
    for j, i in enumerate(fitting):
        if tmpl is None:
            out[i]["p"] = False
        elif not (i >= 1 and (at[i] - at[i - 1]) < too_close):  # else it runs into the previous QRS-T: None
            out[i]["p"] = bool(by_shape[j] or (lab[i] != dominant and by_own[j]))
    wide_dom = width.get(dominant, 0.0)
    # a shape close to the dominant one (respiration, electrode motion split one shape in two) is dominant
    near: set[int] = set()
    close = [k for k in ids if k != dominant and width[k] < wide_dom + WIDE_EXTRA_MS]
    if close:
        lab_fit = label[fit]
        med_dom = seg[lab_fit == dominant].mean(axis=0)
        for k in close:
            if _corr_matrix(np.stack([seg[lab_fit == k].mean(axis=0), med_dom]))[0, 1] >= NEAR_SHAPE:
                near.add(k)
    for i in range(n):
        k = lab[i]
        early = i >= 1 and expected > 0 and rr_l[i - 1] < PREMATURE * expected
        if pacing[i] or (window_mark and (k == dominant or k in near)):
            out[i]["type"] = "P"
            out[i]["paced"] = pacing[i] or window_mark
        elif k < 0:
            out[i]["type"] = "Q"
        elif k == dominant or k in near:
            out[i]["type"] = "S" if early else "N"
        else:
            wider = width[k] >= max(WIDE_QRS_MS, wide_dom + WIDE_EXTRA_MS) or width[k] >= wide_dom + 40.0
            if wider and not out[i]["p"]:
                out[i]["type"] = "V"
            elif early:
                out[i]["type"] = "S" if not wider else "V"
            else:
                out[i]["type"] = "Q"
    return out


def paced_summary(typed: list[dict], spikes: int, share: float = 0.3) -> dict:
    """The window's ``paced`` dict from typed beats: a chamber is paced in >= ``share`` of the beats."""
    n = max(len(typed), 1)
    marks = [b.get("paced") for b in typed]
    return {
        "atrial": bool(sum(m in ("a", "av") for m in marks) / n >= share),
        "ventricular": bool(sum(m in ("v", "av") for m in marks) / n >= share),
        "spikes": int(spikes),
        "assessable": True,
    }


def annotate_beats(
    x_raw: np.ndarray,
    fs: float,
    leads: list[str] | tuple[str, ...],
    y: np.ndarray | None = None,
    beats: np.ndarray | None = None,
    analysis_fs: float = 500.0,
) -> dict:
    """What the rhythm analysis reads, for any set of leads: ``{"beats", "paced", "atrial"}``.

    ``x_raw[C, T]``: the unfiltered window in mV at ``fs`` (pacing spikes are found on it), ``leads`` its
    canonical lead names. ``y`` (the leads band-passed 0.5-100 Hz at ``analysis_fs``) and ``beats`` (QRS
    fiducials at ``analysis_fs``) are computed here when not given (``measure()`` passes its own).
    Keys as contract 7 v2 (:mod:`edge.dsp.measurements`) and two of the rhythm's own: ``dominant_qrs_ms``
    (QRS width of the dominant beats' median, all given leads: for records without the 12 leads),
    ``template_pr_ms`` (PR of the dominant beats' P template and median QRS), ``beats`` (QRS positions, samples at ``fs``),
    ``beat_types`` (``N, S, V, P, Q`` per beat), ``beat_p`` (P wave before each beat: True/False/None),
    ``beat_paced`` (``"a"``, ``"v"``, ``"av"`` or None per beat), ``paced`` (``{"atrial", "ventricular",
    "spikes", "assessable"}``), ``atrial`` (:func:`edge.dsp.atrial.atrial_activity`, ``p_waves`` at ``fs``,
    and the P template's signed peak in I and II: ``p_i_mv``, ``p_ii_mv``).
    """
    from edge.dsp.atrial import atrial_activity  # noqa: PLC0415 - one way: beat_types -> atrial
    from edge.dsp.beats import QRS_BAND_HZ, detection_envelope, pick_beats  # noqa: PLC0415
    from edge.dsp.pacing import MIN_FS, find_spikes, no_pacing, pacing_of_beats  # noqa: PLC0415
    from edge.dsp.signal import filter_resample_bands  # noqa: PLC0415

    x = np.asarray(x_raw)  # float32 or float64: find_spikes works in float64 either way
    # shapes, P waves and spikes on the independent leads (III, aVR, aVL, aVF are their sums: no new
    # information, a third more work)
    names = list(leads)
    rows = [i for i, nm in enumerate(names) if nm in _INDEPENDENT]
    rows = rows if len(rows) >= 2 and len(rows) < len(names) else list(range(len(names)))
    if y is None or beats is None:
        y_, qrs = filter_resample_bands(x.astype(np.float64), fs, analysis_fs, [(0.5, 100.0), QRS_BAND_HZ])
        y = y_.astype(np.float64) if y is None else y
        if beats is None:
            sv, env = detection_envelope(qrs.astype(np.float64), analysis_fs)
            beats = pick_beats(sv, env, analysis_fs)
    beats = np.asarray(beats, dtype=np.int64)
    scale = fs / analysis_fs
    at_fs = np.rint(beats * scale).astype(np.int64)
    if fs >= MIN_FS:
        spikes = find_spikes(x, fs, rows)
        marks, _ = pacing_of_beats(spikes, at_fs, fs)
    else:
        spikes, marks = np.zeros(0, dtype=np.int64), [None] * beats.size
    info: dict = {}
    typed = type_beats(y, analysis_fs, beats, marks, info, rows)
    atrial = atrial_activity(y, analysis_fs, beats, typed, list(leads))
    atrial["p_waves"] = [int(round(p * scale)) for p in atrial["p_waves"]]
    for b, s in zip(typed, at_fs, strict=True):
        b["sample"] = int(s)
    paced = paced_summary(typed, spikes.size) if fs >= MIN_FS else no_pacing(False)
    # the P wave's polarity in I and II (sinus P waves are upright in both: P axis 0 to +90 degrees), and how
    # much of the P window is active (a P wave ~100 ms of it; flutter waves run through all of it)
    tmpl, names = info.get("p_template"), [names[i] for i in rows]
    if tmpl is not None:
        mag = np.sqrt((tmpl * tmpl).sum(axis=0))
        atrial["p_window_active"] = round(float(np.mean(mag >= 0.3 * mag.max())), 3)
    else:
        atrial["p_window_active"] = None
    for lead in ("I", "II"):
        key = f"p_{lead.lower()}_mv"
        if tmpl is not None and lead in names:
            row = tmpl[names.index(lead)]
            atrial[key] = round(float(row[int(np.argmax(np.abs(row)))]), 3)
        else:
            atrial[key] = None
    return {
        "dominant_qrs_ms": info.get("dominant_qrs_ms"),
        "template_pr_ms": info.get("pr_ms"),
        "beats": [b["sample"] for b in typed],
        "beat_types": [b["type"] for b in typed],
        "beat_p": [b["p"] for b in typed],
        "beat_paced": [b.get("paced") for b in typed],
        "paced": paced,
        "atrial": atrial,
    }
