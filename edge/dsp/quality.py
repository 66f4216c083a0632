"""Signal quality of one raw window, checked before preprocessing (DESIGN.md, contract 5).

A window is classified only when its raw signal is trustworthy; otherwise the runtime reports it with
``quality.ok = false`` and no findings. The checks run on the raw millivolt window ``[C, T]`` as the
device sent it (before limb leads are derived, resampled or normalised, because z-scoring would hide
a flat or clipped lead):

- ``missing_samples``: samples marked NaN (lost frames, bad CRC, outages); never invented.
- ``lead_off``: channels whose electrode-off bit was set in any frame of the window.
- ``flat``: channels whose standard deviation is below ``flat_mv`` (10 µV) over the window or, when the
  rate is known, over any ``flat_block_s`` (2 s) block of it, which always holds a heartbeat: an
  electrode that came off or shorted (also mid-window) without the device flagging it.
- ``saturated``: channels with at least ``saturation_fraction`` of their samples at the ADC rails
  (when the rail is known) or beyond ``max_abs_mv`` (10 mV): a clipping front end or a wrong gain.
- ``implausible``: channels whose peak-to-peak amplitude exceeds ``max_ptp_mv`` (20 mV): far beyond
  any QRS complex, so motion, a gain error or a defibrillator pulse.

A flagged channel does not fail the window (contract 5 v3): ``usable_leads`` lists the twelve standard leads
the window can be read from (sent and clean, or derived from clean limb leads by Einthoven/Goldberger), and
the window is ``ok`` (classified) while at least one usable lead remains and no sample is missing. The
integrity checks (``edge.dsp.integrity``: Einthoven, Goldberger, limb-electrode reversal, implausible
scale) add ``inconsistent`` codes; inconsistent limb leads leave ``usable_leads`` (rhythm and chest leads
are still read) and ``integrity`` keeps the leads and values behind each code. :func:`usable_twelve` gives the
window with the unusable leads zeroed, as the model input and the measurements take it.

Everything is vectorised over channels; one 12 x 5000 window takes about a millisecond.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edge.dsp.integrity import LIMB_REVERSAL, SCALE, IntegrityConfig, check_integrity
from edge.dsp.signal import LEADS, LIMB_LEADS

__all__ = [
    "PROBLEM_KEYS",
    "QualityConfig",
    "assess_window",
    "lead_off_names",
    "failed_quality",
    "usable_leads",
    "usable_twelve",
    "flagged_leads",
]

# The per-lead problems of a report, each a list of lead names, in display order (listed here once; the typed
# report is edge.runtime.result.Quality).
PROBLEM_KEYS = ("lead_off", "flat", "saturated", "implausible")

_LIMB_CODES_DROP = ("einthoven", "goldberger", LIMB_REVERSAL)  # limb leads not read at all


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the window quality check."""

    flat_mv: float = 0.01  # a channel with std below this (10 µV) is flat
    flat_block_s: float = 2.0  # ... over the whole window or over any block this long (needs fs)
    max_abs_mv: float = 10.0  # |x| beyond this (mV) counts as a saturated sample
    saturation_fraction: float = (
        0.01  # share of samples at the rails / beyond max_abs_mv that flags a channel
    )
    max_ptp_mv: float = 20.0  # peak-to-peak (mV) above this is implausible
    max_missing: int = 0  # more missing samples than this fail the window (0: any missing sample fails)
    integrity: IntegrityConfig | None = IntegrityConfig()  # None: no integrity checks


def lead_off_names(lead_off: int | np.ndarray | Sequence[str], leads: Sequence[str]) -> list[str]:
    """Names of the channels flagged lead-off.

    ``lead_off`` is a bit mask over channels (bit i = channel i, as in SAMPLES frames), an array of
    per-sample masks (OR-ed), or already a list of names (returned as is).
    """
    if isinstance(lead_off, np.ndarray):
        mask = int(np.bitwise_or.reduce(lead_off.astype(np.int64).ravel())) if lead_off.size else 0
    elif isinstance(lead_off, (int, np.integer)):
        mask = int(lead_off)
    else:
        return [str(name) for name in lead_off]
    return [name for i, name in enumerate(leads) if mask >> i & 1]


def _names(flags: np.ndarray, leads: Sequence[str]) -> list[str]:
    return [leads[i] for i in np.flatnonzero(flags)]


