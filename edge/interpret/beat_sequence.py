"""What the rhythm statement reads from a window's beat sequence (DESIGN.md contract 8.1).

:mod:`edge.interpret.rhythm` decides the one rhythm statement; this module holds the measures of the beat
sequence it decides from: the beats with their types and P waves (:func:`beats`), the RR-irregularity measures
(:func:`rr_irregularity`), the premature-beat patterns (bigeminy / trigeminy, :func:`pattern`) and the
AV-conduction analysis (:func:`av_block`: the atrial events on one regular grid against the QRS, for 2:1,
Mobitz I, Mobitz II and complete block; :func:`long_pr` for first-degree block).

numpy and the standard library only (device code).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = [
    "AF_DRR",
    "AV_ATRIAL_MAX_BPM",
    "FIRST_DEGREE_PR_MS",
    "av_block",
    "beats",
    "long_pr",
    "pattern",
    "regular_chain",
    "rr_irregularity",
]

AF_DRR = 0.10  # successive RR difference (fraction of mean RR) that counts as a change
FIRST_DEGREE_PR_MS = 200.0
AV_ATRIAL_MAX_BPM = 180.0  # atrial events faster than this are fibrillation or flutter waves, not P waves


def rr_irregularity(rr_s: np.ndarray) -> dict[str, float]:
    """RR-interval irregularity measures of a beat sequence (seconds).

    ``cv`` coefficient of variation; ``nrmssd`` root mean square of successive differences / mean RR;
    ``change_share`` share of successive differences larger than ``AF_DRR`` x mean RR; ``tpr`` the turning
    point ratio (share of RR that are a local maximum or minimum; 2/3 expected for random order, near 0 for
    a smooth sinus modulation). Empty dict for fewer than 3 intervals.
    """
    rr = np.asarray(rr_s, dtype=np.float64)
    if rr.size < 3:
        return {}
    mean = float(rr.mean())
    d = np.diff(rr)
    mid = rr[1:-1]
    turning = ((mid > rr[:-2]) & (mid > rr[2:])) | ((mid < rr[:-2]) & (mid < rr[2:]))
    return {
        "cv": float(rr.std() / mean),
        "nrmssd": float(np.sqrt(np.mean(d * d)) / mean),
        "change_share": float(np.mean(np.abs(d) > AF_DRR * mean)),
        "tpr": float(turning.mean()) if mid.size else 0.0,
    }


def beats(m: Mapping) -> tuple[np.ndarray, list[str], list[bool | None]]:
    """Beat samples, types and P presence: contract 7 v2 (``beats`` positions with ``beat_types`` and
    ``beat_p``), or ``beats`` as dicts ``{"sample", "type", "p"}``; positions alone give type ``Q``."""
    raw = m.get("beats") or []
    bt, bp = m.get("beat_types") or [], m.get("beat_p") or []
    if raw and len(bt) == len(raw) and not isinstance(raw[0], Mapping):
        ps = list(bp) if len(bp) == len(raw) else [None] * len(raw)
        return np.asarray(raw, dtype=np.int64), [str(t) for t in bt], ps
    samples, types, ps = [], [], []
    for b in raw:
        if isinstance(b, Mapping):
            samples.append(int(b["sample"]))
            types.append(str(b.get("type", "Q")))
            ps.append(b.get("p"))
        else:
            samples.append(int(b))
            types.append("Q")
            ps.append(None)
    return np.asarray(samples, dtype=np.int64), types, ps


def pattern(types: list[str], every: int) -> bool:
    """Every ``every``-th beat premature (S or V) for at least 3 cycles: bigeminy (2) / trigeminy (3)."""
    prem = np.array([t in ("S", "V") for t in types])
    if prem.sum() < 3:
        return False
    best = 0
    for phase in range(every):
        slots = prem[phase::every]
        others = np.delete(prem, np.arange(phase, prem.size, every))
        run = cur = 0
        for v in slots:
            cur = cur + 1 if v else 0
            run = max(run, cur)
        if not others.any():
            best = max(best, run)
    return best >= 3


def regular_chain(
    p: np.ndarray, samples: np.ndarray, fs: float, max_period: float | None = None
) -> tuple[np.ndarray, float]:
    """The atrial events that lie on one regular grid (period, phase) and that period (s).

    The residual also holds what the QRS-T cancellation left (a T wave that changed with the RR) and misses P
    waves hidden in a QRS. Every event difference (and its half and third: P waves hidden in the QRS between)
    is tried as the period, up to ``max_period`` s, and every event as the anchor; a grid scores its hits (an
    event within 12 % of the period) minus half its misses (grid points with no event that do not fall within
    80 ms of a QRS, where a P wave hides)."""
    best, best_score, best_t = p[:0], -np.inf, 0.0
    lo = 60.0 / AV_ATRIAL_MAX_BPM * fs
    hi = min(1.6 * fs, (max_period or 1.6) * fs)
    cand = sorted(d / k for d in np.diff(p) for k in (1, 2, 3) if lo <= d / k <= hi)
    periods: list[float] = []
    for t in cand:  # one candidate per 3 %
        if not periods or t > periods[-1] * 1.03:
            periods.append(t)
    end = float(max(p[-1], samples[-1]))
    for t in periods:
        tol = 0.12 * t
        ph = p % t
        diff = np.abs(ph[:, None] - ph[None, :])
        on = np.minimum(diff, t - diff) <= tol  # [anchor, event]: the event lies on the anchor's grid
        n_hits = on.sum(axis=1)
        anchors = np.flatnonzero(n_hits >= max(4, n_hits.max() - 2))  # only anchors that can win
        if anchors.size == 0:
            continue
        # every anchor's grid at once, row a = np.arange(ph[a], end + 1, t) to the bit (numpy fills an arange
        # as start + i * ((start + step) - start), its second value as start + step)
        start = ph[anchors]
        lens = np.ceil((end + 1 - start) / t).astype(np.int64)
        steps = np.arange(max(int(lens.max()), 0))
        grid = start[:, None] + steps[None, :] * ((start + t) - start)[:, None]
        if steps.size > 1:
            grid[:, 1] = start + t
        j = np.clip(np.searchsorted(samples, grid), 1, samples.size - 1)
        gap = np.minimum(np.abs(samples[j] - grid), np.abs(samples[j - 1] - grid))
        k = np.clip(np.searchsorted(p, grid), 1, p.size - 1)
        dev = np.minimum(np.abs(p[k] - grid), np.abs(p[k - 1] - grid))
        missed = (dev > tol) & (gap > 0.08 * fs) & (steps[None, :] < lens[:, None])
        for a, misses in zip(anchors.tolist(), missed.sum(axis=1).tolist(), strict=True):
            score = n_hits[a] - 0.5 * misses
            if score > best_score or (score == best_score and t < best_t * fs):
                best, best_score, best_t = p[on[a]], score, t / fs
    if best.size >= 2:  # the period from all the hits, each gap counted in whole periods
        d = np.diff(best)
        k = np.maximum(1, np.round(d / (best_t * fs)))
        best_t = float(d.sum() / k.sum()) / fs
    return best, best_t


def av_block(m: Mapping, samples: np.ndarray, fs: float) -> tuple[str | None, str | None, int, float]:
    """(modifier, detail, non-conducted P count, atrial rate) from the atrial events against the QRS.

    The atrial events on one regular grid (:func:`regular_chain`, at most ``AV_ATRIAL_MAX_BPM``), with the
    grid points that fall in a QRS taken as hidden P waves, faster than the ventricles, and P waves that no QRS
    follows within 0.45 s: third degree when the ventricles beat regularly while the PR of each QRS (from the P
    before it) varies widely (AV dissociation); Mobitz I when the PR before a dropped P is longer than after it;
    2:1 when every other P is dropped at a constant PR; Mobitz II at a constant PR otherwise."""
    atrial = m.get("atrial") or {}
    p = np.asarray(atrial.get("p_waves") or [], dtype=np.int64)
    none = (None, None, 0, 0.0)
    if p.size < 4 or samples.size < 3 or p.size < samples.size + 2:
        return none  # fewer atrial events than an atrial rhythm faster than the ventricles gives
    rr_mean = float(np.diff(samples).mean()) / fs
    hits, period = regular_chain(p, samples, fs, max_period=rr_mean / 1.15)
    if hits.size < 4 or period <= 0:
        return none
    atrial_bpm = 60.0 / period
    rr = np.diff(samples) / fs
    vent_bpm = 60.0 / float(rr.mean())
    if atrial_bpm > AV_ATRIAL_MAX_BPM or atrial_bpm < vent_bpm * 1.15:
        return none  # AV block is read on a sinus (or atrial) rhythm faster than the ventricles
    t = period * fs
    # the P waves: the events found, and those the grid puts in a gap (hidden in a QRS, or missed), each gap
    # filled evenly; the window's edges extended by whole periods
    filled = [float(hits[0])]
    for a, b in zip(hits[:-1], hits[1:], strict=True):
        k = max(1, int(round((b - a) / t)))
        filled += [a + (b - a) * j / k for j in range(1, k + 1)]
    head = np.arange(hits[0] - t, 0.0, -t)[::-1]
    tail = np.arange(hits[-1] + t, samples[-1] + 0.1 * t, t)
    grid = np.concatenate([head, filled, tail])
    near_hit = (np.abs(grid[:, None] - hits[None, :]) <= 0.12 * t).any(axis=1)
    in_qrs = (np.abs(grid[:, None] - samples[None, :]) <= 0.08 * fs).any(axis=1)
    if (near_hit | in_qrs).sum() < 0.75 * grid.size:
        return none  # too many P waves the grid expects are neither found nor hidden in a QRS
    p_all = grid[near_hit | in_qrs]
    # PR of each QRS from the latest P at least 80 ms before it; a P with no QRS within 0.45 s is dropped
    pr = []
    for q in samples:
        before = p_all[p_all <= q - 0.08 * fs]
        if before.size and q - before[-1] <= 0.45 * fs:
            pr.append(float(q - before[-1]) / fs * 1000.0)
        else:
            pr.append(None)
    conducted_by = {}
    for i, a in enumerate(p_all):
        nxt = p_all[i + 1] if i + 1 < p_all.size else a + t
        q = samples[(samples >= a + 0.08 * fs) & (samples <= min(a + 0.45 * fs, nxt + 0.08 * fs))]
        conducted_by[i] = float(q[0] - a) / fs * 1000.0 if q.size else None
    dropped = [
        i
        for i, v in conducted_by.items()
        if v is None and p_all[i] + 0.45 * fs < samples[-1] and not in_qrs[np.argmin(np.abs(grid - p_all[i]))]
    ]
    if not dropped:
        return none
    known = np.array([v for v in pr if v is not None])
    if rr.std() / rr.mean() < 0.08 and (known.size < 3 or known.std() > 60.0) and len(dropped) >= 2:
        return "3AVB", None, len(dropped), atrial_bpm
    seq = [conducted_by[i] for i in range(p_all.size)]
    before = [seq[i - 1] for i in dropped if i >= 1 and seq[i - 1] is not None]
    after = [seq[i + 1] for i in dropped if i + 1 < len(seq) and seq[i + 1] is not None]
    if before and after and np.mean(before) - np.mean(after) > 40.0:
        return "MOBITZ1", None, len(dropped), atrial_bpm
    if known.size and known.std() > 40.0:
        return none  # neither a constant PR nor a Wenckebach pattern: not read as AV block
    if 1.8 <= atrial_bpm / vent_bpm <= 2.2:
        return "2AVB", "2:1", len(dropped), atrial_bpm
    return "MOBITZ2", None, len(dropped), atrial_bpm


def long_pr(m: Mapping) -> bool:
    """PR > 200 ms: the delineated PR (``pr_ms``) and the P template's (``template_pr_ms``) agree; where only
    one was measured, that one (with 20 ms more margin: one estimate alone is less sure)."""
    a, b = m.get("pr_ms"), m.get("template_pr_ms")
    if a is not None and b is not None:
        return a > FIRST_DEGREE_PR_MS and b > FIRST_DEGREE_PR_MS
    one = a if a is not None else b
    return one is not None and one > FIRST_DEGREE_PR_MS + 20.0
