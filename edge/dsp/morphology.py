"""The per-lead measurement matrix, the frontal axes and the criteria voltages of a representative beat (contract 7 v2, numpy only).

Read on each lead's representative (median) beat at 500 Hz between the global boundaries, every amplitude
relative to that lead's PR baseline (the mean of the 20 ms before the QRS onset), as ECG programs that
print a measurement matrix do (e.g. the GE 12SL and Glasgow programs; wave rules of the CSE measurement
standard, Willems et al. 1985):

- QRS waves: the baseline-subtracted QRS is cut where it crosses the baseline; a deflection smaller than
  ``MIN_WAVE_MV`` is not a wave (it joins its neighbours). An initial negative wave followed by a positive
  one is Q; the first positive wave R, the negative wave after it S, then R' and S'. A QRS without a positive
  wave is QS (reported as ``q_mv``/``q_ms``, no R). Amplitudes are signed (``q_mv``, ``s_mv``, ``s2_mv``
  <= 0), durations in ms; ``qrs_area`` is the net area (mV·ms);
- ``st_j_mv`` at the J point (the global QRS end), ``st_60_mv`` 60 ms after it;
- P: the largest positive and negative deflections between the global P onset and end (``p_pos_mv`` >= 0,
  ``p_neg_mv`` <= 0) and the lead's own P duration; T: the same between the J point + 40 ms and the T end;
- axes: least squares over I, II, III of the net areas of the wave (0 deg = lead I, +90 deg = aVF);
- P-terminal force in V1 (Morris et al., Circulation 29, 1964): depth x duration of the negative phase that
  ends V1's P wave, in mV·ms (0 when the P wave in V1 ends positive).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from edge.dsp.measurements import LEAD_KEYS
from edge.dsp.signal import LEADS

__all__ = ["MIN_WAVE_MV", "axes_and_voltages", "frontal_axes", "frontal_axis", "lead_matrix", "ptf_v1", "qrs_waves", "wave_axes", "wave_axis"]

MIN_WAVE_MV = 0.03  # a QRS deflection smaller than this is not a wave
T_START_MS = 40.0  # T amplitudes are read from this long after the J point


def qrs_waves(seg: np.ndarray, ms_per_sample: float) -> dict:
    """``q_mv, q_ms, r_mv, r_ms, s_mv, s_ms, r2_mv, s2_mv`` of one lead's baseline-subtracted QRS ``seg``."""
    if seg.size == 0:
        return dict.fromkeys(_WAVE_KEYS, 0.0)
    return _waves(*_runs(np.asarray(seg)[None])[0], ms_per_sample)


_WAVE_KEYS = ("q_mv", "q_ms", "r_mv", "r_ms", "s_mv", "s_ms", "r2_mv", "s2_mv")


def _runs(qrs: np.ndarray) -> list[tuple[list, list, list, list]]:
    """The runs of one sign in every row of ``qrs[C, L]`` (L >= 1), all rows in one pass: per row the runs'
    largest samples, smallest samples, signs (True: >= 0) and boundaries (starts, then L)."""
    c, n = qrs.shape
    pos = qrs >= 0
    brk = np.empty((c, n), dtype=bool)
    brk[:, 0] = True  # every row starts a run
    np.not_equal(pos[:, 1:], pos[:, :-1], out=brk[:, 1:])
    starts = np.flatnonzero(brk)
    flat = qrs.ravel()
    tops = np.maximum.reduceat(flat, starts).tolist()
    bottoms = np.minimum.reduceat(flat, starts).tolist()
    signs = pos.ravel()[starts].tolist()
    cuts = np.searchsorted(starts, np.arange(c + 1) * n).tolist()
    st = starts.tolist()
    out = []
    for r in range(c):
        a, b = cuts[r], cuts[r + 1]
        off = r * n
        out.append((tops[a:b], bottoms[a:b], signs[a:b], [s - off for s in st[a:b]] + [n]))
    return out


