"""Metrics against values worked out by hand on tiny examples."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import auroc, choose_thresholds, evaluate_scores, per_label_topk_recall, topk_accuracy

# 3 ECGs x 4 labels. Scores and multi-hot targets written out.
S = np.array([[0.9, 0.8, 0.1, 0.0],
              [0.2, 0.7, 0.6, 0.1],
              [0.5, 0.4, 0.3, 0.9]])
T = np.array([[0, 1, 0, 0],
              [1, 0, 1, 0],
              [0, 0, 0, 0]])


def test_topk_accuracy_by_hand():
    # ECG0 best = label0 (false); ECG1 best = label1 (false); ECG2 has no labels -> excluded.
    assert topk_accuracy(S, T, 1) == 0.0
    # top-2: ECG0 {0,1} contains 1; ECG1 {1,2} contains 2.
    assert topk_accuracy(S, T, 2) == 1.0


def test_per_label_recall_raw_and_filtered_by_hand():
    # Label 0 is true only for ECG1, where it ranks 3rd of 4 (0.7, 0.6 above it).
    raw = per_label_topk_recall(S, T, k=2, filtered=False)
    assert raw[0] == 0.0 and raw[1] == 1.0 and raw[2] == 1.0 and np.isnan(raw[3])
    # Filtered: ECG1's other true label (2, score 0.6) is not a competitor; only label 1 (0.7) is above.
    filt = per_label_topk_recall(S, T, k=2, filtered=True)
    assert filt[0] == 1.0
    assert per_label_topk_recall(S, T, k=1, filtered=True)[0] == 0.0


def test_auroc_by_hand_with_ties():
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4)=1, (0.8>0.1)=1, (0.4=0.4)=0.5, (0.4>0.1)=1 -> 3.5/4
    assert auroc(np.array([0.8, 0.4, 0.4, 0.1]), np.array([1, 1, 0, 0])) == pytest.approx(0.875)
    assert np.isnan(auroc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_thresholds_separate_a_separable_label():
    scores = np.array([[0.9], [0.8], [0.3], [0.2]])
    targets = np.array([[1], [1], [0], [0]])
    th = choose_thresholds(scores, targets)
    assert 0.3 < th[0] <= 0.8


def test_evaluate_scores_reports_new_labels_separately():
    m = evaluate_scores(S, T, ["a", "b", "c", "d"], new_labels=["c"], names=["A", "B", "C", "D"])
    assert m["new"]["labels"] == ["c"]
    # seen metrics ignore label c: ECG1's only seen label is a (rank 3) -> top-1 misses both ECGs.
    assert m["top1"] == 0.0
    assert [r["new"] for r in m["per_label"]] == [False, False, True, False]
    with pytest.raises(ValueError, match="not among"):
        evaluate_scores(S, T, ["a", "b", "c", "d"], new_labels=["z"])


def test_unknown_labels_are_neither_hits_nor_misses():
    import numpy as np

    from training.metrics import choose_thresholds, per_label_auroc, topk_accuracy

    scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.7], [0.1, 0.3, 0.6]])
    targets = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 1]])
    # ECG 0 ranks label 0 first, but its source cannot state label 0: its top-1 is then label 1, a hit.
    known = np.ones_like(targets)
    known[0, 0] = 0
    assert topk_accuracy(scores, targets, 1) == 2 / 3
    assert topk_accuracy(scores, targets, 1, known) == 1.0
    # AUROC of label 2: ECG 1 (a negative scored above the positive) leaves when label 2 is unknown for it.
    known[1, 2] = 0
    assert per_label_auroc(scores, targets)[2] == 0.5
    assert per_label_auroc(scores, targets, known)[2] == 1.0
    # A threshold is chosen over the known rows only (the midpoint moves to the next known score).
    s = np.array([[0.9], [0.8], [0.7], [0.1]])
    t = np.array([[1], [1], [0], [0]])
    k = np.array([[1], [1], [0], [1]])
    assert np.isclose(choose_thresholds(s, t)[0], 0.75) and np.isclose(choose_thresholds(s, t, known=k)[0], 0.45)


def test_new_label_superset_recall_counts_a_parent_in_the_top5():
    from edge.interpret.catalogue import load_catalogue
    from training.metrics import evaluate_scores

    ids = list(load_catalogue().ids)
    rng = np.random.default_rng(0)
    scores = rng.random((40, len(ids)))
    targets = np.zeros_like(scores)
    imi, mi = ids.index("IMI"), ids.index("MI")
    targets[:10, [imi, mi]] = 1  # the hierarchy: 下壁心筋梗塞 is also 心筋梗塞
    scores[:10, imi] = -1.0  # the new label itself never in the top 5 ...
    scores[:5, mi] = 5.0  # ... its parent in the top 5 of half its ECGs
    new = evaluate_scores(scores, targets, ids, new_labels=["IMI"])["new"]
    assert new["top5_recall_raw"] == 0.0
    assert new["top5_recall_superset"] == 0.5


def test_ec57_match_counts_each_reference_beat_once():
    from training.metrics import ec57_match

    ref = np.array([100, 400, 700, 1000])
    det = np.array([98, 103, 420, 1100, 1500])  # two near beat 1, one near beat 2, beat 3 missed, 2 extra
    assert ec57_match(ref, det, 54) == (2, 2, 3)
