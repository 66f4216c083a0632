"""Measurements of a window (計測値): heart rate, intervals, axes, voltages and the per-lead matrix
(DESIGN.md, contract 7 v2).

One function, :func:`measure`, used by training, file classification and the live stream alike (like the
signal contract), numpy only. It works on any set of leads (12, the 8 of a cart, the 2 of a Holter, what is
left when electrodes fall off). Steps:

1. The leads named are taken in contract-1 order; from two of I, II, III the other limb leads are derived.
   The independent leads (I, II, V1-V6, or the limb leads given) that are not flat are band-passed
   0.5-100 Hz and resampled to 500 Hz in the frequency domain (``edge.dsp.signal.filter_resample_bands``).
2. Beats: :func:`edge.dsp.beats.pick_beats` (multi-lead spatial velocity, Pan-Tompkins-style decisions);
   beat types, P before each beat and pacing spikes: :func:`edge.dsp.beat_types.annotate_beats`. Heart rate
   and RR come from every beat; the rhythm's irregularity is the coefficient of variation of RR.
3. A representative (median) beat per lead over the dominant beats (QRS correlation >= 0.9 with the median
   QRS; premature ectopic beats are left out), aligned on the QRS fiducial.
4. Each independent lead's representative beat is delineated by the wavelet delineator
   (:mod:`edge.dsp.delineate`, Martinez et al. 2004; thresholds chosen on half of the QT Database and
   scored on the other half, docs/measurements.md), and the leads' boundaries are combined per boundary by
   an ordered statistic that one stray lead cannot move (:func:`edge.dsp.delineate.combine_leads`): the
   earliest onset / latest end among the leads that agree with the leads' median. PR = QRS onset - P onset,
   P duration, QRS, QT = T end - QRS onset; QTc by Bazett (QT / sqrt(RR)) and Fridericia (QT / RR^(1/3)).
   Whether there is a P wave (``p_present``) is one verdict with the beats' own P waves, which the rhythm
   analysis reads too (:func:`_p_wave_verdict`; flutter waves are none: :func:`flutter_waves`).
5. The per-lead matrix, the P, QRS and T frontal axes and the P-terminal force in V1:
   :mod:`edge.dsp.morphology`; the voltages of the hypertrophy and low-voltage criteria (SV1, RV5, RV6,
   RaVL, SV3, peak-to-peak QRS of limb and chest leads) from the same beats, relative to the PR baseline.

A value that cannot be measured is ``None`` and ``null_reasons`` says why (too few beats, no P wave, flat T
wave, noise, lead not recorded); nothing is guessed. Units: bpm, ms, degrees, mV, mV·ms. The result is a
:class:`edge.dsp.measurements.Measurements` (a ``dict`` with typed attributes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from edge.dsp.beat_types import annotate_beats
from edge.dsp.beats import ANALYSIS_FS, QRS_BAND_HZ, detection_envelope, median, median_of, pick_beats
from edge.dsp.delineate import (
    BOUNDARIES,
    DELINEATION_FS,
    combine_leads,
    delineate_leads,
    scales_read,
    wavelet_scales,
)
from edge.dsp.measurements import GLOBAL_KEYS, Measurements, combine_measurements
from edge.dsp.morphology import axes_and_voltages, lead_matrix
from edge.dsp.signal import (
    EIGHT_CHANNEL_LEADS,
    LEADS,
    SignalError,
    canonical_lead_name,
    filter_resample_bands,
)

__all__ = ["MEASUREMENT_KEYS", "combine_measurements", "empty_measurements", "measure"]  # in words: edge.views.present

MEASUREMENT_KEYS = GLOBAL_KEYS  # every global key (None when not measurable), in display order
BAND_HZ = (0.5, 100.0)
T_MIN_MV = 0.05  # a T wave smaller than this in every lead cannot be ended reliably
PR_RANGE_MS = (60.0, 400.0)  # a PR outside this is a wrong P onset (e.g. a flutter wave), not a measurement
QT_MIN_MS, QT_MAX_RR = (
    200.0,
    0.9,
)  # a QT outside 200 ms .. 0.9 RR has found the wrong wave (flutter, U, next P)
IRREGULAR_CV = 0.15  # RR coefficient of variation above which the rhythm is called irregular
MIN_BEATS = 3  # fewer beats: no heart rate, no representative beat
MAX_NOISE_RATIO = 0.25  # beat-to-beat noise above this fraction of the QRS amplitude: no intervals
P_BEATS_SHARE, P_BEATS_NONE = 0.7, 0.3  # share of beats with their own P wave: P present / absent (between:
# the representative beat decides), the rhythm analysis' P_SHARE_SINUS and P_SHARE_NONE
P_CONTINUOUS = 0.5  # P template active over this share of its window: continuous atrial activity (the
# rhythm analysis' FLUTTER_ACTIVE, chosen on synthetic flutter and PTB-XL fold-9 flutter and sinus records) ...
P_II_FLUTTER_MV = -0.1  # ... and this negative in II: flutter waves, not a P wave (see flutter_waves)
P_II_UPRIGHT_MV = 0.05  # a sinus P wave is upright in II (edge.interpret.rhythm.P_II_UPRIGHT_MV)
FLUTTER_WAVE_BPM = (240.0, 360.0)  # flutter waves' rate (edge.interpret.rhythm.FLUTTER_BPM)
FLAT_MV = 0.02  # a lead whose peak-to-peak stays below this is flat (electrode off): not measured
_INDEP = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
_DECIM = int(round(ANALYSIS_FS / DELINEATION_FS))


def empty_measurements(reason: str) -> Measurements:
    """Every key ``None`` with the same reason (nothing could be measured)."""
    return Measurements.empty(reason)


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), nd)


def _leads(
    x_in: np.ndarray, leads: Sequence[str] | None
) -> tuple[dict[str, np.ndarray], list[str], np.ndarray]:
    """The recorded leads by canonical name (limb leads derived from two of I, II, III), the names of the
    independent ones to measure (flat leads left out), and the leads stacked (``x`` itself when they are its
    rows in order and ``x`` is our own copy)."""
    x = np.ascontiguousarray(x_in, dtype=np.float64)  # a transposed record (wfdb's p_signal.T): rows contiguous
    if x.ndim != 2:
        raise SignalError(f"expected a lead-first 2-D array [leads, samples], got shape {x.shape}")
    if leads is None:
        if x.shape[0] not in (8, 12):
            raise SignalError(f"{x.shape[0]} channels without lead names; expected 12 or 8 (I, II, V1-V6)")
        leads = LEADS if x.shape[0] == 12 else EIGHT_CHANNEL_LEADS
    if len(leads) != x.shape[0]:
        raise SignalError(f"{len(leads)} lead names for {x.shape[0]} channels")
    have: dict[str, int] = {}
    for i, name in enumerate(leads):
        try:
            have.setdefault(canonical_lead_name(name), i)
        except SignalError:
            continue
    if not have:
        raise SignalError(f"no ECG lead among {list(leads)}")
    # flat: finite and peak-to-peak below FLAT_MV (every channel at once; np.ptp is max - min)
    with np.errstate(invalid="ignore"):
        flat = np.isfinite(x).all(axis=1) & (x.max(axis=1) - x.min(axis=1) < FLAT_MV)
    live = {n: x[i] for n, i in have.items() if not flat[i]}
    if not live:
        raise SignalError("every lead is flat (electrodes off?)")
    if "I" not in live and {"II", "III"} <= live.keys():
        live["I"] = live["II"] - live["III"]
    if "II" not in live and {"I", "III"} <= live.keys():
        live["II"] = live["I"] + live["III"]
    if {"I", "II"} <= live.keys():
        i, ii = live["I"], live["II"]
        derived = {"III": lambda: ii - i, "aVR": lambda: -(i + ii) / 2, "aVL": lambda: i - ii / 2,
                   "aVF": lambda: ii - i / 2}
        for name, row in derived.items():  # only those not recorded (a 12-lead window derives none)
            if name not in live:
                live[name] = row()
        indep = [n for n in _INDEP if n in live]
    else:
        indep = [n for n in LEADS if n in live]
    names = [n for n in LEADS if n in live]
    own_rows = x is not x_in and [have.get(n) for n in names] == list(range(x.shape[0]))
    if own_rows and all(live[n] is not None and live[n].base is x for n in names):
        stacked = x  # e.g. a 12-lead window: no stacked copy
    else:
        stacked = np.stack([live[n] for n in names])
    return {n: live[n] for n in names}, indep, stacked


def _derive(ind: dict[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """The measured leads from the independent ones (limb leads by Einthoven and Goldberger)."""
    out = dict(ind)
    if {"I", "II"} <= ind.keys():
        i, ii = ind["I"], ind["II"]
        out.update({"III": ii - i, "aVR": -(i + ii) / 2, "aVL": i - ii / 2, "aVF": ii - i / 2})
    return {n: out[n] for n in LEADS if n in out and n in names}


def _derive_stacked(y_ind: np.ndarray, indep: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """:func:`_derive` of the rows ``y_ind`` (the leads ``indep``) stacked as ``names`` (float64), the limb leads
    computed into their rows (the same arithmetic, no temporaries and no stacked copy)."""
    out = np.empty((len(names), y_ind.shape[1]))
    pos = {n: k for k, n in enumerate(names)}
    for k, n in enumerate(indep):
        out[pos[n]] = y_ind[k]
    if {"I", "II"} <= set(indep):
        i, ii = out[pos["I"]], out[pos["II"]]
        if "III" in pos:
            np.subtract(ii, i, out=out[pos["III"]])
        if "aVR" in pos:  # -(i + ii) / 2
            r = out[pos["aVR"]]
            np.add(i, ii, out=r)
            np.negative(r, out=r)
            np.divide(r, 2, out=r)
        if "aVL" in pos:  # i - ii / 2
            r = out[pos["aVL"]]
            np.divide(ii, 2, out=r)
            np.subtract(i, r, out=r)
        if "aVF" in pos:  # ii - i / 2
            r = out[pos["aVF"]]
            np.divide(i, 2, out=r)
            np.subtract(ii, r, out=r)
    return out


def _representative(
    y: np.ndarray, beats: np.ndarray, pre: int, post: int, rows: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Median beat ``[C, pre + post]`` of the leads ``y[rows]`` (default all) over the dominant beats, the beats
    used, and the noise.

    Dominant beats: QRS (+-60 ms) correlation >= 0.9 with the median QRS of all beats, on the leads stacked.
    Noise: the mean absolute deviation of those beats from the median beat (as a robust SD), divided by
    sqrt(n), i.e. what is left in the median beat.
    """
    rows = list(range(y.shape[0])) if rows is None else list(rows)
    pick = None if rows == list(range(y.shape[0])) else rows  # gathered arrays: the rows taken afterwards
    ok = beats[(beats - pre >= 0) & (beats + post <= y.shape[1])]
    if ok.size == 0:
        return np.zeros((len(rows), pre + post)), ok, np.inf
    q = int(0.06 * ANALYSIS_FS)
    # the QRS of every beat first; the whole beats only of those kept (no gather of beats then dropped)
    qrs = np.take(y, np.arange(-q, q)[:, None] + ok[None, :], axis=1)
    qrs = (qrs if pick is None else qrs[pick]).transpose(2, 0, 1).reshape(ok.size, -1)
    qrs = qrs - qrs.mean(axis=1, keepdims=True)
    tmpl = median(qrs, axis=0)
    denom = np.linalg.norm(qrs, axis=1) * max(np.linalg.norm(tmpl), 1e-12)
    corr = (qrs @ tmpl) / np.maximum(denom, 1e-12)
    keep = corr >= 0.9
    if keep.sum() < MIN_BEATS:
        keep = corr >= np.sort(corr)[-min(MIN_BEATS, corr.size)]
    used = ok[keep]
    # [C, W] per block of consecutive rows, the beats as views (median_of: no [C, W, B] gather and sort)
    blocks, start = [], 0
    for k in range(1, len(rows) + 1):
        if k == len(rows) or rows[k] != rows[k - 1] + 1:
            blocks.append(slice(rows[start], rows[k - 1] + 1))
            start = k
    parts = [median_of([y[blk, b - pre : b + post] for b in used.tolist()]) for blk in blocks]
    rep = parts[0] if len(parts) == 1 else np.concatenate(parts)
    # the noise estimate needs no more than every 4th sample: those of every beat, [C, W / 4, B]
    dev = np.take(y, np.arange(-pre, post, 4)[:, None] + used[None, :], axis=1)
    dev = dev if pick is None else dev[pick]
    dev -= rep[:, ::4, None]
    np.abs(dev, out=dev)
    sd = dev.reshape(len(rows), -1).mean(axis=1) * 1.2533
    noise = float(median(sd) / np.sqrt(max(used.size, 1)))
    return rep, used, noise


