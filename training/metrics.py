"""Retrieval and classification metrics on label scores, pure numpy (shared by training, eval and export).

Scores are ``[N, L]`` (cosine similarity of ECG and label embeddings, or logits), targets a multi-hot
``[N, L]``. As in the reference study, an ECG is counted correct at top-k when any of its labels is
among the k best-scored labels. Per label, *top-5 recall* is the fraction of the ECGs carrying the
label that rank it among their 5 best, and AUROC ranks ECGs by the label's score (Mann-Whitney U).

An ECG usually carries several labels at once, and with the catalogue's hierarchy expanded (洞調律,
伝導障害, 脚ブロック, 完全右脚ブロック ...) the other true labels would take the top slots. Per-label
recall is therefore reported in the *filtered* setting of link prediction (Bordes et al. 2013): a
label is ranked only against the labels that are false for that ECG. The unfiltered figure is kept as
``top5_recall_raw``.
New labels (held out of training) are ranked against all labels, zero-shot through their texts.

Partial label sets: every function takes an optional ``known`` mask ``[N, L]`` (True where the ECG's
sources state the label; see :mod:`training.datasets.known`). An unknown label is neither a hit nor a
miss: it is left out of the ECG's ranking (top-k), out of the label's AUROC and out of its threshold.
``known=None`` means every label is known.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "topk_accuracy",
    "label_ranks",
    "per_label_topk_recall",
    "auroc",
    "per_label_auroc",
    "choose_thresholds",
    "evaluate_scores",
]


def _drop_unknown(scores: np.ndarray, targets: np.ndarray, known: np.ndarray | None) -> np.ndarray:
    """Scores with unknown (and not positive) labels pushed below every other label."""
    if known is None:
        return scores
    keep = known.astype(bool) | targets.astype(bool)
    return np.where(keep, scores, -np.inf)


def topk_accuracy(scores: np.ndarray, targets: np.ndarray, k: int, known: np.ndarray | None = None) -> float:
    """Fraction of ECGs (with at least one label) whose k best-scored known labels include one of theirs."""
    has = targets.any(axis=1)
    if not has.any():
        return float("nan")
    scores = _drop_unknown(scores, targets, known)
    s, t = scores[has], targets[has].astype(bool)
    k = min(k, s.shape[1])
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    return float(np.take_along_axis(t, top, axis=1).any(axis=1).mean())


def label_ranks(scores: np.ndarray) -> np.ndarray:
    """0-based rank of every label within each ECG's scores (0 = best)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None].repeat(len(scores), 0), axis=1)
    return ranks


def per_label_topk_recall(scores: np.ndarray, targets: np.ndarray, k: int = 5, filtered: bool = True,
                          known: np.ndarray | None = None) -> np.ndarray:
    """For each label, the fraction of ECGs carrying it that rank it within their top k (nan if none).

    ``filtered=True`` ranks the label only against labels that are false for the ECG (its other true
    labels are not competitors); ``filtered=False`` ranks it against all labels.
    """
    scores = _drop_unknown(scores, targets, known)
    t = targets.astype(bool)
    n = t.sum(axis=0)
    if not filtered:
        hits = ((label_ranks(scores) < k) & t).sum(axis=0)
    else:
        hits = np.zeros(scores.shape[1])
        for j in np.flatnonzero(n):
            rows = np.flatnonzero(t[:, j])
            s = scores[rows]
            better = ((s > s[:, [j]]) & ~t[rows]).sum(axis=1)
            hits[j] = (better < k).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, hits / np.maximum(n, 1), np.nan)


