"""Per-label decision thresholds on the cosine scores of the encoder the device runs.

A label is a *finding* when its cosine score reaches its threshold (DESIGN.md, contract 5). Thresholds
are chosen per label on the validation folds by :func:`training.metrics.choose_thresholds` (the cut
that maximises F1), on the scores of the quantized model, since that is the model the device runs.
Labels without a positive validation example (extra labels, rare labels) get the 99th percentile of
their validation scores: such a label fires on about 1 % of ordinary windows, and only where the ECG
is unusually close to its text. The F1 cut is also bounded by the false-positive rate it allows on the
validation windows without the label: at most :data:`MAX_FPR` (F1 alone can prefer "always", when the
positives score poorly), and at most 1 % when fewer than :data:`MIN_POSITIVES` positives decide the cut
(one or two ECGs are noise, not a threshold).
"""

from __future__ import annotations

import numpy as np

from training.metrics import choose_thresholds

__all__ = ["NO_POSITIVES_PERCENTILE", "MIN_POSITIVES", "MAX_FPR", "label_thresholds"]

NO_POSITIVES_PERCENTILE = 99.0
MIN_POSITIVES = 5  # fewer validation positives than this: the threshold keeps negatives below ~1 % false positives
MAX_FPR = 0.20  # no threshold may fire on more than this share of validation windows without the label


def label_thresholds(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(thresholds float32[L], chosen_by_f1 bool[L])`` from validation scores and multi-hot targets.

    ``targets`` may have fewer columns than ``scores`` (extra labels without data come last).
    """
    full = np.zeros_like(scores, dtype=np.float32)
    full[:, : targets.shape[1]] = targets
    by_f1 = full.any(axis=0)
    thresholds = choose_thresholds(scores, full)
    # choose_thresholds already uses the 99th percentile for labels without positives; say so explicitly.
    for j in np.flatnonzero(~by_f1):
        thresholds[j] = np.percentile(scores[:, j], NO_POSITIVES_PERCENTILE)
    n_pos = full.sum(axis=0)
    for j in np.flatnonzero(by_f1):
        negatives = scores[full[:, j] == 0, j]
        if negatives.size:
            q = NO_POSITIVES_PERCENTILE if n_pos[j] < MIN_POSITIVES else 100 * (1 - MAX_FPR)
            thresholds[j] = max(thresholds[j], np.percentile(negatives, q))
    return thresholds.astype(np.float32), by_f1
