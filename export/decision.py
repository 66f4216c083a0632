"""How measurements enter the device's decision, chosen at export on the validation folds.

The findings of labels defined by a measurement (sinus tachycardia, first-degree AV block, axis deviation,
low voltage, QT prolongation, ...) are decided by criteria on the contract-7 measurements
(``edge/data/findings_rules.json``, ``edge.findings``). The ranking stays contrastive: every label is
scored against its text embedding, so new labels keep working zero-shot; a measurement-defined label is
moved up by ``criteria_weight`` where the window's measurement meets its definition and down where it
contradicts it (``FindingRules.adjust``). The weight is the one free parameter: it is chosen here on the
validation windows (their cached measurements, the int8 model's scores), from a small grid, and written
to the bundle's manifest with the whole table so a reader sees what it cost and gained. The rules
themselves are copied into the manifest, so a bundle decides the same way on every runtime version.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.findings import FindingRules, load_rules_doc

__all__ = ["WEIGHT_GRID", "choose_decision"]

WEIGHT_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)


def _topk_any(scores: np.ndarray, targets: np.ndarray, known: np.ndarray, k: int) -> float:
    """Windows with a known positive whose top-k holds one of their labels (unknown labels skipped)."""
    s = np.where(known > 0, scores, -np.inf)
    has = (targets * known).sum(axis=1) > 0
    if not has.any():
        return float("nan")
    top = np.argsort(-s[has], axis=1, kind="stable")[:, :k]
    hit = np.take_along_axis(targets[has], top, axis=1).sum(axis=1) > 0
    return float(hit.mean())


def _criteria_recall(
    scores: np.ndarray, targets: np.ndarray, known: np.ndarray, cols: Sequence[int], k: int
) -> float:
    """Mean over the criteria labels with validation positives of their top-k recall (filtered: an ECG's
    other true labels do not compete)."""
    recalls = []
    for j in cols:
        pos = np.flatnonzero((targets[:, j] > 0) & (known[:, j] > 0))
        if pos.size == 0:
            continue
        s = scores[pos].copy()
        s[(targets[pos] > 0) & (np.arange(s.shape[1]) != j)] = -np.inf  # filtered setting
        s[known[pos] == 0] = -np.inf
        rank = (s > s[:, [j]]).sum(axis=1)
        recalls.append(float((rank < k).mean()))
    return float(np.mean(recalls)) if recalls else float("nan")


def choose_decision(
    scores: np.ndarray,
    targets: np.ndarray,
    known: np.ndarray | None,
    measurements: Sequence[dict | None] | None,
    labels: Sequence[dict],
    grid: Sequence[float] = WEIGHT_GRID,
) -> dict:
    """The manifest's ``decision`` block: rules, the chosen ``criteria_weight`` and the validation table.

    ``scores``/``targets``/``known`` are ``[N, n_labels]`` over the bundle's label rows; ``measurements``
    one dict per window (``None`` where not measured). The weight maximises the mean of top-1 accuracy,
    top-5 accuracy and the criteria labels' mean top-5 recall on validation (ties: the smaller weight).
    """
    doc = load_rules_doc()
    rules = FindingRules(labels, doc)
    targets = np.asarray(targets, dtype=np.float32)
    known = np.ones_like(targets) if known is None else np.asarray(known, dtype=np.float32)
    extra = scores.shape[1] - targets.shape[1]  # labels added at export (rows after the catalogue's): unknown
    if extra > 0:
        targets = np.pad(targets, ((0, 0), (0, extra)))
        known = np.pad(known, ((0, 0), (0, extra)))
    cols = sorted(rules.criteria)
    table = []
    usable = measurements is not None and any(m for m in measurements)
    for w in grid if usable else (0.0,):
        adj = np.stack(
            [rules.adjust(s, m, w) for s, m in zip(scores, measurements or [None] * len(scores), strict=True)]
        )
        row = {
            "weight": w,
            "top1": _topk_any(adj, targets, known, 1),
            "top5": _topk_any(adj, targets, known, 5),
            "criteria_labels_top5_recall": _criteria_recall(adj, targets, known, cols, 5),
        }
        vals = [v for v in (row["top1"], row["top5"], row["criteria_labels_top5_recall"]) if np.isfinite(v)]
        row["objective"] = float(np.mean(vals)) if vals else 0.0
        table.append(
            {k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else v) for k, v in row.items()}
        )
    best = max(table, key=lambda r: (r["objective"], -r["weight"]))
    return {
        "criteria_weight": float(best["weight"]),
        "chosen_by": "max mean of top-1, top-5 and the criteria labels' top-5 recall on the validation windows",
        "validation": table,
        "n_windows": int(len(scores)),
        "criteria_labels": [rules.ids[j] for j in cols],
        "rules": doc,
    }
