"""Fast unit tests of the export steps: extra labels, the gate, thresholds, refusals and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from export.gate import Gate, agreement, failure_text, measure, near_ties, wilson_interval  # noqa: E402
from export.labels import read_extra_labels  # noqa: E402
from export.onnx_export import ExportError, encoder_for_export  # noqa: E402
from export.thresholds import label_thresholds  # noqa: E402


def test_extra_labels_csv_and_json(tmp_path):
    csv_path = tmp_path / "new.csv"
    # Spreadsheet software writes a BOM; lists are ';' or '|' separated; empty cells are absent.
    csv_path.write_text("\ufeffid,ja,en,parents,aliases\nX1,新規所見,new finding,MI|STE,ｼﾝｷ\nX2,二,two,,\n",
                        encoding="utf-8")
    labels = read_extra_labels(csv_path)
    assert [lb.id for lb in labels] == ["X1", "X2"]
    assert labels[0].parents == ("MI", "STE") and labels[0].aliases == ("ｼﾝｷ",) and labels[1].category == "other"
    json_path = tmp_path / "new.json"
    json_path.write_text(json.dumps({"labels": [{"id": "X3", "ja": "三", "en": "three"}]}), encoding="utf-8")
    assert read_extra_labels(json_path)[0].ja == "三"


@pytest.mark.parametrize("text, match", [
    ("id,ja\nX1,新規\n", "missing field"),
    ("id,ja,en,color\nX1,a,b,red\n", "unknown field"),
    ("id,ja,en\n", "no labels"),
])
def test_bad_extra_labels_are_explained(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ExportError, match=match):
        read_extra_labels(path)
    with pytest.raises(ExportError, match="not found"):
        read_extra_labels(tmp_path / "none.csv")


@pytest.mark.slow
def test_extra_label_clashing_with_catalogue_is_refused(tiny_checkpoint, tmp_path):
    from edge.interpret.catalogue import Label, load_catalogue
    from export.labels import build_label_set
    from training.checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(tiny_checkpoint.path)
    with pytest.raises(ExportError, match="already names label"):
        build_label_set(model, ckpt, load_catalogue(), [Label("X1", "心房細動", "af again")])


def test_supervised_checkpoints_are_refused():
    with pytest.raises(ExportError, match="contrastive"):
        encoder_for_export(None, {"kind": "supervised"})


def test_missing_training_data_asks_for_data(tmp_path):
    from edge.interpret.catalogue import load_catalogue
    from export.data import load_export_windows

    ckpt = {"data": {"sources": [{"kind": "ptbxl", "path": str(tmp_path / "gone"), "options": {"rate": 100}}]}}
    with pytest.raises(ExportError, match="--data KIND=PATH"):
        load_export_windows(ckpt, tmp_path / "checkpoint.pt", load_catalogue())


def test_agreement_lists_changes():
    labels = np.eye(3)
    ref = np.array([[1.0, 0.999, 0.0], [0.0, 1.0, 0.2], [0.1, 0.0, 1.0], [1.0, 0.0, 0.0]])
    q = ref.copy()
    q[0] = [0.999, 1.0, 0.0]  # a near-tie swapped by noise
    numbers = agreement(ref, q, labels, ["SR", "NORM", "AFIB"])
    assert numbers["n_windows"] == 4 and numbers["agreement_top1"] == 0.75
    assert numbers["disagreements"] == [{"fp32_top1": "SR", "quantized_top1": "NORM", "fp32_margin": 0.001}]
    assert 0.999 < numbers["cosine_min"] < 1.0 and numbers["cosine_mean"] > numbers["cosine_min"]
    with pytest.raises(ExportError):
        agreement(ref, q[:2], labels)


def _gate_case(n: int = 400, seed: int = 0):
    """fp32 embeddings of ``n`` windows over 6 labels (one-hot label texts in 8-d), their ground truth and thresholds."""
    rng = np.random.default_rng(seed)
    labels = np.eye(6, 8)
    truth = rng.integers(0, 6, n)
    ref = 0.3 * rng.normal(size=(n, 8))
    ref[np.arange(n), truth] += 1.0
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    targets = np.eye(6)[truth]
    return ref, labels, targets, np.full(6, 0.5), rng


def _check(ref, q, labels, targets, thresholds, **gate):  # noqa: ANN001, ANN202
    m = measure(ref, q, labels, thresholds, targets, [f"L{j}" for j in range(6)], gate=Gate(**gate))
    return m, *Gate(**gate).check(m)


def test_gate_v2_passes_small_noise_and_forgives_near_ties():
    ref, labels, targets, thresholds, rng = _gate_case()
    q = ref + 0.002 * rng.normal(size=ref.shape)  # int8-like noise
    m, passed, conds = _check(ref, q, labels, targets, thresholds)
    assert passed and all(c["passed"] for c in conds.values())
    assert m["n_windows"] == 400 and m["cosine_mean"] > 0.999 and m["decisive"]["agreement"] == 1.0
    # Make window 0 a near-tie in fp32 (margin 1e-4) and swap it in int8: strict agreement drops, the gate holds.
    s = ref[0] @ labels.T
    a, b = np.argsort(-s)[:2]
    ref[0, b] += (s[a] - s[b] - 1e-4)
    q = ref + 0.002 * rng.normal(size=ref.shape)
    q[0, [a, b]] = ref[0, [b, a]]
    m, passed, _ = _check(ref, q, labels, targets, thresholds)
    change = [c for c in m["changed_windows"] if c["fp32_margin"] < 1e-3]
    assert passed and m["agreement_top1"] < 1.0 and change and change[0]["decisive"] is False


def test_gate_v2_fails_a_decisive_change_and_says_by_how_much():
    ref, labels, targets, thresholds, rng = _gate_case()
    s = ref @ labels.T
    order = np.argsort(-s, axis=1)
    tie = np.arange(150)  # 150 windows whose two best labels tie in fp32: not decisive
    ref[tie, order[tie, 1]] = ref[tie, order[tie, 0]]
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    q = ref + 0.001 * rng.normal(size=ref.shape)
    clear = 150 + np.flatnonzero(np.ptp(np.sort(s[150:], axis=1)[:, -2:], axis=1) > 0.3)[:4]
    for i in clear:  # 4 clear windows (fp32 margin > 0.3) change their top-1 label: 1.6 % of the decisive ones
        q[i, :6] = np.roll(q[i, :6], 1)
    m, passed, conds = _check(ref, q, labels, targets, thresholds, min_cosine_mean=0.9)
    assert not passed and not conds["decisive_top1"]["passed"] and m["decisive"]["changes"] == 4
    assert m["decisive"]["windows"] < 260 and all(c["decisive"] for c in m["changed_windows"] if c["fp32_margin"] > 0.3)
    text = failure_text(m, conds)
    assert text.startswith("top-1 agreement on decisive windows 0.98") and "needs >= 0.99" in text
    assert f"4 of {m['decisive']['windows']} windows whose fp32 margin exceeds the int8 noise" in text
    # Noise on more than 1 % of the windows raises the measured noise itself: the decisive set then
    # shrinks, and the cosine and finding conditions are what catch such a model.
    for i in 150 + np.arange(40):
        q[i, :6] = np.roll(q[i, :6], 1)
    m, passed, conds = _check(ref, q, labels, targets, thresholds)
    assert not passed and not conds["cosine"]["passed"] and not conds["findings"]["passed"]


def test_gate_v2_findings_and_accuracy_conditions():
    ref, labels, targets, thresholds, rng = _gate_case()
    scores = ref @ labels.T
    # Thresholds right in the middle of the scores: small noise flips many decisions.
    thresholds = np.median(scores, axis=0)
    q = ref + 0.02 * rng.normal(size=ref.shape)
    m, passed, conds = _check(ref, q, labels, targets, thresholds, min_cosine_mean=0.99)
    assert not conds["findings"]["passed"] and m["findings"]["changed"] > 0.005 * m["findings"]["pairs"]
    assert "finding decisions agree on" in failure_text(m, conds)
    # Labels without a threshold make no decisions.
    m, *_ = _check(ref, q, labels, targets, np.full(6, np.inf), min_cosine_mean=0.99)
    assert m["findings"]["pairs"] == 0 and m["findings"]["agreement"] is None
    # An int8 model that ranks worse against the ground truth fails the accuracy conditions.
    worse = ref.copy()
    worse[:100, :6] = np.roll(worse[:100, :6], 1, axis=1)
    m, passed, conds = _check(ref, worse, labels, targets, np.full(6, np.inf), min_cosine_mean=0.0,
                              min_decisive_agreement=0.0)
    assert not passed and not conds["macro_auroc"]["passed"] and m["accuracy"]["loss"]["macro_auroc"] > 0.01
    assert "macro AUROC" in failure_text(m, conds)


def test_cosine_condition_and_unit_scores():
    ref, labels, targets, thresholds, rng = _gate_case()
    q = ref + 0.05 * rng.normal(size=ref.shape)
    m, passed, conds = _check(ref, q, labels, targets, thresholds)
    assert not conds["cosine"]["passed"] and conds["cosine"]["short_by"] == pytest.approx(0.999 - m["cosine_mean"])
    # The gate scores unit embeddings, as the device does: a rescaled output changes nothing.
    m1, *_ = _check(ref, ref * 1.1, labels, targets, thresholds)
    assert m1["findings"]["changed"] == 0 and m1["agreement_top1"] == 1.0
    assert Gate().to_dict()["version"] == 2 and "tie_margin" not in Gate().to_dict()


def test_description_warnings_and_untrained_labels():
    from edge.interpret.catalogue import Label
    from export.labels import LabelSet, description_warnings

    described, bare = Label("X1", "新規", "new", description_ja="説明。"), Label("X2", "二", "two")
    assert "not used for their text embedding" in description_warnings("ja", [described, bare])[0]
    assert "X1" in description_warnings("ja", [described, bare])[0]
    assert description_warnings("ja", [bare]) == []
    assert "X2 have no description_ja" in description_warnings("ja+desc", [described, bare])[0]
    entries = [{"id": i, "new": False, "zero_shot": False} for i in ("A", "B", "C")]
    labels = LabelSet(entries, np.eye(3, dtype=np.float32), None)
    assert labels.mark_untrained(None) == []
    assert labels.mark_untrained(np.array([3, 0, 1])) == ["B"] and labels.zero_shot_ids == ["B"]
    assert entries[1]["zero_shot_reason"] == "no training example"


def test_formats_are_parsed():
    from export.formats import parse_formats

    assert parse_formats("onnx") == ("onnx",) and parse_formats("tflite,onnx") == ("onnx", "tflite")
    with pytest.raises(ExportError, match="onnx, tflite or onnx,tflite"):
        parse_formats("tflite,pdf")


def test_thresholds_by_f1_and_default_for_labels_without_data():
    rng = np.random.default_rng(0)
    targets = np.zeros((200, 2), dtype=np.float32)
    targets[:50, 0] = 1
    scores = rng.normal(0, 0.05, (200, 3))
    scores[:50, 0] += 0.5  # label 0 separable; label 1 has no positives; label 2 is an extra label
    th, by_f1 = label_thresholds(scores, targets)
    assert by_f1.tolist() == [True, False, False]
    assert 0.1 < th[0] < 0.5
    assert th[1] == pytest.approx(np.percentile(scores[:, 1], 99)) and th[2] == pytest.approx(np.percentile(scores[:, 2], 99))


def test_fp32_nodes_of_an_exported_encoder(tiny_encoder):
    from export.quantize import fp32_nodes

    _, fp32, _ = tiny_encoder
    assert fp32_nodes(fp32, ()) == []
    first = fp32_nodes(fp32, ("input",))
    head = fp32_nodes(fp32, ("head",))
    assert len(first) == 1 and len(head) >= 2 and not set(first) & set(head)
    with pytest.raises(ExportError, match="unknown fp32 part"):
        fp32_nodes(fp32, ("middle",))


def test_onnx_export_checks_shape_and_numbers(tiny_encoder, tmp_path):
    import torch

    from export.onnx_export import check_onnx_against_torch, export_onnx

    model, _, _ = tiny_encoder
    x = np.random.default_rng(0).normal(size=(3, 12, 1000)).astype(np.float32)
    info = export_onnx(model, tmp_path / "m.onnx", x[:2])
    assert info.input_shape == [None, 12, 1000] and info.output_shape == [None, 64]
    assert check_onnx_against_torch(model, tmp_path / "m.onnx", x) < 1e-4
    with torch.no_grad():  # a model that differs from the file must be caught
        other = type(model)(model.cfg).eval()
    with pytest.raises(ExportError, match="differs from torch"):
        check_onnx_against_torch(other, tmp_path / "m.onnx", x)
    with pytest.raises(ExportError, match="batch >= 2"):
        export_onnx(model, tmp_path / "n.onnx", x[:1])
    assert not Path(tmp_path / "n.onnx").exists()


def test_a_stale_training_cache_is_neither_used_nor_rewritten(tmp_path):
    from export.data import training_cache

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "meta.json").write_text(json.dumps({"fingerprint": "old"}), encoding="utf-8")
    ckpt = {"data": {"fingerprint": "new"}, "train_config": {"cache_dir": str(cache)}}
    assert training_cache(ckpt, tmp_path / "run" / "checkpoint.pt") is None
    assert json.loads((cache / "meta.json").read_text(encoding="utf-8")) == {"fingerprint": "old"}


def test_thresholds_resting_on_few_positives_keep_negatives_quiet():
    rng = np.random.default_rng(1)
    targets = np.zeros((300, 1), dtype=np.float32)
    targets[0, 0] = 1  # one positive with a low score: F1 alone would put the cut below most negatives
    scores = rng.normal(0.3, 0.05, (300, 1))
    scores[0, 0] = 0.1
    th, by_f1 = label_thresholds(scores, targets)
    assert by_f1[0]
    negatives = scores[1:, 0]
    assert th[0] >= np.percentile(negatives, 99) - 1e-6
    assert (negatives >= th[0]).mean() <= 0.02


def test_wilson_interval_known_values():
    assert wilson_interval(97, 100) == pytest.approx((0.9155, 0.9897), abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_near_ties_follow_margins_and_noise():
    rng = np.random.default_rng(0)
    n, labels = 4000, np.eye(3)
    # fp32: label 0 wins over label 1 by a margin spread over [0, 0.02); label 2 far behind.
    margin = rng.uniform(0, 0.02, n)
    ref = np.stack([0.5 + margin, np.full(n, 0.5), np.zeros(n)], axis=1)
    noise = rng.normal(0, 0.002, n)  # what "int8" adds to the top-2 difference
    q = ref + np.stack([noise, np.zeros(n), np.zeros(n)], axis=1)
    t = near_ties(ref, q, labels, gate_windows=119)
    assert t["margin_quantiles"]["p50"] == pytest.approx(0.01, abs=5e-4)
    assert t["noise_abs_quantiles"]["p50"] == pytest.approx(0.002 * 0.6745, rel=0.1)  # median of |N(0, s)|
    assert t["agreement_beyond_noise"] > 0.998  # only the 1 % of noise beyond its p99 can reach them
    changed = float(np.mean(margin + noise < 0))
    # expected: E over margins of P(noise < -margin) = 0.002 / (0.02 * sqrt(2 pi)) for margins ~ U(0, 0.02)
    assert t["expected_change_rate"] == pytest.approx(0.002 / (0.02 * np.sqrt(2 * np.pi)), rel=0.15)
    assert t["expected_change_rate"] == pytest.approx(changed, abs=0.01)
    lo, hi = t["agreement_ci95"]
    assert lo < 1 - changed < hi
    r, pp = t["expected_change_rate"], t["p_pass_strict"]
    assert pp["allowed_changes"] == 1 and pp["probability"] == pytest.approx((1 - r) ** 119 + 119 * r * (1 - r) ** 118)
    # no noise: nothing changes, the strict gate passes for sure
    calm = near_ties(ref, ref, labels, gate_windows=119)
    assert calm["expected_change_rate"] == 0.0 and calm["p_pass_strict"]["probability"] == pytest.approx(1.0)


def test_thresholds_reach_the_stated_precision_on_known_windows_only():
    from export.thresholds import TARGET_PRECISION, precision_cut

    rng = np.random.default_rng(2)
    n = 400
    targets = np.zeros((n, 1), dtype=np.float32)
    targets[:80, 0] = 1
    scores = rng.normal(0.2, 0.1, (n, 1))
    scores[:80, 0] += 0.15  # overlapping classes: F1 and the precision rule disagree
    report: dict = {}
    th, _ = label_thresholds(scores, targets, report=report)
    fired = scores[:, 0] >= th[0]
    ppv = targets[fired, 0].mean()
    assert report[0]["method"].startswith("precision") and ppv >= TARGET_PRECISION
    assert report[0]["ppv"] == pytest.approx(ppv)
    # The most sensitive such cut: one step lower would fall below the precision.
    order = np.sort(scores[:, 0])[::-1]
    below = order[order < th[0]][0]
    assert targets[scores[:, 0] >= below, 0].mean() < TARGET_PRECISION or below == order[-1]
    assert precision_cut(np.array([0.9, 0.8]), np.array([0, 0]), 0.5) is None
    # Windows where the label is unknown do not count: 100 high-scoring unknown negatives change nothing.
    extra = np.full((100, 1), 0.9)
    s2, t2 = np.vstack([scores, extra]), np.vstack([targets, np.zeros((100, 1), dtype=np.float32)])
    k2 = np.vstack([np.ones((n, 1)), np.zeros((100, 1))])
    assert label_thresholds(s2, t2, known=k2)[0][0] == pytest.approx(th[0])
    assert label_thresholds(s2, t2)[0][0] > th[0]


@pytest.mark.slow
def test_extra_label_description_is_its_text_only_in_ja_desc_mode(tiny_checkpoint):
    from edge.interpret.catalogue import Label, load_catalogue
    from export.labels import build_label_set
    from training.checkpoint import load_checkpoint
    from training.text_side import text_input_for

    model, ckpt = load_checkpoint(tiny_checkpoint.path)
    catalogue = load_catalogue()
    plain = Label("X1", "新規所見", "new finding")
    described = Label("X1", "新規所見", "new finding", description_ja="広範な誘導のST上昇を認める。")
    ja = [build_label_set(model, ckpt, catalogue, [lb]) for lb in (plain, described)]
    np.testing.assert_array_equal(ja[0].embeddings[-1], ja[1].embeddings[-1])  # mode ja: description ignored...
    assert ja[0].warnings == [] and "not used for their text embedding" in ja[1].warnings[0]  # ...and said so
    desc_ckpt = {**ckpt, "text": {**ckpt["text"], "mode": "ja+desc"}}
    desc_ckpt["text_input"] = text_input_for(desc_ckpt["text"], catalogue.labels)  # as if trained in ja+desc
    desc = [build_label_set(model, desc_ckpt, catalogue, [lb]) for lb in (plain, described)]
    assert not np.allclose(desc[0].embeddings[-1], desc[1].embeddings[-1])  # the description is in the text
    assert desc[1].warnings == [] and "have no description_ja" in desc[0].warnings[0]
    assert desc[1].entries[-1]["zero_shot"] is True and desc[1].entries[-1]["description_ja"].startswith("広範")


def test_export_accuracy_counts_only_known_labels_as_ecg_eval_does():
    from export.data import ExportWindows
    from export.labels import LabelSet
    from export.pipeline import _accuracy
    from training.metrics import evaluate_scores

    rng = np.random.default_rng(4)
    emb = rng.normal(size=(3, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ecg = emb[[0, 1, 2, 0, 1, 2]] + 0.05 * rng.normal(size=(6, 8))
    ecg[0] = 0.2 * emb[0] + emb[2]  # window 0 (label 0) looks like label 2, which its source cannot state
    y = np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]
    known = np.ones_like(y)
    known[:3, 2] = 0  # the first three windows' source cannot state label 2
    entries = [{"id": f"L{i}", "new": False} for i in range(3)]
    labels = LabelSet(entries, emb, catalogue=None)
    w = ExportWindows(np.zeros(1), np.zeros(1), y, np.zeros(1), y, [], "fp", {}, test_known=known)
    got = _accuracy(ecg, w, labels)
    want = evaluate_scores(ecg @ emb.T, y, labels.ids, known=known)
    assert got["macro_auroc"] == pytest.approx(want["macro_auroc"]) and got["top1"] == pytest.approx(want["top1"])
    blind = evaluate_scores(ecg @ emb.T, y, labels.ids)
    assert got["macro_auroc"] > blind["macro_auroc"] and got["top1"] > blind["top1"]
    w_all = ExportWindows(np.zeros(1), np.zeros(1), y, np.zeros(1), y, [], "fp", {})
    assert _accuracy(ecg, w_all, labels)["macro_auroc"] == pytest.approx(
        evaluate_scores(ecg @ emb.T, y, labels.ids)["macro_auroc"])
