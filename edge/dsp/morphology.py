"""The per-lead measurement matrix and the frontal axes of a representative beat (contract 7 v2, numpy only).

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

import numpy as np

from edge.dsp.measurements import LEAD_KEYS

__all__ = ["MIN_WAVE_MV", "frontal_axis", "lead_matrix", "ptf_v1", "qrs_waves"]

MIN_WAVE_MV = 0.03  # a QRS deflection smaller than this is not a wave
T_START_MS = 40.0  # T amplitudes are read from this long after the J point


def qrs_waves(seg: np.ndarray, ms_per_sample: float) -> dict:
    """``q_mv, q_ms, r_mv, r_ms, s_mv, s_ms, r2_mv, s2_mv`` of one lead's baseline-subtracted QRS ``seg``."""
    out: dict = dict.fromkeys(("q_mv", "q_ms", "r_mv", "r_ms", "s_mv", "s_ms", "r2_mv", "s2_mv"), 0.0)
    if seg.size == 0:
        return out
    pos = seg >= 0
    starts = np.concatenate([[0], np.flatnonzero(pos[1:] != pos[:-1]) + 1])
    # each run of one sign: its largest (positive run) or smallest (negative run) sample, all runs at once
    tops = np.maximum.reduceat(seg, starts).tolist()
    bottoms = np.minimum.reduceat(seg, starts).tolist()
    signs = pos[starts].tolist()
    bounds = starts.tolist() + [seg.size]
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
    ang = np.deg2rad([0.0, 60.0, 120.0])
    a = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    vec, *_ = np.linalg.lstsq(a, np.array([area_i, area_ii, area_iii]), rcond=None)
    if np.hypot(*vec) < 1e-9:
        return None
    deg = float(np.rad2deg(np.arctan2(vec[1], vec[0])))
    return deg - 360.0 if deg > 180.0 else deg


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
        row.update(qrs_waves(qrs_all[c], ms))
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
    if not {"I", "II", "III"} <= rep.keys():
        return None
    a, b = int(round(lo)), int(round(hi))
    b0 = max(0, int(round(base_at)) - int(0.02 * fs))
    areas = []
    for name in ("I", "II", "III"):
        beat = rep[name]
        base = float(np.mean(beat[b0 : int(round(base_at)) + 1]))
        areas.append(float((beat[a : b + 1] - base).sum()))
    return frontal_axis(*areas)
