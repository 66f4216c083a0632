"""Measurements of a window (計測値): heart rate, intervals, axis and voltages (DESIGN.md, contract 7).

One function, :func:`measure`, used by training, file classification and the live stream alike (like the
signal contract), numpy only. Steps:

1. The leads are put in contract-1 order (8-channel devices: the limb leads are derived), band-passed
   0.5-40 Hz and resampled to 500 Hz in the frequency domain (``edge.dsp.signal.filter_resample``).
2. Beats: :func:`edge.dsp.beats.detect_beats` (multi-lead spatial velocity, Pan-Tompkins-style decisions).
   Heart rate and RR come from every beat; the rhythm's irregularity is the coefficient of variation of RR.
3. A representative (median) beat per lead over the dominant beats (those whose QRS correlates >= 0.9
   with the median QRS; premature ectopic beats are left out), aligned on the QRS fiducial.
4. Global delineation on the representative beats in CSE style (Willems et al., "Common standards for
   quantitative electrocardiography: goals and main results", Methods Inf Med 29, 1990): the boundaries
   are found on a signal that combines all independent leads (I, II, V1-V6), which gives the earliest
   onset and latest offset over the leads:

   - QRS onset / offset: where the spatial velocity (root sum of squared slopes) falls below
     ``QRS_FRACTION`` of its QRS maximum, walking out of the complex;
   - P wave: the spatial magnitude of (beat - PR baseline) in the 300 ms before the QRS; the P wave is
     called present when its peak stands out of the beat-to-beat noise and reaches ``P_MIN_MV``; its
     onset where that magnitude falls below ``P_FRACTION`` of its peak;
   - T end: the tangent method (the convention of manual QT measurement: Lepeschkin & Surawicz 1952;
     Postema & Wilde 2014) on the spatial magnitude of (beat - baseline): the tangent at the steepest
     point of the T wave's down-slope meets the baseline.

5. QTc by Bazett (QT / sqrt(RR)) and Fridericia (QT / RR^(1/3)); the frontal QRS axis by least squares
   from the net QRS areas of I, II and III (hexaxial reference, 0 deg = lead I, +90 deg = aVF); the voltages
   of the hypertrophy and low-voltage criteria (SV1, RV5, RV6, RaVL, SV3; peak-to-peak QRS amplitude of
   limb and chest leads), relative to the PR baseline.

A value that cannot be measured is ``None`` and ``null_reasons`` says why (too few beats, no P wave,
flat T wave, noise); nothing is guessed. Units: bpm, ms, degrees, mV.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.dsp.beat_types import annotate_beats
from edge.dsp.beats import ANALYSIS_FS, QRS_BAND_HZ, detection_envelope, moving_average, pick_beats
from edge.dsp.signal import LEADS, SignalError, filter_resample_bands, to_twelve_leads

__all__ = ["MEASUREMENT_KEYS", "combine_measurements", "empty_measurements", "format_measurements", "measure"]

# The keys every measurement dict carries (None when not measurable), in display order.
MEASUREMENT_KEYS = (
    "hr_bpm",
    "rr_ms",
    "rr_irregularity",
    "rhythm_regular",
    "pr_ms",
    "qrs_ms",
    "qt_ms",
    "qtc_ms",
    "qtcf_ms",
    "axis_deg",
    "p_present",
    "sv1_mv",
    "rv5_mv",
    "rv6_mv",
    "sv1_rv5_mv",
    "ravl_mv",
    "sv3_mv",
    "limb_qrs_max_mv",
    "chest_qrs_max_mv",
    "n_beats",
)
BAND_HZ = (0.5, 100.0)
QRS_FRACTION = 0.10  # QRS boundary: spatial velocity below this fraction of its QRS maximum
QRS_RISE = 0.25  # ... unless it rises above this fraction again within 20 ms (notched, slurred QRS)
P_FRACTION = 0.10  # P boundary: spatial magnitude below this fraction of the P peak
P_MAX_MS = 150.0  # a "P wave" longer than this has merged with the previous T wave: no P onset
P_MIN_MV = 0.03  # a P wave smaller than this (spatial magnitude) counts as absent
P_NOISE_FACTOR = 3.0  # ... and it must stand this many times above the beat-to-beat noise
T_MIN_MV = 0.05  # a T wave smaller than this (spatial magnitude) cannot be ended reliably
PR_RANGE_MS = (60.0, 400.0)  # a PR outside this is a wrong P onset (e.g. a flutter wave), not a measurement
QT_MIN_MS, QT_MAX_RR = (
    200.0,
    0.9,
)  # a QT outside 200 ms .. 0.9 RR has found the wrong wave (flutter, U, next P)
IRREGULAR_CV = 0.15  # RR coefficient of variation above which the rhythm is called irregular
MIN_BEATS = 3  # fewer beats: no heart rate, no representative beat
MAX_NOISE_RATIO = 0.25  # beat-to-beat noise above this fraction of the QRS amplitude: no intervals
_INDEP = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
_IDX = {name: i for i, name in enumerate(LEADS)}
_INDEP_IDX = [_IDX[n] for n in _INDEP]


def empty_measurements(reason: str) -> dict:
    """Every key ``None`` with the same reason (nothing could be measured)."""
    out: dict = {k: None for k in MEASUREMENT_KEYS}
    out["beats"] = []
    out["null_reasons"] = {k: reason for k in MEASUREMENT_KEYS}
    return out


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), nd)


def _twelve(y8: np.ndarray) -> np.ndarray:
    """I, II, V1-V6 -> the twelve leads in contract-1 order (Einthoven and Goldberger)."""
    i, ii = y8[0], y8[1]
    return np.concatenate([np.stack([i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2]), y8[2:]], axis=0)


def _representative(
    y: np.ndarray, beats: np.ndarray, pre: int, post: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Median beat ``[12, pre + post]`` over the dominant beats, the beats used, and the noise (mV).

    Dominant beats: QRS (+-60 ms) correlation >= 0.9 with the median QRS of all beats, on the
    independent leads stacked. Noise: the mean absolute deviation of those beats from the median beat
    (as a robust SD), divided by sqrt(n), i.e. what is left in the median beat.
    """
    ok = beats[(beats - pre >= 0) & (beats + post <= y.shape[1])]
    if ok.size == 0:
        return np.zeros((y.shape[0], pre + post)), ok, np.inf
    idx = ok[:, None] + np.arange(-pre, post)[None, :]
    segs = y[_INDEP_IDX][:, idx]  # [8, B, W]: the independent leads
    q = int(0.06 * ANALYSIS_FS)
    qrs = segs[:, :, pre - q : pre + q].transpose(1, 0, 2).reshape(ok.size, -1)
    qrs = qrs - qrs.mean(axis=1, keepdims=True)
    tmpl = np.median(qrs, axis=0)
    denom = np.linalg.norm(qrs, axis=1) * max(np.linalg.norm(tmpl), 1e-12)
    corr = (qrs @ tmpl) / np.maximum(denom, 1e-12)
    keep = corr >= 0.9
    if keep.sum() < MIN_BEATS:
        keep = corr >= np.sort(corr)[-min(MIN_BEATS, corr.size)]
    # median beat of the independent leads ([8, W, B]: median over the last axis); the others derived
    segs = np.ascontiguousarray(segs[:, keep].transpose(0, 2, 1))
    rep = _twelve(np.median(segs, axis=2))
    sub = segs[:, ::4]  # the noise estimate needs no more than every 4th sample
    # robust SD from the mean absolute deviation (x 1.2533 for Gaussian noise), per lead, median over leads
    sd = np.abs(sub - rep[_INDEP_IDX, ::4, None]).reshape(len(_INDEP_IDX), -1).mean(axis=1) * 1.2533
    noise = float(np.median(sd) / np.sqrt(max(segs.shape[2], 1)))
    return rep, ok[keep], noise