def _delineate(
    rep: Mapping[str, np.ndarray], indep: Sequence[str], pre: int, rr_s: float
) -> tuple[dict, dict[str, dict]]:
    """Every lead's representative beat delineated at 250 Hz; the independent leads combined.

    Returns ``(bounds, per_lead)``: boundaries in samples of the beats (500 Hz; ``None`` when not found)
    with ``p_present``, and each lead's own boundaries (derived limb leads included, for their matrix).
    """
    names = list(rep)
    r250 = np.stack([rep[n][::_DECIM] for n in names])
    w = wavelet_scales(r250, only=scales_read())
    found = dict(zip(names, delineate_leads(w, r250, pre // _DECIM, rr_s * DELINEATION_FS), strict=True))
    per = [found[n] for n in indep]
    bounds: dict = {}
    for b in BOUNDARIES:
        v = combine_leads(np.array([np.nan if d[b] is None else d[b] for d in per]), b)
        bounds[b] = None if v is None else v * _DECIM
    votes = [d["p_present"] for d in per if d["p_present"] is not None]
    bounds["p_present"] = None if not votes else sum(votes) * 2 >= len(votes)
    if not bounds["p_present"]:
        bounds["p_on"] = bounds["p_off"] = None
    per_lead = {
        n: {b: (None if d[b] is None else d[b] * _DECIM) for b in BOUNDARIES} for n, d in found.items()
    }
    return bounds, per_lead


def measure(x_mv: np.ndarray, fs: float, leads: Sequence[str] | None = None) -> Measurements:
    """Measurements of one window ``x_mv[C, T]`` (mV; 12 leads, 8 channels, or any leads named) at ``fs`` Hz.

    Returns a :class:`~edge.dsp.measurements.Measurements` (JSON-ready ``dict``): the global values of
    :data:`MEASUREMENT_KEYS`, ``leads`` (the per-lead matrix), ``beats`` (R positions, samples at ``fs``)
    with ``beat_types``/``beat_p``/``paced``, and ``null_reasons`` (why each ``None`` value could not be
    measured).
    """
    try:
        have, indep, x_all = _leads(x_mv, leads)
    except SignalError as exc:
        return empty_measurements(f"leads: {exc}")
    x_ind = np.stack([have[n] for n in indep])
    if not np.isfinite(x_ind).all():
        return empty_measurements("missing samples")
    if not fs or not np.isfinite(fs) or fs <= 0 or x_ind.shape[1] < 2 * fs:
        return empty_measurements("window shorter than 2 s")
    # Filter the independent leads and derive III, aVR, aVL, aVF afterwards: filtering is linear.
    y_ind, qrs_band = filter_resample_bands(x_ind, fs, ANALYSIS_FS, [BAND_HZ, QRS_BAND_HZ])
    sv, env = detection_envelope(qrs_band, ANALYSIS_FS, dtype=np.float64)
    beats = pick_beats(sv, env, ANALYSIS_FS)
    out = empty_measurements("")
    reasons: dict[str, str] = {}
    out["n_beats"] = int(beats.size)
    out["beats"] = [int(round(b * fs / ANALYSIS_FS)) for b in beats]
    # beat types, P before each beat, pacing spikes (on the raw samples) and atrial activity: edge.dsp.beat_types
    names = list(have)
    y_all = _derive_stacked(y_ind, indep, names)  # float64 (the filter's float32 widened exactly)
    y_all.flags.writeable = False  # read again below (the representative beat): nothing may write into it
    out.update(annotate_beats(x_all, fs, names, y=y_all, beats=beats))
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
    rr_med = float(median(rr))
    pre = 2 * int(min(0.45, max(0.2, 0.6 * rr_med)) * ANALYSIS_FS / 2)
    post = int(min(0.75, max(0.3, rr_med)) * ANALYSIS_FS)
    rep_ind, used, noise = _representative(y_all, beats, pre, post, [names.index(n) for n in indep])
    if used.size < MIN_BEATS:
        return _finish(out, reasons, f"fewer than {MIN_BEATS} complete beats of one shape")
    qrs_amp = float(np.ptp(rep_ind[:, pre - 30 : pre + 30], axis=1).max())
    if noise > MAX_NOISE_RATIO * qrs_amp:
        return _finish(out, reasons, "too much noise")
    rep = _derive(dict(zip(indep, rep_ind, strict=True)), list(have))
    bounds, per_lead = _delineate(rep, indep, pre, rr_med)
    if bounds["qrs_on"] is None or bounds["qrs_off"] is None:
        return _finish(out, reasons, "QRS not delineated")
    ms = 1000.0 / ANALYSIS_FS
    on, off = bounds["qrs_on"], bounds["qrs_off"]
    out["qrs_ms"] = _r((off - on) * ms)
    _p_wave_verdict(out, bounds)
    _intervals(out, reasons, bounds, rr_mean, rr_med, ms)
    matrix = lead_matrix(rep, ANALYSIS_FS, bounds, per_lead)
    out["leads"] = matrix
    if out["qt_ms"] is None and reasons.get("qt_ms") == "T end not found":
        t_amp = max(max(abs(m["t_pos_mv"] or 0.0), abs(m["t_neg_mv"] or 0.0)) for m in matrix.values())
        if t_amp < T_MIN_MV:
            reasons["qt_ms"] = reasons["qtc_ms"] = reasons["qtcf_ms"] = "flat T wave"
    axes_and_voltages(out, reasons, rep, bounds, ANALYSIS_FS)
    return _finish(out, reasons, "")


def flutter_waves(atrial: Mapping, hr_bpm: float | None, regular: bool | None) -> bool:
    """Is the atrial activity before the QRS flutter waves rather than P waves?

    Continuous (the beats' P template active over ``P_CONTINUOUS`` of its window) and either negative in II (at
    most ``P_II_FLUTTER_MV``) or, on a regular rhythm, organised waves at 240-360/min locked to an integer
    multiple (>= 2) of the ventricular rate (the rhythm analysis' locked-flutter reading)."""
    active, p_ii = atrial.get("p_window_active"), atrial.get("p_ii_mv")
    if active is None or active < P_CONTINUOUS:
        return False
    if p_ii is not None and p_ii <= P_II_FLUTTER_MV:
        return True
    rate, org = atrial.get("rate_bpm"), atrial.get("organisation") or 0.0
    if not regular or rate is None or not hr_bpm:
        return False
    ratio = rate / hr_bpm
    return (
        FLUTTER_WAVE_BPM[0] <= rate <= FLUTTER_WAVE_BPM[1]
        and ratio >= 1.8
        and abs(ratio - round(ratio)) < 0.2
        and org >= 0.3
        and (atrial.get("rms_mv") or 0.0) >= 0.03
    )


def _p_wave_verdict(out: dict, bounds: dict) -> None:
    """One P-wave verdict for the window, which the rhythm analysis and the consistency check both read.

    The beats' own P waves (``beat_p`` of the dominant and supraventricular beats, edge.dsp.beat_types) decide:
    on PTB-XL folds 1-9 they found the sinus family and first-degree block better than the representative
    beat's delineation (5/5 against 0/5 I度房室ブロック: a long-PR P wave lies outside the median beat's P
    search). At least ``P_BEATS_SHARE`` of the beats with a P wave: present; ``P_BEATS_NONE`` or fewer: absent
    (the PR then is not measured: a wave the delineator took for a P wave is fibrillatory or a flutter wave);
    between them, or without typed beats, the representative beat decides (between them, only a P wave upright
    in II, ``P_II_UPRIGHT_MV``). Flutter waves before every QRS
    (:func:`flutter_waves`) are no P wave, whatever the beats or the median beat show (PTB-XL folds 1-9 and the
    Challenge records: every flutter record continuous, active 0.58-0.78, and -0.12 to -0.33 mV in II;
    first-degree block, whose template also reaches back into the T wave, -0.06 mV or above).
    Where the beats say present (``p_beats_share`` at least ``P_BEATS_SHARE``) and the delineator found no P
    onset, the PR is the P template's (``template_pr_ms``, with ``pr_from`` "p_template"; else "delineation").
    """
    known = [bool(p) for p, t in zip(out.get("beat_p") or [], out.get("beat_types") or [], strict=False)
             if p is not None and t in ("N", "Q", "S")]
    share = sum(known) / len(known) if known else None
    present = bounds["p_present"]
    if flutter_waves(out.get("atrial") or {}, out.get("hr_bpm"), out.get("rhythm_regular")):
        present = False
    elif share is not None and share >= P_BEATS_SHARE:
        present = True
    elif share is not None and share <= P_BEATS_NONE:
        present = False
    elif share is not None and present:
        # a weak per-beat count: the median beat's P wave decides only if upright in II (as a sinus P wave is,
        # the rhythm analysis' tie-breaker too); a negative one among irregular beats is a fibrillatory wave
        p_ii = (out.get("atrial") or {}).get("p_ii_mv")
        present = p_ii is None or p_ii >= P_II_UPRIGHT_MV
    out["p_present"] = bounds["p_present"] = present
    out["p_beats_share"] = None if share is None else round(share, 3)
    if not present:
        bounds["p_on"] = bounds["p_off"] = None


def _intervals(out: dict, reasons: dict, bounds: dict, rr_mean: float, rr_med: float, ms: float) -> None:
    """PR, P duration, QT, QTc from the combined boundaries (a value out of range is null with the reason)."""
    on = bounds["qrs_on"]
    p_on, p_off = bounds["p_on"], bounds["p_off"]
    pr = None if p_on is None else (on - p_on) * ms
    if pr is not None and not PR_RANGE_MS[0] <= pr <= PR_RANGE_MS[1]:
        reasons["pr_ms"] = reasons["p_dur_ms"] = f"P onset implausible (PR {pr:.0f} ms)"
    elif pr is not None:
        out["pr_ms"] = _r(pr)
        if p_off is not None:
            out["p_dur_ms"] = _r((p_off - p_on) * ms)
        else:
            reasons["p_dur_ms"] = "P end not found"
    elif not bounds["p_present"]:
        irregular = out["rhythm_regular"] is False
        reasons["pr_ms"] = reasons["p_dur_ms"] = "no P wave" + (" (irregular rhythm)" if irregular else "")
    else:
        reasons["pr_ms"] = reasons["p_dur_ms"] = "P onset not found"
        tpr, share = out.get("template_pr_ms"), out.get("p_beats_share")
        if tpr is not None and (share or 0.0) >= P_BEATS_SHARE and PR_RANGE_MS[0] <= tpr <= PR_RANGE_MS[1]:
            out["pr_ms"], out["pr_from"] = _r(tpr), "p_template"
            del reasons["pr_ms"]
    if out["pr_ms"] is not None:
        out.setdefault("pr_from", "delineation")
    qt = None if bounds["t_end"] is None else (bounds["t_end"] - on) * ms
    if qt is not None and not QT_MIN_MS <= qt <= QT_MAX_RR * rr_med * 1000:
        reasons["qt_ms"] = reasons["qtc_ms"] = reasons["qtcf_ms"] = f"T end implausible (QT {qt:.0f} ms)"
    elif qt is not None:
        out["qt_ms"] = _r(qt)
        out["qtc_ms"] = _r(qt / np.sqrt(rr_mean))
        out["qtcf_ms"] = _r(qt / np.cbrt(rr_mean))
    else:
        reasons["qt_ms"] = reasons["qtc_ms"] = reasons["qtcf_ms"] = "T end not found"


def _finish(out: Measurements, reasons: dict[str, str], default: str) -> Measurements:
    """Fill ``null_reasons`` for every ``None`` value (``default`` where no specific reason is known)."""
    out["null_reasons"] = {
        k: reasons.get(k, default or "not measurable") for k in MEASUREMENT_KEYS if out.get(k) is None
    }
    return out
