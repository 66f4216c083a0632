"""Is this window a possible 12-lead ECG? Input integrity checks (DESIGN.md contract 5 v3 ``quality.inconsistent``).

A device can send samples that are clean but cannot come from a correctly wired, correctly scaled 12-lead
ECG. These checks run on the raw window as the device sent it, on the leads the quality check kept, and
return codes the decision reads (statements that need an inconsistent lead are withheld):

- ``einthoven``: I, II and III all sent and ``III != II - I``. Einthoven's law holds for any wiring of the
  three limb electrodes, so a failure means the channels were scaled or filtered apart (a database header
  that scales every lead to 1 mV peak to peak, a channel with the wrong gain).
- ``goldberger``: aVR, aVL, aVF sent and not equal to ``-(I+II)/2``, ``I - II/2``, ``II - I/2``.
- ``scale``: a lead whose scale is implausible beside the others: every lead with the same peak-to-peak
  amplitude (a per-lead normalised record: real leads differ several-fold, aVL and III are small), or a
  limb lead whose Einthoven residual disappears when its own gain is fitted (one channel with a wrong gain).
- ``limb_reversal``: the right- and left-arm electrodes swapped (lead I inverted: it and aVL point away from
  the lateral chest leads V5/V6, aVR towards them), or the right-arm and left-leg electrodes swapped (lead II
  inverted, aVR and aVF trading places). The left-arm/left-leg swap changes no polarity a correlation can
  see (I <-> II, III inverted) and is not detected.

The checks compare slopes (first differences after removing each lead's mean), so baseline wander and
electrode offsets cancel, and they are linear: exactly zero residual for a cart that derives III and the
augmented leads from I and II. Everything is a handful of vector operations on ``[C, T]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.dsp.beats import median  # np.median's values without importing numpy.ma (1.2 MiB, #23)

__all__ = [
    "EINTHOVEN",
    "GOLDBERGER",
    "LIMB_REVERSAL",
    "SCALE",
    "INCONSISTENT_CODES",
    "IntegrityConfig",
    "check_integrity",
]

EINTHOVEN = "einthoven"
GOLDBERGER = "goldberger"
LIMB_REVERSAL = "limb_reversal"
SCALE = "scale"
INCONSISTENT_CODES = (EINTHOVEN, GOLDBERGER, LIMB_REVERSAL, SCALE)

_BLOCKS = 10  # the residuals are medians over this many stretches of the window
_STEP_S = 0.01  # samples averaged in 10-ms blocks, slopes over two blocks (20 ms)
_LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")
_CHEST = ("V1", "V2", "V3", "V4", "V5", "V6")


@dataclass(frozen=True)
class IntegrityConfig:
    """Thresholds of the integrity checks (measured on the real records in ../shared: see tests/test_integrity.py)."""

    einthoven_tol: float = (
        0.06  # median rms(III - (II - I)) / rms slope above this: inconsistent (real: <= 0.013)
    )
    goldberger_tol: float = 0.06  # same for each augmented lead against its definition (real: <= 0.022)
    gain_fit_tol: float = 0.03  # ... and a per-lead gain fit brings it below this: a scale error
    gain_off: float = 0.2  # ... with a fitted gain this far from 1
    equal_ptp_cv: float = 0.03  # peak-to-peak amplitudes of >= 6 leads this alike: a normalised record
    # LA/RA: corr(I,V6) + corr(I,V5) + corr(aVL,V6) - corr(aVR,V6) below this (about +2.6 when wired right)
    reversal_score: float = -1.0
    # RA/LL: corr(II,V6) + corr(II,V5) + corr(aVF,V6) - corr(aVR,V6) below this (II inverted, aVR <-> aVF)
    reversal_score_ra_ll: float = -1.5
    min_slope_mv: float = 1e-4  # leads with less slope energy than this (mV per sample, rms) are not compared


def _slopes(x: np.ndarray, step: int) -> np.ndarray:
    """Slopes over 20 ms of each lead after averaging blocks of ``step`` samples (10 ms), float64.

    Baseline and offsets cancel; a pacing spike or a one-sample glitch is spread thin (a plain first
    difference lets a 2-mV one-sample glitch outweigh every QRS of the window); the block average is a
    linear low-pass, so Einthoven's and Goldberger's laws hold for the slopes exactly as for the samples.
    """
    x = np.asarray(x)
    n = x.shape[1] // step
    if n < 4:
        return np.diff(x.astype(np.float64), axis=1)
    end = n * step
    acc = x[:, 0:end:step].astype(np.float64)  # strided adds: several times faster than a reshaped mean
    for k in range(1, step):
        acc += x[:, k:end:step]
    acc /= step
    return acc[:, 2:] - acc[:, :-2]


def _residuals(
    target: np.ndarray, expected: np.ndarray, scale: np.ndarray, blocks: int = _BLOCKS
) -> np.ndarray:
    """Per row: the median over ``blocks`` stretches of rms(target - expected) / rms scale of that stretch.

    The median keeps a local glitch in one lead (a second of artefact) from counting as a wiring fault,
    while a scale or wiring fault is there in every stretch. ``scale`` (per row) is the window's rms slope
    scale, a floor that keeps a quiet stretch (a long pause) from dividing by nothing.
    """
    k, t = target.shape
    n = t // blocks
    if n < 2:
        diff = target - expected
        return np.sqrt((diff * diff).mean(axis=1)) / np.maximum(scale, 1e-12)
    tt, ee = target[:, : n * blocks], expected[:, : n * blocks]
    res = (tt - ee).reshape(k, blocks, n)
    ref = np.maximum(np.abs(tt), np.abs(ee)).reshape(k, blocks, n)
    num = np.sqrt(np.einsum("kbn,kbn->kb", res, res) / n)
    den = np.maximum(np.sqrt(np.einsum("kbn,kbn->kb", ref, ref) / n), 0.25 * scale[:, None])
    return median(num / np.maximum(den, 1e-12), axis=1)


def _corrs(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    """Pearson correlation of each pair of equally long rows, all pairs in one pass: each distinct row centred
    once, its squares and the pairs' products summed along the row exactly as for one pair alone (the same
    values to the last bit; the last steps in Python floats, which round as numpy's float64 scalars do)."""
    rows: list[np.ndarray] = []
    at: dict[int, int] = {}
    for pair in pairs:
        for r in pair:
            if id(r) not in at:
                at[id(r)] = len(rows)
                rows.append(r)
    c = np.stack(rows)
    c -= c.mean(axis=1, keepdims=True)
    sq = (c * c).sum(axis=1).tolist()
    ia = [at[id(a)] for a, _ in pairs]
    ib = [at[id(b)] for _, b in pairs]
    sab = (c[ia] * c[ib]).sum(axis=1).tolist()
    out = []
    for k in range(len(pairs)):
        den = math.sqrt(sq[ia[k]] * sq[ib[k]])
        out.append(sab[k] / den if den > 0 else 0.0)
    return out