def _first_below(v: np.ndarray, start: int, stop: int, thr: float, step: int) -> int | None:
    """First index from ``start`` towards ``stop`` (exclusive, direction ``step``) with ``v < thr``."""
    rng = range(start, stop, step)
    for i in rng:
        if v[i] < thr:
            return i
    return None


def _walk_out(
    v: np.ndarray, start: int, limit: int, thr: float, rise: float, step: int, look: int
) -> int | None:
    """Walk from ``start`` towards ``limit`` to where ``v`` drops below ``thr`` and does not rise above
    ``rise`` again within ``look`` samples (a notched or slurred complex dips and rises again)."""
    i = _first_below(v, start, limit, thr, step)
    while i is not None:
        stop = i + step * look
        stop = max(stop, limit) if step < 0 else min(stop, limit)
        rng = np.arange(i, stop, step)
        again = rng[v[rng] > rise] if rng.size else rng
        if again.size == 0:
            return i
        i = _first_below(v, int(again[0]), limit, thr, step)
    return None


def _delineate(rep: np.ndarray, pre: int, rr_s: float, noise: float) -> dict:
    """Onsets and offsets (samples in ``rep``) of P, QRS and T on the representative beats."""
    fs = ANALYSIS_FS
    ms = fs / 1000.0
    ind = rep[_INDEP_IDX]
    d = np.gradient(ind, axis=1) * fs  # mV/s
    sv = np.sqrt((d * d).sum(axis=0))
    sv = moving_average(sv, 5)
    w = rep.shape[1]
    c = pre
    peak_lo, peak_hi = max(0, c - int(40 * ms)), min(w, c + int(40 * ms))
    vmax = float(sv[peak_lo:peak_hi].max())
    floor = float(np.percentile(sv, 5))
    thr = floor + QRS_FRACTION * (vmax - floor)
    out: dict = {}
    rise = floor + QRS_RISE * (vmax - floor)
    on = _walk_out(sv, c, max(0, c - int(150 * ms)), thr, rise, -1, int(20 * ms))
    off = _walk_out(sv, c, min(w, c + int(220 * ms)), thr, rise, 1, int(20 * ms))
    if on is None or off is None:
        return {"reason": "QRS boundaries not found"}
    out["qrs_on"], out["qrs_off"] = on, off
    # baseline: the flattest 20 ms of the PR segment before the QRS onset (per lead)
    lo = max(0, on - int(40 * ms))
    base_idx = lo + int(np.argmin(sv[lo : on + 1])) if on > lo else on
    b0, b1 = max(0, base_idx - int(10 * ms)), base_idx + int(10 * ms) + 1
    baseline = rep[:, b0:b1].mean(axis=1)
    out["baseline"] = baseline
    # T end: tangent method on the spatial magnitude of (beat - baseline)
    t_lo = off + int(60 * ms)
    t_hi = min(w, on + int((rr_s * 1000 - 20) * ms))  # up to 20 ms before the next QRS onset
    if t_hi - t_lo > int(80 * ms):
        seg = ind[:, t_lo:t_hi] - baseline[_INDEP_IDX][:, None]
        mag = np.sqrt((seg * seg).sum(axis=0))
        mag = moving_average(mag, int(16 * ms))
        edge = int(8 * ms)  # the smoothing's edge effect
        k = edge + int(np.argmax(mag[edge : mag.size - edge]))
        tpk = float(mag[k])
        out["t_peak_mv"] = tpk
        if tpk >= T_MIN_MV:
            down = -np.gradient(mag)
            stop = min(mag.size - edge, k + int(250 * ms))

            if stop > k + 2:
                j = k + int(np.argmax(down[k:stop]))
                slope = down[j]
                tail = mag[j:stop]
                level = float(tail.min()) if tail.size else 0.0
                if slope > 0:
                    t_end = j + (mag[j] - level) / slope
                    if t_end < mag.size - edge:
                        out["t_end"] = t_lo + float(t_end)
    # P wave
    # from 300 ms before the QRS, but not into the previous beat's T wave (T end - RR)
    p_lo = max(0, on - int(300 * ms))
    if out.get("t_end") is not None:
        p_lo = max(p_lo, int(out["t_end"] - rr_s * fs) + int(10 * ms))
    p_hi = on - int(10 * ms)
    if p_hi - p_lo > int(40 * ms):
        seg = ind[:, p_lo:p_hi] - baseline[_INDEP_IDX][:, None]
        mag = np.sqrt((seg * seg).sum(axis=0))
        mag = moving_average(mag, int(10 * ms))
        k = int(np.argmax(mag))
        pk = float(mag[k])
        present = pk >= P_MIN_MV and pk >= P_NOISE_FACTOR * noise * np.sqrt(len(_INDEP))
        out["p_peak_mv"] = pk
        out["p_present"] = bool(present)
        if present:
            # residual noise and wander: the magnitude never reaches 0, so the boundaries are relative to the
            # quietest point on each side of the peak (TP segment before it, PR segment after it)
            lo_min = int(np.argmin(mag[: k + 1]))
            hi_min = k + int(np.argmin(mag[k:]))
            thr_on = mag[lo_min] + P_FRACTION * (pk - mag[lo_min])
            thr_off = mag[hi_min] + P_FRACTION * (pk - mag[hi_min])
            p_on = _first_below(mag, k, lo_min - 1, thr_on, -1)
            p_off = _first_below(mag, k, hi_min + 1, thr_off, 1)
            # a P wave that starts right at the window's start merges with the previous T wave: no onset
            out["p_on"] = None if p_on is None or p_on < int(15 * ms) else p_lo + p_on
            out["p_off"] = None if p_off is None else p_lo + p_off
            if (
                out["p_on"] is not None
                and out["p_off"] is not None
                and out["p_off"] - out["p_on"] > P_MAX_MS * ms
            ):
                out["p_on"] = None  # longer than any P wave: it runs into the previous T wave
    return out


