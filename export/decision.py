"""How measurements enter the device's decision, chosen at export on the validation folds.

The findings of labels defined by a measurement (sinus tachycardia, first-degree AV block, axis deviation,
low voltage, QT prolongation, ...) are decided by criteria on the contract-7 measurements
(``edge/data/findings_rules.json``, ``edge.interpret.findings``). The ranking stays contrastive: every label is
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

from edge.interpret.findings import FindingRules, load_rules_doc
from training.metrics import per_label_topk_recall, topk_accuracy

__all__ = ["WEIGHT_GRID", "choose_decision"]

WEIGHT_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)


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
        recall = per_label_topk_recall(adj, targets * known, 5, known=known)[cols]  # filtered, known labels
        row = {
            "weight": w,
            "top1": topk_accuracy(adj, targets * known, 1, known),
            "top5": topk_accuracy(adj, targets * known, 5, known),
            "criteria_labels_top5_recall": float(np.nanmean(recall)) if np.isfinite(recall).any() else float("nan"),
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