def assess_window(
    x_mv: np.ndarray,
    leads: Sequence[str],
    lead_off: int | np.ndarray | Sequence[str] = 0,
    rail_mv: float | None = None,
    config: QualityConfig | None = None,
    fs: float | None = None,
) -> dict:
    """Quality of a raw window ``x_mv[C, T]`` (NaN = missing sample) with channel names ``leads``.

    ``lead_off`` is a bit mask over channels (the OR of the frames' ``lead_off`` fields), an array of
    per-sample masks (OR-ed here), or a list of lead names. ``rail_mv`` is the ADC full scale in mV
    (``32767 * lsb_nv / 1e6`` for the wire protocol); samples at or beyond it count as saturated.
    ``fs`` (Hz) enables the block-wise flat check.

    Returns ``{"ok", "missing_samples", "lead_off", "flat", "saturated", "implausible", "usable_leads",
    "inconsistent"}`` (and ``integrity`` when a code is set); ``ok`` is true when no sample is missing (beyond
    ``max_missing``) and at least one lead is usable.
    """
    cfg = config or QualityConfig()
    x = np.asarray(x_mv, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != len(leads):
        raise ValueError(f"window of shape {x.shape} for {len(leads)} lead names")
    off = lead_off_names(lead_off, leads)

    finite = np.isfinite(x)
    n_missing = int(x.shape[1] - finite.all(axis=0).sum()) if x.size else 0
    if n_missing == x.shape[1]:
        # Nothing arrived (an outage): no statistics to compute.
        return {
            "ok": False,
            "missing_samples": n_missing,
            **{key: [] for key in PROBLEM_KEYS},
            "lead_off": off,
            "usable_leads": [],
            "inconsistent": [],
        }
    if n_missing:
        # Rare path: statistics over the samples that did arrive.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels
            std = np.nanstd(x, axis=1)
            ptp = np.nanmax(x, axis=1) - np.nanmin(x, axis=1)
        counts = np.maximum(finite.sum(axis=1), 1)
        std, ptp = np.nan_to_num(std, nan=0.0), np.nan_to_num(ptp, nan=0.0)
        xa = np.where(finite, np.abs(x), 0.0)
    else:
        std = x.std(axis=1)
        hi, lo = x.max(axis=1), x.min(axis=1)
        ptp = hi - lo
        counts = np.full(x.shape[0], max(x.shape[1], 1))
        xa = None
    limit = cfg.max_abs_mv if rail_mv is None else min(cfg.max_abs_mv, rail_mv * 0.999)
    if xa is None:  # samples at the limit counted only in the channels whose peak |x| reaches it (usually none)
        n_sat = np.zeros(x.shape[0], dtype=np.intp)
        hot = np.flatnonzero(np.maximum(hi, -lo) >= limit)
        if hot.size:
            n_sat[hot] = (np.abs(x[hot]) >= limit).sum(axis=1)
    else:
        n_sat = (xa >= limit).sum(axis=1)
    saturated = n_sat / counts >= cfg.saturation_fraction
    flat = (std < cfg.flat_mv) & (counts > 1)
    block = int(cfg.flat_block_s * fs) if fs else 0
    if block > 1 and x.shape[1] >= 2 * block:
        nb = x.shape[1] // block
        blocks = x[:, : nb * block].reshape(x.shape[0], nb, block)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
            bstd = np.nanstd(blocks, axis=2) if n_missing else blocks.std(axis=2)
        flat |= (np.nan_to_num(bstd, nan=np.inf) < cfg.flat_mv).any(axis=1)
    implausible = ptp > cfg.max_ptp_mv
    report = {
        "ok": True,
        "missing_samples": n_missing,
        "lead_off": off,
        "flat": _names(flat, leads),
        "saturated": _names(saturated, leads),
        "implausible": _names(implausible & ~saturated, leads),
    }
    bad = set(off) | set(report["flat"]) | set(report["saturated"]) | set(report["implausible"])
    usable = usable_leads(leads, bad)
    inconsistent: list[str] = []
    if cfg.integrity is not None and not n_missing and usable:
        good = [i for i, name in enumerate(leads) if name not in bad and name in LEADS]
        rows = x if len(good) == x.shape[0] else x[good]  # no copy of a window whose every channel is kept
        check = check_integrity(rows, [leads[i] for i in good], cfg.integrity, fs=fs)
        inconsistent = check["inconsistent"]
        if inconsistent:
            report["integrity"] = {"leads": check["leads"], "values": check["values"]}
            drop = {lead for code in _LIMB_CODES_DROP for lead in check["leads"].get(code, [])}
            if SCALE in check["leads"] and set(check["leads"][SCALE]) <= set(LIMB_LEADS):
                drop |= set(LIMB_LEADS)  # one limb channel with a wrong gain: no limb lead can be trusted
            if drop:
                usable = [name for name in usable if name not in set(LIMB_LEADS)]
    report["usable_leads"] = usable
    report["inconsistent"] = inconsistent
    report["ok"] = n_missing <= cfg.max_missing and bool(usable)
    return report


def flagged_leads(report: dict) -> list[str]:
    """Channels a quality report flags (off, flat, saturated or implausible), once each."""
    out: list[str] = []
    for key in PROBLEM_KEYS:
        out += [name for name in report.get(key) or [] if name not in out]
    return out


def usable_leads(leads: Sequence[str], bad: set[str] | Sequence[str] = ()) -> list[str]:
    """The standard leads (:data:`LEADS` order) readable from channels ``leads`` when those in ``bad`` are not.

    A clean channel is usable as sent; a limb lead not sent (or not clean) is usable when two clean limb
    leads of I, II, III give it (Einthoven and Goldberger, as ``edge.dsp.signal.to_twelve_leads`` derives
    them). Unknown channel names are ignored.
    """
    ok = {name for name in leads if name in LEADS and name not in set(bad)}
    if len(ok & {"I", "II", "III"}) >= 2:
        ok |= set(LIMB_LEADS)
    return [name for name in LEADS if name in ok]


def usable_twelve(
    x_mv: np.ndarray, leads: Sequence[str], usable: Sequence[str], bad: Sequence[str] = ()
) -> np.ndarray:
    """The window as float32 ``[12, T]`` in :data:`LEADS` order with every lead not in ``usable`` zero.

    ``leads`` are the canonical channel names of ``x_mv[C, T]``; ``bad`` the channels flagged by the quality
    check (a quality report's ``lead_off``, ``flat``, ``saturated``, ``implausible``). Limb leads not sent or
    flagged are derived from two clean ones of I, II, III. A zero lead is what the model was trained to see for a
    missing lead (lead dropout in training) and adds nothing to the measurements' beat detection.
    """
    x = np.asarray(x_mv, dtype=np.float32)
    keep, flagged = set(usable), set(bad)
    row = {name: x[i] for i, name in enumerate(leads) if name in keep and name not in flagged}
    if "I" not in row and {"II", "III"} <= row.keys():
        row["I"] = row["II"] - row["III"]
    if "II" not in row and {"I", "III"} <= row.keys():
        row["II"] = row["I"] + row["III"]
    if {"I", "II"} <= row.keys():
        lead_i, lead_ii = row["I"], row["II"]
        derived = {
            "III": lead_ii - lead_i,
            "aVR": -(lead_i + lead_ii) / 2,
            "aVL": lead_i - lead_ii / 2,
            "aVF": lead_ii - lead_i / 2,
        }
        for name, value in derived.items():
            row.setdefault(name, value)
    out = np.zeros((len(LEADS), x.shape[1]), dtype=np.float32)
    for i, name in enumerate(LEADS):
        if name in keep and name in row:
            out[i] = row[name]
    return out


def failed_quality(reason: str, missing_samples: int = 0) -> dict:
    """A quality report for a window that could not be assessed or classified at all."""
    return {
        "ok": False,
        "missing_samples": int(missing_samples),
        **{key: [] for key in PROBLEM_KEYS},
        "usable_leads": [],
        "inconsistent": [],
        "error": reason,
    }


def model_window(x_mv: np.ndarray, names: Sequence[str], report: Mapping) -> tuple[np.ndarray, list[str]]:
    """The window as the model reads it: as sent when every lead is usable, else the twelve leads with the
    unusable ones zeroed (:func:`usable_twelve`); ``report`` is the window's quality report."""
    usable = report.get("usable_leads")
    if usable is None or (len(usable) == len(LEADS) and not flagged_leads(report)):
        return x_mv, list(names)
    return usable_twelve(x_mv, names, usable, flagged_leads(report)), list(LEADS)


def measured_leads(x: np.ndarray, names: Sequence[str], report: Mapping) -> tuple[np.ndarray, list[str]]:
    """The rows of ``x`` (named ``names``) that are usable leads, for the measurements (the delineation runs
    on any subset); all of them when the report does not say."""
    usable = report.get("usable_leads")
    if usable is None or len(usable) == len(LEADS) or not usable:
        return x, list(names)
    keep = [i for i, name in enumerate(names) if name in set(usable)]
    return x[keep], [names[i] for i in keep]