def _waves(tops: list, bottoms: list, signs: list, bounds: list, ms_per_sample: float) -> dict:
    """:func:`qrs_waves` from one lead's runs of one sign (:func:`_runs`)."""
    out: dict = dict.fromkeys(_WAVE_KEYS, 0.0)
    waves: list[list] = []  # [sign, peak, n_samples]
    for r, up in enumerate(signs):
        a, b = bounds[r], bounds[r + 1]
        s = 1 if up else -1
        peak = tops[r] if up else bottoms[r]
        if abs(peak) < MIN_WAVE_MV:
            if waves:
                waves[-1][2] += b - a  # too small: the samples join the previous wave
            continue
        if waves and waves[-1][0] == s:  # same sign again after a deflection too small to count: one wave
            waves[-1][1] = peak if abs(peak) > abs(waves[-1][1]) else waves[-1][1]
            waves[-1][2] += b - a
        else:
            waves.append([s, peak, b - a])
    if not waves:
        return out
    if all(w[0] < 0 for w in waves):  # QS complex
        out["q_mv"] = round(min(w[1] for w in waves), 3)
        out["q_ms"] = round(sum(w[2] for w in waves) * ms_per_sample, 1)
        return out
    i = 0
    if waves[0][0] < 0:
        out["q_mv"], out["q_ms"] = round(waves[0][1], 3), round(waves[0][2] * ms_per_sample, 1)
        i = 1
    names = (("r_mv", "r_ms"), ("s_mv", "s_ms"), ("r2_mv", None), ("s2_mv", None))
    for (amp, dur), w in zip(names, waves[i:], strict=False):
        out[amp] = round(w[1], 3)
        if dur:
            out[dur] = round(w[2] * ms_per_sample, 1)
    return out


def frontal_axis(area_i: float, area_ii: float, area_iii: float) -> float | None:
    """Frontal axis (deg, -180..180) by least squares from a wave's net areas in I, II and III."""
    return frontal_axes(np.array([[area_i], [area_ii], [area_iii]]))[0]


_LIMB_DIRECTIONS = np.deg2rad([0.0, 60.0, 120.0])
_LIMB_MATRIX = np.stack([np.cos(_LIMB_DIRECTIONS), np.sin(_LIMB_DIRECTIONS)], axis=1)


def frontal_axes(areas: np.ndarray) -> list[float | None]:
    """:func:`frontal_axis` of each column of ``areas[3, k]`` (the net areas in I, II, III of k waves), in one
    least-squares solve (the same solution, column by column, as k solves: LAPACK's gelsd per right-hand side)."""
    vec, *_ = np.linalg.lstsq(_LIMB_MATRIX, areas, rcond=None)
    out: list[float | None] = []
    for x, y in zip(vec[0], vec[1], strict=True):
        if np.hypot(x, y) < 1e-9:
            out.append(None)
            continue
        deg = float(np.rad2deg(np.arctan2(y, x)))
        out.append(deg - 360.0 if deg > 180.0 else deg)
    return out


def ptf_v1(p_seg: np.ndarray, ms_per_sample: float) -> float:
    """P-terminal force (mV·ms, >= 0) of V1's baseline-subtracted P wave ``p_seg``: depth x duration of the
    negative phase after its positive peak (0 when there is none deeper than 10 uV)."""
    if p_seg.size < 2:
        return 0.0
    tail = p_seg[int(np.argmax(p_seg)) :]
    neg = np.flatnonzero(tail < 0)
    if neg.size == 0 or tail.min() > -0.01:
        return 0.0
    part = tail[neg[0] :]
    return round(float(-part.min() * (part < 0).sum() * ms_per_sample), 2)