def auroc(score: np.ndarray, target: np.ndarray) -> float:
    """Area under the ROC curve by the Mann-Whitney U statistic with average ranks for ties."""
    target = target.astype(bool)
    n_pos, n_neg = int(target.sum()), int((~target).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(len(score), dtype=np.float64)
    i = 0
    while i < len(score):  # average ranks over ties
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[target].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def per_label_auroc(scores: np.ndarray, targets: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
    """AUROC of every label over the ECGs on which it is known."""
    if known is None:
        return np.array([auroc(scores[:, j], targets[:, j]) for j in range(scores.shape[1])])
    keep = known.astype(bool) | targets.astype(bool)
    return np.array([auroc(scores[keep[:, j], j], targets[keep[:, j], j]) for j in range(scores.shape[1])])


def choose_thresholds(scores: np.ndarray, targets: np.ndarray, default: float | None = None,
                      known: np.ndarray | None = None) -> np.ndarray:
    """Per-label decision threshold maximising F1 on a validation set (over the ECGs where it is known).

    Labels without a positive example get ``default`` (if None: the 99th percentile of that label's
    scores, so it fires rarely).
    """
    thresholds = np.empty(scores.shape[1], dtype=np.float32)
    keep = np.ones(scores.shape, dtype=bool) if known is None else known.astype(bool) | targets.astype(bool)
    for j in range(scores.shape[1]):
        s, t = scores[keep[:, j], j], targets[keep[:, j], j].astype(bool)
        if s.size == 0:
            s, t = scores[:, j], np.zeros(len(scores), dtype=bool)
        if not t.any():
            thresholds[j] = default if default is not None else np.percentile(s, 99)
            continue
        cand = np.unique(s)
        order = np.argsort(-s)
        tp = np.cumsum(t[order])
        fp = np.cumsum(~t[order])
        f1 = 2 * tp / (tp + fp + t.sum())
        best = int(np.argmax(f1))
        # Midway between the best cut and the next lower score, so the threshold generalises.
        lower = s[order[best + 1]] if best + 1 < len(s) else s[order[best]] - 1e-3
        thresholds[j] = (s[order[best]] + lower) / 2 if len(cand) > 1 else s[order[best]]
    return thresholds


def evaluate_scores(
    scores: np.ndarray,
    targets: np.ndarray,
    label_ids: Sequence[str],
    new_labels: Sequence[str] = (),
    names: Sequence[str] | None = None,
    known: np.ndarray | None = None,
) -> dict:
    """Top-1, top-5, macro AUROC and a per-label table; new labels summarised separately.

    ``seen`` metrics use the targets of the seen (non-new) labels; ``new`` gives each new label's top-5
    recall and AUROC with scores ranked among all labels, and their means.
    """
    label_ids = list(label_ids)
    new_set = set(new_labels)
    unknown = new_set - set(label_ids)
    if unknown:
        raise ValueError(f"new labels {sorted(unknown)} are not among the scored labels")
    seen_mask = np.array([lid not in new_set for lid in label_ids])
    t_seen = targets * seen_mask[None]
    recall5 = per_label_topk_recall(scores, targets, 5, known=known)
    recall5_raw = per_label_topk_recall(scores, targets, 5, filtered=False, known=known)
    recall1 = per_label_topk_recall(scores, targets, 1, known=known)
    aucs = per_label_auroc(scores, targets, known)
    n = targets.sum(axis=0)
    n_known = np.full(targets.shape[1], len(targets)) if known is None else (known.astype(bool) | targets.astype(bool)).sum(axis=0)
    table = []
    for j, lid in enumerate(label_ids):
        table.append(
            {
                "id": lid,
                "name": names[j] if names is not None else lid,
                "n": int(n[j]),
                "n_known": int(n_known[j]),
                "top1_recall": None if np.isnan(recall1[j]) else float(recall1[j]),
                "top5_recall": None if np.isnan(recall5[j]) else float(recall5[j]),
                "top5_recall_raw": None if np.isnan(recall5_raw[j]) else float(recall5_raw[j]),
                "auroc": None if np.isnan(aucs[j]) else float(aucs[j]),
                "new": lid in new_set,
            }
        )
    seen_auc = aucs[seen_mask & ~np.isnan(aucs)]
    result = {
        "n_ecgs": int(targets.any(axis=1).sum()),
        "top1": topk_accuracy(scores, t_seen, 1, known),
        "top5": topk_accuracy(scores, t_seen, 5, known),
        "macro_auroc": float(seen_auc.mean()) if seen_auc.size else float("nan"),
        "mean_label_top5_recall": float(np.nanmean(recall5[seen_mask])) if np.isfinite(recall5[seen_mask]).any() else float("nan"),
        "per_label": table,
    }
    if new_set:
        idx = [j for j, lid in enumerate(label_ids) if lid in new_set and n[j] > 0]
        new_auc = [aucs[j] for j in idx if not np.isnan(aucs[j])]
        result["new"] = {
            "labels": [label_ids[j] for j in idx],
            "n_ecgs": int(targets[:, idx].any(axis=1).sum()) if idx else 0,
            "top5_recall": float(np.mean([recall5[j] for j in idx])) if idx else float("nan"),
            "top5_recall_pooled": (
                float(sum(recall5[j] * n[j] for j in idx) / sum(n[j] for j in idx)) if idx else float("nan")
            ),
            "top5_recall_raw": float(np.mean([recall5_raw[j] for j in idx])) if idx else float("nan"),
            "top5_recall_superset": _superset_recall(scores, targets, label_ids, idx, known),
            "macro_auroc": float(np.mean(new_auc)) if new_auc else float("nan"),
        }
    return result


def _superset_recall(scores: np.ndarray, targets: np.ndarray, label_ids: Sequence[str], idx: Sequence[int],
                     known: np.ndarray | None, k: int = 5) -> float:
    """Mean over new labels of the fraction of their ECGs whose top k holds the label or one of its ancestors.

    The reference study's measure for new labels: a new label counts as found when it or a superset label
    (a parent in the catalogue's hierarchy) is among the k best-scored labels of the ECG.
    """
    from edge.interpret.catalogue import load_catalogue

    if not idx:
        return float("nan")
    cat = load_catalogue()
    col = {lid: j for j, lid in enumerate(label_ids)}
    in_top = label_ranks(_drop_unknown(scores, targets, known)) < k
    recalls = []
    for j in idx:
        lid = label_ids[j]
        group = [j] + [col[a] for a in (cat.ancestors(lid) if lid in cat else ()) if a in col]
        rows = np.flatnonzero(targets[:, j] > 0)
        recalls.append(float(in_top[np.ix_(rows, group)].any(axis=1).mean()))
    return float(np.mean(recalls))


def ec57_match(reference: np.ndarray, detected: np.ndarray, window: int) -> tuple[int, int, int]:
    """Beat-by-beat scoring as AAMI EC57 does: ``(TP, FN, FP)``.

    Each reference beat (sorted sample indices) takes the nearest not-yet-used detection within
    ``window`` samples (150 ms in EC57); unmatched reference beats are false negatives, unmatched
    detections false positives.
    """
    detected = np.asarray(detected)
    used = np.zeros(detected.size, bool)
    tp = 0
    for r in np.asarray(reference):
        lo, hi = np.searchsorted(detected, [r - window, r + window + 1])
        cand = [k for k in range(lo, hi) if not used[k]]
        if cand:
            used[min(cand, key=lambda k: abs(detected[k] - r))] = True
            tp += 1
    return tp, len(reference) - tp, detected.size - tp
