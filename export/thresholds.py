"""Per-label decision thresholds on the cosine scores of the encoder the device runs.

A label is a *finding* when its cosine score reaches its threshold (DESIGN.md, contract 5). Thresholds
are chosen per label on the validation folds by :func:`training.metrics.choose_thresholds` (the cut
that maximises F1), on the scores of the quantized model, since that is the model the device runs.
Labels without a positive validation example (extra labels, rare labels) get the 99th percentile of
their validation scores: such a label fires on about 1 % of ordinary windows, and only where the ECG
is unusually close to its text. An F1 cut that rests on fewer than :data:`MIN_POSITIVES` positives is
noise (one or two ECGs decide it, and it often lands low enough to fire on most windows), so such a
label's threshold is at least the 99th percentile of its scores on the validation windows without it.
"""

from __future__ import annotations

import numpy as np

from training.metrics import choose_thresholds

__all__ = ["NO_POSITIVES_PERCENTILE", "MIN_POSITIVES", "label_thresholds"]

NO_POSITIVES_PERCENTILE = 99.0
MIN_POSITIVES = 5  # fewer validation positives than this: the threshold keeps negatives below ~1 % false positives


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
    for j in np.flatnonzero(by_f1 & (n_pos < MIN_POSITIVES)):
        negatives = scores[full[:, j] == 0, j]
        if negatives.size:
            thresholds[j] = max(thresholds[j], np.percentile(negatives, NO_POSITIVES_PERCENTILE))
    return thresholds.astype(np.float32), by_f1