def lead_matrix(
    rep: dict[str, np.ndarray],
    fs: float,
    bounds: dict,
    lead_bounds: dict[str, dict],
) -> dict[str, dict]:
    """``{lead: {<LEAD_KEYS>, "null_reasons"}}`` from the representative beats ``rep`` (mV at ``fs``).

    ``bounds``: the global ``p_on, p_off, qrs_on, qrs_off, t_end`` (samples in ``rep``, ``None`` when not
    found); ``lead_bounds[lead]``: the lead's own boundaries (for its ``qrs_ms``, ``p_dur_ms``), where it
    was delineated.
    """
    ms = 1000.0 / fs
    on, off = bounds["qrs_on"], bounds["qrs_off"]
    p_on, p_off, t_end = bounds.get("p_on"), bounds.get("p_off"), bounds.get("t_end")
    names = list(rep)
    if not names:
        return {}
    # every lead at once where the arithmetic is per lead anyway (row means and sums, maxima, picks)
    beats = np.stack([rep[n] for n in names])
    i_on, i_off = int(round(on)), int(round(off))
    b0 = max(0, i_on - int(20 / ms))
    x_all = beats - beats[:, b0 : i_on + 1].mean(axis=1)[:, None]
    qrs_all = x_all[:, i_on : i_off + 1]
    area = (qrs_all.sum(axis=1) * ms).tolist()
    runs = _runs(qrs_all) if qrs_all.shape[1] else None  # every lead's QRS runs in one pass
    size = x_all.shape[1]
    j60 = i_off + int(round(60 / ms))
    st_j = x_all[:, min(i_off, size - 1)].tolist()
    st_60 = x_all[:, j60].tolist() if j60 < size else None
    if p_on is not None and p_off is not None:
        p_all = x_all[:, int(round(p_on)) : int(round(p_off)) + 1]
    else:
        p_all = x_all[:, :0]
    p_max = p_all.max(axis=1).tolist() if p_all.shape[1] else None
    p_min = p_all.min(axis=1).tolist() if p_all.shape[1] else None
    t_all = x_all[:, i_off + int(round(T_START_MS / ms)) : int(round(t_end)) + 1] if t_end is not None else None
    t_ok = t_all is not None and t_all.shape[1] > 0
    t_max = t_all.max(axis=1).tolist() if t_ok else None
    t_min = t_all.min(axis=1).tolist() if t_ok else None
    out: dict[str, dict] = {}
    for c, name in enumerate(names):
        row: dict = dict.fromkeys(LEAD_KEYS)
        why: dict[str, str] = {}
        row.update(_waves(*runs[c], ms) if runs else dict.fromkeys(_WAVE_KEYS, 0.0))
        row["qrs_area"] = round(area[c], 1)
        own = lead_bounds.get(name, {})
        if own.get("qrs_on") is not None and own.get("qrs_off") is not None:
            row["qrs_ms"] = round((own["qrs_off"] - own["qrs_on"]) * ms, 1)
        else:
            why["qrs_ms"] = "QRS not delineated in this lead"
        row["st_j_mv"] = round(st_j[c], 3)
        if st_60 is not None:
            row["st_60_mv"] = round(st_60[c], 3)
        else:
            why["st_60_mv"] = "J+60 ms beyond the beat"
        if p_max is not None:
            row["p_pos_mv"] = round(max(0.0, p_max[c]), 3)
            row["p_neg_mv"] = round(min(0.0, p_min[c]), 3)
            if own.get("p_on") is not None and own.get("p_off") is not None:
                row["p_dur_ms"] = round((own["p_off"] - own["p_on"]) * ms, 1)
            else:
                row["p_dur_ms"] = round((p_off - p_on) * ms, 1)
        else:
            for k in ("p_pos_mv", "p_neg_mv", "p_dur_ms"):
                why[k] = "no P wave"
        if t_max is not None:
            row["t_pos_mv"] = round(max(0.0, t_max[c]), 3)
            row["t_neg_mv"] = round(min(0.0, t_min[c]), 3)
        if row["t_pos_mv"] is None:
            why["t_pos_mv"] = why["t_neg_mv"] = "T end not found"
        row["null_reasons"] = why
        out[name] = row
    return out


def wave_axis(rep: dict[str, np.ndarray], fs: float, lo: float, hi: float, base_at: float) -> float | None:
    """Frontal axis of the wave between samples ``lo`` and ``hi`` (net areas in I, II, III)."""
    return wave_axes(rep, fs, [(lo, hi, base_at)])[0]


def wave_axes(rep: dict[str, np.ndarray], fs: float, spans: list[tuple[float, float, float]]) -> list[float | None]:
    """:func:`wave_axis` of several waves ``(lo, hi, base_at)`` (each lead's areas as one row, one solve)."""
    if not {"I", "II", "III"} <= rep.keys():
        return [None] * len(spans)
    if not spans:
        return []
    limb = np.stack([rep["I"], rep["II"], rep["III"]])
    areas = np.empty((3, len(spans)))
    for k, (lo, hi, base_at) in enumerate(spans):
        a, b, z = int(round(lo)), int(round(hi)), int(round(base_at))
        base = limb[:, max(0, z - int(0.02 * fs)) : z + 1].mean(axis=1)
        areas[:, k] = (limb[:, a : b + 1] - base[:, None]).sum(axis=1)
    return frontal_axes(areas)