def check_integrity(
    x_mv: np.ndarray,
    leads: Sequence[str],
    config: IntegrityConfig | None = None,
    sent: Sequence[str] | None = None,
    fs: float | None = None,
) -> dict:
    """Integrity of a raw window ``x_mv[C, T]`` (mV, finite) whose channels are the canonical ``leads``.

    ``sent`` names the leads the device measured itself (default: all of ``leads``); derived leads are
    consistent by construction and are not checked against their definition. Leave out leads that are off
    or flat (the quality check's job). ``fs`` (Hz) sets the slopes' 10-ms blocks (one sample without it). Returns ``{"inconsistent": [codes], "leads": {code: [lead names]},
    "values": {name: value}}``; ``leads`` names the leads each code makes untrustworthy.
    """
    cfg = config or IntegrityConfig()
    x = np.asarray(x_mv)
    names = list(leads)
    sent_set = set(names if sent is None else sent)
    step = max(1, int(round(_STEP_S * fs))) if fs else 1
    d = _slopes(x, step) if x.shape[1] > 1 else np.zeros((x.shape[0], 0))
    row = {n: d[i] for i, n in enumerate(names)}
    codes: dict[str, list[str]] = {}
    values: dict[str, float] = {}

    rms = np.sqrt(np.einsum("ij,ij->i", d, d) / max(d.shape[1], 1))  # rms slope of every lead, one pass
    rms_of = {n: float(rms[i]) for i, n in enumerate(names)}
    # Einthoven (III = II - I, when all three were measured) and Goldberger (the augmented leads from I and
    # II) residuals, all in one vectorised pass: (name, measured, expected, scale floor).
    checks: list[tuple[str, np.ndarray, np.ndarray, float]] = []
    if {"I", "II", "III"} <= sent_set:
        scale = max(rms_of["I"], rms_of["II"], rms_of["III"])
        if scale > cfg.min_slope_mv:
            checks.append((EINTHOVEN, row["III"], row["II"] - row["I"], scale))
    aug = [n for n in ("aVR", "aVL", "aVF") if n in sent_set] if {"I", "II"} <= sent_set else []
    if aug:  # the augmented leads' expected slopes and their rms in one array (the same values row by row)
        li, lii = row["I"], row["II"]
        exp = {"aVR": lambda: -(li + lii) / 2, "aVL": lambda: li - lii / 2, "aVF": lambda: lii - li / 2}
        es = np.stack([exp[n]() for n in aug])
        rms_e = np.sqrt((es * es).mean(axis=1)).tolist() if es.shape[1] else [0.0] * len(aug)
        for name, e, r in zip(aug, es, rms_e, strict=True):
            scale = max(rms_of[name], r)
            if scale > cfg.min_slope_mv:
                checks.append((name, row[name], e, scale))
    if checks:
        res = _residuals(
            np.stack([c[1] for c in checks]),
            np.stack([c[2] for c in checks]),
            np.array([c[3] for c in checks]),
        )
        bad = []
        for (name, target, _expected, scale), r in zip(checks, res, strict=True):
            if name == EINTHOVEN:
                values["einthoven_residual"] = round(float(r), 3)
                if r > cfg.einthoven_tol:
                    codes[EINTHOVEN] = ["I", "II", "III"]
                    # One channel with a wrong gain: fit III ~ a*II - b*I; a good fit with a or b far from 1.
                    a_mat = np.stack([row["II"], -row["I"]], axis=1)
                    coef, *_ = np.linalg.lstsq(a_mat, target, rcond=None)
                    fit = float(_residuals((a_mat @ coef)[None], target[None], np.array([scale]))[0])
                    values["einthoven_fit_residual"] = round(fit, 3)
                    if fit < cfg.gain_fit_tol and np.abs(coef - 1.0).max() > cfg.gain_off:
                        codes[SCALE] = ["I", "II", "III"]
                continue
            values[f"goldberger_residual_{name}"] = round(float(r), 3)
            if r > cfg.goldberger_tol:
                bad.append(name)
        if bad:
            codes[GOLDBERGER] = ["I", "II", *bad]
    # Scale: every sent lead with the same peak-to-peak amplitude (per-lead normalised).
    sent_rows = [i for i, n in enumerate(names) if n in sent_set]
    if len(sent_rows) >= 6:
        ptp = np.ptp(x if len(sent_rows) == x.shape[0] else x[sent_rows], axis=1)
        mean = float(ptp.mean())
        if mean > 0:
            cv = float(ptp.std() / mean)
            values["ptp_cv"] = round(cv, 4)
            if cv < cfg.equal_ptp_cv:
                codes[SCALE] = [names[i] for i in sent_rows]
    # LA/RA reversal: lead I and aVL point away from the lateral chest leads, aVR towards them. With the
    # arm electrodes swapped, I becomes -I and aVR and aVL trade places (II and III too); derived leads
    # follow the same swap, so this works for 8-channel devices as well.
    # Both reversal scores' correlations are computed together (_corrs), then each score summed as before.
    have = set(names)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    la_ra = {"I", "V5", "V6"} <= have and "I" in sent_set and ({"II"} <= have or {"aVR", "aVL"} <= have)
    ra_ll = {"II", "V5", "V6"} <= have and "II" in sent_set and ({"I"} <= have or {"aVR", "aVF"} <= have)
    if la_ra:
        li = row["I"]
        avr = row["aVR"] if "aVR" in row else -(li + row["II"]) / 2
        avl = row["aVL"] if "aVL" in row else li - row["II"] / 2
        pairs += [(li, row["V6"]), (li, row["V5"]), (avl, row["V6"]), (avr, row["V6"])]
    if ra_ll:
        lii = row["II"]
        avr = row["aVR"] if "aVR" in row else -(row["I"] + lii) / 2
        avf = row["aVF"] if "aVF" in row else lii - row["I"] / 2
        pairs += [(lii, row["V6"]), (lii, row["V5"]), (avf, row["V6"]), (avr, row["V6"])]
    corr = _corrs(pairs) if pairs else []
    if la_ra:
        c1, c2, c3, c4 = corr[:4]
        score = c1 + c2 + c3 - c4
        values["reversal_score"] = round(score, 3)
        if score < cfg.reversal_score:
            codes[LIMB_REVERSAL] = list(_LIMB)
    # RA/LL reversal: II inverted and aVR, aVF trading places (I and III become -III and -I).
    if ra_ll:
        c1, c2, c3, c4 = corr[-4:]
        score = c1 + c2 + c3 - c4
        values["reversal_score_ra_ll"] = round(score, 3)
        if score < cfg.reversal_score_ra_ll:
            codes[LIMB_REVERSAL] = list(_LIMB)
    return {
        "inconsistent": [c for c in INCONSISTENT_CODES if c in codes],
        "leads": {c: codes[c] for c in INCONSISTENT_CODES if c in codes},
        "values": values,
    }
