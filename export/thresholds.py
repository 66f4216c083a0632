"""Per-label decision thresholds on the cosine scores of the encoder the device runs.

A label is a *finding* when its cosine score reaches its threshold (DESIGN.md, contract 5), before the
consistency rules of :mod:`edge.interpret.findings`. Thresholds are chosen per label on the validation folds, on
the scores of the quantized model (the model the device runs), over the windows on which the label is
*known* (a source that cannot state a label says nothing about it; :mod:`training.datasets.known`):

1. **Stated precision.** The lowest cut whose validation precision (PPV) is at least
   :data:`TARGET_PRECISION`, i.e. the most sensitive threshold at which at least that share of the
   label's findings were right on validation (at least :data:`MIN_POSITIVES` positives needed).
2. Where no cut reaches the precision: the cut that maximises F1 (:func:`training.metrics.choose_thresholds`).
3. Either cut is bounded by the false-positive rate it allows on the validation windows without the
   label: at most :data:`MAX_FPR`, and at most 1 % when fewer than :data:`MIN_POSITIVES` positives decide
   the cut (one or two ECGs are noise, not a threshold).
4. Labels without a known positive validation example (extra labels, rare labels) get the 99th
   percentile of their validation scores: such a label fires on about 1 % of ordinary windows.

Pass ``report={}`` to get, per label, the rule that chose its cut and its validation precision and
sensitivity there.
"""

from __future__ import annotations

import numpy as np

from training.metrics import choose_thresholds

__all__ = ["NO_POSITIVES_PERCENTILE", "MIN_POSITIVES", "MAX_FPR", "TARGET_PRECISION", "label_thresholds",
           "precision_cut"]

NO_POSITIVES_PERCENTILE = 99.0
MIN_POSITIVES = 5  # fewer validation positives than this: the threshold keeps negatives below ~1 % false positives
MAX_FPR = 0.20  # no threshold may fire on more than this share of validation windows without the label
TARGET_PRECISION = 0.6  # stated precision of a finding on validation (PPV), where the data allow it


def precision_cut(scores: np.ndarray, positive: np.ndarray, precision: float) -> float | None:
    """The lowest threshold (midway to the next lower score) whose precision is at least ``precision``.

    ``None`` when no cut reaches it.
    """
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], positive[order].astype(bool)
    tp = np.cumsum(t)
    ppv = tp / np.arange(1, len(s) + 1)
    # Only cuts between distinct scores are real thresholds.
    distinct = np.append(s[1:] < s[:-1], True)
    ok = np.flatnonzero((ppv >= precision) & distinct & t)
    if ok.size == 0:
        return None
    k = int(ok[-1])
    lower = s[k + 1] if k + 1 < len(s) else s[k] - 1e-3
    return float((s[k] + lower) / 2)


def label_thresholds(
    scores: np.ndarray,
    targets: np.ndarray,
    known: np.ndarray | None = None,
    precision: float = TARGET_PRECISION,
    report: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(thresholds float32[L], chosen_from_positives bool[L])`` from validation scores and multi-hot targets.

    ``targets`` (and ``known``) may have fewer columns than ``scores`` (extra labels without data come
    last; they are unknown everywhere).
    """
    n, n_labels = scores.shape
    full = np.zeros((n, n_labels), dtype=np.float32)
    full[:, : targets.shape[1]] = targets
    kn = np.zeros((n, n_labels), dtype=bool)
    if known is None:
        kn[:, : targets.shape[1]] = True
    else:
        kn[:, : known.shape[1]] = known.astype(bool)
    kn |= full > 0
    has_pos = full.any(axis=0)
    f1 = choose_thresholds(scores, full, known=kn)
    thresholds = np.empty(n_labels, dtype=np.float32)
    n_pos = full.sum(axis=0)
    for j in range(n_labels):
        rows = kn[:, j]
        s, t = scores[rows, j], full[rows, j] > 0
        how = "no_positives"
        if not has_pos[j]:
            thresholds[j] = np.percentile(scores[:, j], NO_POSITIVES_PERCENTILE)
        else:
            cut = precision_cut(s, t, precision) if n_pos[j] >= MIN_POSITIVES else None
            thresholds[j], how = (cut, "precision") if cut is not None else (f1[j], "f1")
            negatives = s[~t]
            if negatives.size:
                q = NO_POSITIVES_PERCENTILE if n_pos[j] < MIN_POSITIVES else 100 * (1 - MAX_FPR)
                bound = np.percentile(negatives, q)
                if bound > thresholds[j]:
                    thresholds[j], how = bound, how + "+fpr_bound"
        if report is not None:
            fired = s >= thresholds[j]
            tp = int((fired & t).sum())
            report[j] = {"method": how, "n_known": int(rows.sum()), "n_pos": int(t.sum()),
                         "ppv": tp / int(fired.sum()) if fired.any() else None,
                         "sensitivity": tp / int(t.sum()) if t.any() else None}
    return thresholds.astype(np.float32), has_pos