def axes_and_voltages(out: dict, reasons: dict, rep: Mapping[str, np.ndarray], bounds: dict, fs: float) -> None:
    """Into ``out`` (``reasons``: why a value is None) the QRS, P and T frontal axes, the P-terminal force in V1
    and the criteria voltages of the representative beats ``rep`` (mV at ``fs``; ``out["leads"]``: their
    :func:`lead_matrix`) within the global ``bounds`` (edge.dsp.measure)."""
    ms = 1000.0 / fs
    on, off = bounds["qrs_on"], bounds["qrs_off"]
    limb = {"I", "II", "III"} <= rep.keys()
    spans = {"axis_deg": (on, off, on)}  # (from, to, baseline before): the QRS, P and T waves, one solve
    if bounds["p_on"] is not None and bounds["p_off"] is not None:
        spans["p_axis_deg"] = (bounds["p_on"], bounds["p_off"], bounds["p_on"])
    if bounds["t_end"] is not None:
        spans["t_axis_deg"] = (off, bounds["t_end"], on)
    if limb:
        for key, deg in zip(spans, wave_axes(rep, fs, list(spans.values())), strict=True):
            out[key] = _r(deg, 0)
    if out["axis_deg"] is None:
        reasons["axis_deg"] = "no net QRS area in the limb leads" if limb else "limb leads not recorded"
    if out["p_axis_deg"] is None:
        reasons["p_axis_deg"] = "limb leads not recorded" if not limb else "no P wave"
    if out["t_axis_deg"] is None:
        reasons["t_axis_deg"] = "limb leads not recorded" if not limb else "T end not found"
    if "V1" in rep and bounds["p_on"] is not None and bounds["p_off"] is not None:
        v1 = rep["V1"]
        a, b = int(round(bounds["p_on"])), int(round(bounds["p_off"]))
        base = float(np.mean(v1[max(0, a - int(20 / ms)) : a + 1]))
        out["ptf_v1"] = ptf_v1(v1[a : b + 1] - base, ms)
    else:
        reasons["ptf_v1"] = "V1 not recorded" if "V1" not in rep else "no P wave"
    lead = out["leads"]

    def depth(name: str) -> float | None:
        if name not in lead:
            return None
        m = lead[name]
        return max(0.0, -min(m["q_mv"], m["s_mv"], m["s2_mv"]))

    def height(name: str) -> float | None:
        return max(0.0, lead[name]["r_mv"], lead[name]["r2_mv"]) if name in lead else None

    out["sv1_mv"], out["sv3_mv"] = _r(depth("V1"), 3), _r(depth("V3"), 3)
    out["rv5_mv"], out["rv6_mv"], out["ravl_mv"] = (_r(height(n), 3) for n in ("V5", "V6", "aVL"))
    for key, name in (
        ("sv1_mv", "V1"),
        ("sv3_mv", "V3"),
        ("rv5_mv", "V5"),
        ("rv6_mv", "V6"),
        ("ravl_mv", "aVL"),
    ):
        if out[key] is None:
            reasons[key] = f"{name} not recorded"
    if out["sv1_mv"] is not None and (out["rv5_mv"] is not None or out["rv6_mv"] is not None):
        out["sv1_rv5_mv"] = _r(out["sv1_mv"] + max(out["rv5_mv"] or 0.0, out["rv6_mv"] or 0.0), 3)
    else:
        reasons["sv1_rv5_mv"] = "V1, or V5 and V6, not recorded"
    i0, i1 = int(round(on)), int(round(off)) + 1
    seg = np.stack([b[i0:i1] for b in rep.values()])
    ptp = dict(zip(rep, (seg.max(axis=1) - seg.min(axis=1)).tolist(), strict=True))  # np.ptp, every lead
    limb_pp = [v for n, v in ptp.items() if n in LEADS[:6]]
    chest_pp = [v for n, v in ptp.items() if n in LEADS[6:]]
    out["limb_qrs_max_mv"] = _r(max(limb_pp), 3) if limb_pp else None
    out["chest_qrs_max_mv"] = _r(max(chest_pp), 3) if chest_pp else None
    if not limb_pp:
        reasons["limb_qrs_max_mv"] = "limb leads not recorded"
    if not chest_pp:
        reasons["chest_qrs_max_mv"] = "chest leads not recorded"


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), nd)