def _axis(rep: np.ndarray, on: int, off: int, baseline: np.ndarray) -> float | None:
    """Frontal QRS axis (deg) by least squares from the net QRS areas of I, II, III."""
    area = (rep[:3, on : off + 1] - baseline[:3, None]).sum(axis=1)
    ang = np.deg2rad([0.0, 60.0, 120.0])
    a = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    vec, *_ = np.linalg.lstsq(a, area, rcond=None)
    if np.hypot(*vec) < 1e-9:
        return None
    deg = float(np.rad2deg(np.arctan2(vec[1], vec[0])))
    return deg - 360.0 if deg > 180.0 else deg


def measure(x_mv: np.ndarray, fs: float, leads: Sequence[str] | None = None) -> dict:
    """Measurements of one window ``x_mv[C, T]`` (mV, 12 leads or 8 channels) sampled at ``fs`` Hz.

    Returns a JSON-ready dict: ``hr_bpm, rr_ms, rr_irregularity, rhythm_regular, pr_ms, qrs_ms, qt_ms,
    qtc_ms, qtcf_ms, axis_deg, p_present``, the voltages (``sv1_mv, rv5_mv, rv6_mv, sv1_rv5_mv, ravl_mv,
    sv3_mv, limb_qrs_max_mv, chest_qrs_max_mv``), ``n_beats``, ``beats`` (R positions, samples at ``fs``)
    and ``null_reasons`` (why each ``None`` value could not be measured).
    """
    try:
        x12 = to_twelve_leads(x_mv, leads)
    except SignalError as exc:
        return empty_measurements(f"leads: {exc}")
    if not np.isfinite(x12).all():
        return empty_measurements("missing samples")
    if not fs or not np.isfinite(fs) or fs <= 0 or x12.shape[1] < 2 * fs:
        return empty_measurements("window shorter than 2 s")
    # Filter the eight independent leads and derive III, aVR, aVL, aVF afterwards: filtering is linear, so
    # this equals filtering all twelve, at two thirds of the cost.
    y8, qrs_band = filter_resample_bands(x12[_INDEP_IDX], fs, ANALYSIS_FS, [BAND_HZ, QRS_BAND_HZ])
    y = _twelve(y8.astype(np.float64))
    sv, env = detection_envelope(qrs_band.astype(np.float64), ANALYSIS_FS)
    beats = pick_beats(sv, env, ANALYSIS_FS)
    out = empty_measurements("")
    reasons: dict[str, str] = {}
    out["n_beats"] = int(beats.size)
    out["beats"] = [int(round(b * fs / ANALYSIS_FS)) for b in beats]
    # beat types, P before each beat, pacing spikes (on the raw samples) and atrial activity: edge.dsp.beat_types
    out.update(annotate_beats(x12, fs, LEADS, y=y, beats=beats))
    if beats.size < 2:
        return _finish(out, reasons, "fewer than 2 beats")
    rr = np.diff(beats) / ANALYSIS_FS
    rr_mean = float(rr.mean())
    out["hr_bpm"] = _r(60.0 / rr_mean)
    out["rr_ms"] = _r(rr_mean * 1000)
    if rr.size >= 2:
        cv = float(rr.std() / rr_mean)
        out["rr_irregularity"] = _r(cv, 3)
        out["rhythm_regular"] = bool(cv <= IRREGULAR_CV)
    else:
        reasons["rr_irregularity"] = reasons["rhythm_regular"] = "fewer than 3 beats"
    if beats.size < MIN_BEATS:
        return _finish(out, reasons, f"fewer than {MIN_BEATS} beats")
    rr_med = float(np.median(rr))
    pre = int(min(0.45, max(0.2, 0.6 * rr_med)) * ANALYSIS_FS)
    post = int(min(0.75, max(0.3, rr_med)) * ANALYSIS_FS)
    rep, used, noise = _representative(y, beats, pre, post)
    if used.size < MIN_BEATS:
        return _finish(out, reasons, f"fewer than {MIN_BEATS} complete beats of one shape")
    qrs_amp = float(np.ptp(rep[_INDEP_IDX][:, pre - 30 : pre + 30], axis=1).max())
    if noise > MAX_NOISE_RATIO * qrs_amp:
        return _finish(out, reasons, "too much noise")
    dl = _delineate(rep, pre, rr_med, noise)
    if "qrs_on" not in dl:
        return _finish(out, reasons, dl.get("reason", "QRS not delineated"))
    ms = 1000.0 / ANALYSIS_FS
    on, off, base = dl["qrs_on"], dl["qrs_off"], dl["baseline"]
    out["qrs_ms"] = _r((off - on) * ms)
    out["p_present"] = dl.get("p_present")
    pr = None if dl.get("p_on") is None else (on - dl["p_on"]) * ms
    if pr is not None and not PR_RANGE_MS[0] <= pr <= PR_RANGE_MS[1]:
        reasons["pr_ms"] = f"P onset implausible (PR {pr:.0f} ms)"
    elif pr is not None:
        out["pr_ms"] = _r(pr)
    elif not dl.get("p_present"):
        irregular = out["rhythm_regular"] is False
        reasons["pr_ms"] = "no P wave" + (" (irregular rhythm)" if irregular else "")
    else:
        reasons["pr_ms"] = "P onset not found"
    qt = None if dl.get("t_end") is None else (dl["t_end"] - on) * ms
    if qt is not None and not QT_MIN_MS <= qt <= QT_MAX_RR * rr_med * 1000:
        reasons["qt_ms"] = reasons["qtc_ms"] = reasons["qtcf_ms"] = f"T end implausible (QT {qt:.0f} ms)"
    elif qt is not None:
        out["qt_ms"] = _r(qt)
        out["qtc_ms"] = _r(qt / np.sqrt(rr_mean))
        out["qtcf_ms"] = _r(qt / np.cbrt(rr_mean))
    else:
        why = "flat T wave" if dl.get("t_peak_mv", 0.0) < T_MIN_MV else "T end not found"
        reasons["qt_ms"] = reasons["qtc_ms"] = reasons["qtcf_ms"] = why
    out["axis_deg"] = _r(_axis(rep, on, off, base), 0)
    if out["axis_deg"] is None:
        reasons["axis_deg"] = "no net QRS area in the limb leads"
    q = rep[:, on : off + 1] - base[:, None]
    v = {name: q[_IDX[name]] for name in ("V1", "V3", "V5", "V6", "aVL")}
    out["sv1_mv"] = _r(max(0.0, -v["V1"].min()), 3)
    out["sv3_mv"] = _r(max(0.0, -v["V3"].min()), 3)
    out["rv5_mv"] = _r(max(0.0, v["V5"].max()), 3)
    out["rv6_mv"] = _r(max(0.0, v["V6"].max()), 3)
    out["ravl_mv"] = _r(max(0.0, v["aVL"].max()), 3)
    out["sv1_rv5_mv"] = _r(out["sv1_mv"] + max(out["rv5_mv"], out["rv6_mv"]), 3)
    ptp = np.ptp(q, axis=1)
    out["limb_qrs_max_mv"] = _r(ptp[:6].max(), 3)
    out["chest_qrs_max_mv"] = _r(ptp[6:].max(), 3)
    return _finish(out, reasons, "")


