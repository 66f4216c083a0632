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

Everything is vectorised over channels; one 12 x 5000 window takes well under a millisecond.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["QualityConfig", "assess_window", "lead_off_names", "failed_quality"]


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

    Returns ``{"ok", "missing_samples", "lead_off", "flat", "saturated", "implausible"}``; ``ok`` is
    true only when nothing is flagged.
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
            "lead_off": off,
            "flat": [],
            "saturated": [],
            "implausible": [],
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
        ptp = x.max(axis=1) - x.min(axis=1)
        counts = np.full(x.shape[0], max(x.shape[1], 1))
        xa = np.abs(x)
    limit = cfg.max_abs_mv if rail_mv is None else min(cfg.max_abs_mv, rail_mv * 0.999)
    saturated = (xa >= limit).sum(axis=1) / counts >= cfg.saturation_fraction
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
    report["ok"] = not (
        n_missing > cfg.max_missing or off or report["flat"] or report["saturated"] or report["implausible"]
    )
    return report


def failed_quality(reason: str, missing_samples: int = 0) -> dict:
    """A quality report for a window that could not be assessed or classified at all."""
    return {
        "ok": False,
        "missing_samples": int(missing_samples),
        "lead_off": [],
        "flat": [],
        "saturated": [],
        "implausible": [],
        "error": reason,
    }
