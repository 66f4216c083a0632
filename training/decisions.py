"""What a clinician would read, judged: the findings of a bundle (thresholds + :mod:`edge.interpret.findings` rules).

Ranking metrics (top-k, AUROC) say how well the scores order labels; these say how good the *listed
findings* are, computed with the very code the device runs (``FindingRules.decide``):

- per label: sensitivity, specificity, PPV and F1 of "listed or implied by a listed finding" (a listed
  完全左脚ブロック also says 左脚ブロック) against the truth, over the windows where the label is known;
- the mean number of findings per ECG against the truth's, both counted as listed (most specific
  labels, parents implied by a child not counted);
- contradictory pairs among the listed findings (must be 0), among the labels above threshold before
  the rules (what the rules removed), and in the truth itself (for reference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edge.interpret.findings import FindingRules

__all__ = ["decision_metrics", "format_decisions"]


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def decision_metrics(
    scores: np.ndarray,
    targets: np.ndarray,
    thresholds: np.ndarray,
    labels: Sequence[Mapping],
    known: np.ndarray | None = None,
    rules: FindingRules | None = None,
    measurements: Sequence[Mapping | None] | None = None,
) -> dict:
    """Decision metrics of ``scores [N, L]`` at ``thresholds [L]``; ``targets``/``known`` over the same labels."""
    rules = rules or FindingRules.for_labels(labels)
    n, n_labels = scores.shape
    t = targets.astype(bool)
    kn = np.ones_like(t) if known is None else known.astype(bool) | t
    listed = np.zeros((n, n_labels), dtype=bool)
    implied = np.zeros((n, n_labels), dtype=bool)
    n_findings, n_truth, contra, contra_raw, contra_truth = [], [], 0, 0, 0
    ecgs_with_contra = 0
    pairs: dict[str, int] = {}
    for i in range(n):
        kept = rules.decide(scores[i], thresholds, None if measurements is None else measurements[i])
        listed[i, kept] = True
        for j in kept:
            implied[i, j] = True
            implied[i, list(rules.ancestors[j])] = True
        ids = [rules.ids[j] for j in kept]
        found = rules.contradictions(ids)
        contra += len(found)
        ecgs_with_contra += bool(found)
        for _, _, name in found:
            pairs[name] = pairs.get(name, 0) + 1
        above = [rules.ids[j] for j in np.flatnonzero(scores[i] >= thresholds)]
        contra_raw += len(rules.contradictions(above))
        truth_ids = [rules.ids[j] for j in np.flatnonzero(t[i])]
        contra_truth += len(rules.contradictions(truth_ids))
        n_findings.append(len(kept))
        n_truth.append(len(rules.most_specific(truth_ids)))
    per_label = []
    for j in range(n_labels):
        rows = kn[:, j]
        p, y = implied[rows, j], t[rows, j]
        tp, fp = int((p & y).sum()), int((p & ~y).sum())
        fn, tn = int((~p & y).sum()), int((~p & ~y).sum())
        sens, spec, ppv = _ratio(tp, tp + fn), _ratio(tn, tn + fp), _ratio(tp, tp + fp)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
        per_label.append({"id": rules.ids[j], "ja": labels[j].get("ja", ""), "n_known": int(rows.sum()),
                          "n_pos": int(y.sum()), "n_listed": int(listed[rows, j].sum()), "tp": tp, "fp": fp,
                          "fn": fn, "tn": tn, "sensitivity": sens, "specificity": spec, "ppv": ppv, "f1": f1})
    mean_f, mean_t = float(np.mean(n_findings)) if n else float("nan"), float(np.mean(n_truth)) if n else float("nan")
    return {
        "n_ecgs": int(n),
        "findings_per_ecg": mean_f,
        "truth_per_ecg": mean_t,
        "findings_to_truth": mean_f / mean_t if n and mean_t else None,
        "no_findings": int(sum(1 for k in n_findings if k == 0)),
        "contradictory_pairs": int(contra),
        "ecgs_with_contradictions": int(ecgs_with_contra),
        "contradictory_pairs_by_rule": pairs,
        "contradictory_pairs_before_rules": int(contra_raw),
        "contradictory_pairs_in_truth": int(contra_truth),
        "per_label": per_label,
    }


def _f(v) -> str:
    return "–" if v is None or v != v else f"{v:.3f}"


def format_decisions(d: dict, min_n: int = 1) -> str:
    """Readable summary and per-label table (labels with at least ``min_n`` known positives)."""
    lines = [
        f"findings per ECG: {_f(d['findings_per_ecg'])} (truth {_f(d['truth_per_ecg'])}, ratio "
        f"{_f(d['findings_to_truth'])}); ECGs without a finding: {d['no_findings']} of {d['n_ecgs']}",
        f"contradictory pairs: {d['contradictory_pairs']} (before the rules {d['contradictory_pairs_before_rules']}, "
        f"in the truth {d['contradictory_pairs_in_truth']})",
        f"\n{'id':<8} {'pos':>4} {'known':>5} {'sens':>6} {'spec':>6} {'PPV':>6} {'F1':>6}  label",
    ]
    rows = [r for r in d["per_label"] if r["n_pos"] >= min_n]
    rows.sort(key=lambda r: -r["n_pos"])
    for r in rows:
        lines.append(f"{r['id']:<8} {r['n_pos']:>4} {r['n_known']:>5} {_f(r['sensitivity']):>6} "
                     f"{_f(r['specificity']):>6} {_f(r['ppv']):>6} {_f(r['f1']):>6}  {r['ja']}")
    return "\n".join(lines)