def _finish(out: dict, reasons: dict[str, str], default: str) -> dict:
    """Fill ``null_reasons`` for every ``None`` value (``default`` where no specific reason is known)."""
    out["null_reasons"] = {
        k: reasons.get(k, default or "not measurable") for k in MEASUREMENT_KEYS if out.get(k) is None
    }
    return out


def combine_measurements(items: Sequence[dict | None]) -> dict | None:
    """One record's measurements from its windows': the median of each value measured in any window.

    ``rhythm_regular`` and ``p_present`` take the majority; ``beats`` is dropped (window-relative).
    """
    items = [m for m in items if m]
    if not items:
        return None
    out: dict = {}
    reasons: dict[str, str] = {}
    for k in MEASUREMENT_KEYS:
        vals = [m.get(k) for m in items if m.get(k) is not None]
        if not vals:
            out[k] = None
            reasons[k] = next((m["null_reasons"][k] for m in items if k in m.get("null_reasons", {})), "")
        elif isinstance(vals[0], bool):
            out[k] = sum(vals) * 2 >= len(vals)
        elif k in ("n_beats",):
            out[k] = int(sum(vals))
        else:
            out[k] = _r(float(np.median(vals)), 3 if k.endswith("_mv") or k == "rr_irregularity" else 1)
    out["beats"] = []
    out["null_reasons"] = reasons
    out["windows"] = len(items)
    return out


def format_measurements(m: dict | None, lang: str = "ja") -> str:
    """One line for a person: ``心拍数 72 bpm  PR 160 ms  QRS 94 ms  QT/QTc 380/416 ms  電気軸 45°``."""
    if not m:
        return "計測値なし" if lang == "ja" else "no measurements"

    def v(key: str, unit: str = "") -> str:
        x = m.get(key)
        return "—" if x is None else f"{x:.0f}{unit}"

    hr = "心拍数" if lang == "ja" else "HR"
    axis = "電気軸" if lang == "ja" else "axis"
    parts = [
        f"{hr} {v('hr_bpm')} bpm",
        f"PR {v('pr_ms')} ms",
        f"QRS {v('qrs_ms')} ms",
        f"QT/QTc {v('qt_ms')}/{v('qtc_ms')} ms",
        f"{axis} {v('axis_deg', '°')}",
    ]
    if m.get("sv1_rv5_mv") is not None:
        parts.append(f"SV1+RV5 {m['sv1_rv5_mv']:.2f} mV")
    if m.get("rhythm_regular") is False:
        parts.append("RR不整" if lang == "ja" else "irregular RR")
    return "  ".join(parts)
