"""Unit tests for training.loss against values computed by hand in plain Python (math, no torch)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from training.loss import (  # noqa: E402
    LOSSES,
    ClipLoss,
    MultiPositiveClipLoss,
    SigmoidLoss,
    bce_loss,
    clip_loss,
    multi_positive_clip_loss,
    priority_targets,
    sigmoid_pairwise_loss,
)


def lse(xs):
    """log(sum(exp(x))) in plain Python."""
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def softplus(x):
    return math.log(1 + math.exp(x))


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def close(value, expected):
    assert value.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


# --- hand-computed values -------------------------------------------------------------------------------


def test_clip_loss_hand_computed_distinct_labels():
    ecg = t([[1, 0], [0, 1], [0.6, 0.8]])
    text = t([[0.8, 0.6], [0, 1], [1, 0]])
    # logits = 2 * ecg @ text.T, written out:
    # fmt: off
    L = [[1.6, 0.0, 2.0],
         [1.2, 2.0, 0.0],
         [1.92, 1.6, 1.2]]
    # fmt: on
    e2t = sum(lse(L[i]) - L[i][i] for i in range(3)) / 3
    cols = [[L[i][j] for i in range(3)] for j in range(3)]
    t2e = sum(lse(cols[j]) - L[j][j] for j in range(3)) / 3
    for mode in ("positive", "mask", "none"):  # no duplicates: every mode is plain CLIP
        out = clip_loss(ecg, text, 2.0, torch.tensor([5, 1, 7]), duplicates=mode)
        close(out["ecg_to_text"], e2t)
        close(out["text_to_ecg"], t2e)
        close(out["loss"], (e2t + t2e) / 2)
    close(clip_loss(ecg, text, 2.0)["loss"], (e2t + t2e) / 2)  # targets=None: all distinct


def _duplicate_batch():
    # ECGs 0 and 1 both sampled label 0 (text t0 = (1, 0)), ECG 2 label 1 (t1 = (0, 1)).
    ecg = t([[1, 0], [0.6, 0.8], [0, 1]])
    text = t([[1, 0], [1, 0], [0, 1]])
    targets = torch.tensor([0, 0, 1])
    # logits = 3 * ecg @ text.T
    # fmt: off
    L = [[3.0, 3.0, 0.0],
         [1.8, 1.8, 2.4],
         [0.0, 0.0, 3.0]]
    # fmt: on
    return ecg, text, targets, L


def test_clip_loss_duplicates_as_positives_hand_computed():
    ecg, text, targets, L = _duplicate_batch()
    col = [[L[i][j] for i in range(3)] for j in range(3)]
    # Soft targets: rows/cols 0 and 1 spread mass 1/2, 1/2 over the two label-0 entries.
    e2t = (
        (lse(L[0]) - (L[0][0] + L[0][1]) / 2) + (lse(L[1]) - (L[1][0] + L[1][1]) / 2) + (lse(L[2]) - L[2][2])
    ) / 3
    t2e = (
        (lse(col[0]) - (col[0][0] + col[0][1]) / 2)
        + (lse(col[1]) - (col[1][0] + col[1][1]) / 2)
        + (lse(col[2]) - col[2][2])
    ) / 3
    out = clip_loss(ecg, text, 3.0, targets, duplicates="positive")
    close(out["ecg_to_text"], e2t)
    close(out["text_to_ecg"], t2e)
    close(out["loss"], (e2t + t2e) / 2)


def test_clip_loss_duplicates_masked_hand_computed():
    ecg, text, targets, L = _duplicate_batch()
    # The other same-label entry leaves the softmax: row 0 drops column 1, row 1 drops column 0, ...
    e2t = ((lse([3.0, 0.0]) - 3.0) + (lse([1.8, 2.4]) - 1.8) + (lse([0.0, 0.0, 3.0]) - 3.0)) / 3
    t2e = ((lse([3.0, 0.0]) - 3.0) + (lse([1.8, 0.0]) - 1.8) + (lse([0.0, 2.4, 3.0]) - 3.0)) / 3
    out = clip_loss(ecg, text, 3.0, targets, duplicates="mask")
    close(out["ecg_to_text"], e2t)
    close(out["text_to_ecg"], t2e)


def test_clip_loss_duplicates_none_is_plain_clip_hand_computed():
    ecg, text, targets, L = _duplicate_batch()
    col = [[L[i][j] for i in range(3)] for j in range(3)]
    e2t = sum(lse(L[i]) - L[i][i] for i in range(3)) / 3
    t2e = sum(lse(col[j]) - L[j][j] for j in range(3)) / 3
    out = clip_loss(ecg, text, 3.0, targets, duplicates="none")
    close(out["loss"], (e2t + t2e) / 2)


def test_clip_loss_duplicate_behaviour_as_documented():
    ecg, text, targets, _ = _duplicate_batch()
    # Deterministic text tower (identical rows for a repeated label): "positive" equals plain CLIP.
    close(
        clip_loss(ecg, text, 3.0, targets)["loss"],
        clip_loss(ecg, text, 3.0, targets, duplicates="none")["loss"].item(),
    )
    # Two phrasings of label 0 (e.g. sampled templates): same-label pairs become interchangeable under
    # "positive", while plain CLIP still insists ECG 0 goes with phrasing 0 and not phrasing 1.
    text = t([[1, 0], [0.8, 0.6], [0, 1]])
    swapped = ecg[[1, 0, 2]]  # exchange the two ECGs that share label 0
    for mode, invariant in (("positive", True), ("none", False)):
        a = clip_loss(ecg, text, 3.0, targets, duplicates=mode)["loss"].item()
        b = clip_loss(swapped, text, 3.0, targets, duplicates=mode)["loss"].item()
        assert (a == pytest.approx(b, rel=1e-12)) is invariant, mode
    # "mask" removes the duplicate from both softmaxes, so the log(2) floor of a shared label is gone.
    perfect = t([[1, 0], [1, 0], [0, 1]])
    assert clip_loss(perfect, perfect, 100.0, targets, duplicates="mask")["loss"].item() < 1e-12
    assert clip_loss(perfect, perfect, 100.0, targets)["loss"].item() == pytest.approx(2 * math.log(2) / 3)


def test_multi_positive_clip_loss_hand_computed():
    ecg = t([[1, 0], [0.6, 0.8], [0, 1]])
    bank = t([[1, 0], [0, 1], [0.8, -0.6], [-1, 0]])
    # fmt: off
    multi_hot = torch.tensor([[1, 0, 1, 0],
                              [1, 1, 0, 0],
                              [0, 0, 0, 0]])  # ECG 2 has no label, label 3 no ECG: both skipped
    # fmt: on
    # logits = 2 * ecg @ bank.T
    # fmt: off
    L = [[2.0, 0.0, 1.6, -2.0],
         [1.2, 1.6, 0.0, -1.2],
         [0.0, 2.0, -1.2, 0.0]]
    # fmt: on
    col = [[L[i][j] for i in range(3)] for j in range(4)]
    e2t = ((lse(L[0]) - (L[0][0] + L[0][2]) / 2) + (lse(L[1]) - (L[1][0] + L[1][1]) / 2)) / 2
    t2e = (
        (lse(col[0]) - (col[0][0] + col[0][1]) / 2) + (lse(col[1]) - col[1][1]) + (lse(col[2]) - col[2][0])
    ) / 3
    out = multi_positive_clip_loss(ecg, bank, 2.0, multi_hot)
    close(out["ecg_to_text"], e2t)
    close(out["text_to_ecg"], t2e)
    close(out["loss"], (e2t + t2e) / 2)
    close(MultiPositiveClipLoss()(ecg, bank, 2.0, multi_hot.bool())["loss"], (e2t + t2e) / 2)


def test_sigmoid_pairwise_loss_hand_computed():
    ecg = t([[1, 0], [0, 1]])
    bank = t([[0.6, 0.8], [1, 0]])
    multi_hot = torch.tensor([[0, 1], [1, 0]])
    # logits = 2 * ecg @ bank.T - 1 = [[0.2, 1.0], [0.6, -1.0]]; -log sigmoid(z * l) = softplus(-z * l)
    pairs = [softplus(0.2), softplus(-1.0), softplus(-0.6), softplus(-1.0)]  # z = -1, +1, +1, -1
    out = sigmoid_pairwise_loss(ecg, bank, 2.0, -1.0, multi_hot)
    close(out["loss"], sum(pairs) / 4)
    close(out["pos"], (pairs[1] + pairs[2]) / 2)
    close(out["neg"], (pairs[0] + pairs[3]) / 2)
    close(sigmoid_pairwise_loss(ecg, bank, 2.0, -1.0, multi_hot, reduction="batch")["loss"], sum(pairs) / 2)
    close(SigmoidLoss("batch")(ecg, bank, 2.0, -1.0, multi_hot)["loss"], sum(pairs) / 2)


def test_bce_loss_hand_computed():
    logits = t([[0.5, -1.0], [2.0, 0.0]])
    multi_hot = torch.tensor([[1, 0], [0, 1]])
    # positive: -w * log sigmoid(x) = w * softplus(-x); negative: -log(1 - sigmoid(x)) = softplus(x)
    expected = (2 * softplus(-0.5) + softplus(-1.0) + softplus(2.0) + 1 * softplus(0.0)) / 4
    close(bce_loss(logits, multi_hot, pos_weight=t([2.0, 1.0]))["loss"], expected)
    plain = (softplus(-0.5) + softplus(-1.0) + softplus(2.0) + softplus(0.0)) / 4
    close(bce_loss(logits, multi_hot)["loss"], plain)


# --- properties -----------------------------------------------------------------------------------------


def _unit(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x / x.norm(dim=-1, keepdim=True)


def test_symmetry_swapping_the_towers_swaps_the_directions():
    ecg, text = _unit(4, 8, 0), _unit(4, 8, 1)
    a, b = clip_loss(ecg, text, 5.0), clip_loss(text, ecg, 5.0)
    close(a["ecg_to_text"], b["text_to_ecg"].item())
    close(a["loss"], b["loss"].item())
    bank = _unit(5, 8, 2)
    y = torch.tensor([[1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]])
    a, b = multi_positive_clip_loss(ecg, bank, 5.0, y), multi_positive_clip_loss(bank, ecg, 5.0, y.T)
    close(a["ecg_to_text"], b["text_to_ecg"].item())
    close(a["text_to_ecg"], b["ecg_to_text"].item())
    close(
        sigmoid_pairwise_loss(ecg, bank, 5.0, -2.0, y)["loss"],
        sigmoid_pairwise_loss(bank, ecg, 5.0, -2.0, y.T)["loss"].item(),
    )


def test_clip_loss_is_invariant_to_batch_order():
    ecg, text, targets = _unit(5, 8, 3), _unit(5, 8, 4), torch.tensor([0, 2, 2, 1, 3])
    perm = torch.tensor([3, 0, 4, 2, 1])
    for mode in ("positive", "mask", "none"):
        close(
            clip_loss(ecg[perm], text[perm], 4.0, targets[perm], mode)["loss"],
            clip_loss(ecg, text, 4.0, targets, mode)["loss"].item(),
        )


def test_multi_positive_with_one_label_each_equals_clip_loss():
    bank, ecg = _unit(3, 8, 5), _unit(3, 8, 6)
    targets = torch.tensor([2, 0, 1])
    multi_hot = torch.nn.functional.one_hot(targets, 3)
    close(
        multi_positive_clip_loss(ecg, bank, 7.0, multi_hot)["loss"],
        clip_loss(ecg, bank[targets], 7.0, targets)["loss"].item(),
    )


def test_perfect_alignment_beats_random():
    bank = torch.eye(6, 8, dtype=torch.float64)  # 6 orthonormal label embeddings
    targets = torch.tensor([0, 3, 5, 1])
    multi_hot = torch.nn.functional.one_hot(targets, 6)
    perfect, rand = bank[targets], _unit(4, 8, 7)
    scale = 1 / 0.07
    for name, fn in {
        "clip": lambda e: clip_loss(e, bank[targets], scale, targets),
        "multi_positive": lambda e: multi_positive_clip_loss(e, bank, scale, multi_hot),
        "sigmoid": lambda e: sigmoid_pairwise_loss(e, bank, scale, -5.0, multi_hot),
    }.items():
        assert fn(perfect)["loss"] < fn(rand)["loss"], name


def test_gradient_flows_to_logit_scale_and_bias():
    ecg, text, bank = _unit(4, 8, 8), _unit(4, 8, 9), _unit(5, 8, 10)
    y = torch.tensor([[1, 0, 0, 1, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [1, 0, 0, 0, 1]])
    for name in ("clip", "multi_positive", "sigmoid"):
        log_scale = torch.tensor(math.log(1 / 0.07), dtype=torch.float64, requires_grad=True)
        bias = torch.tensor(-10.0, dtype=torch.float64, requires_grad=True)
        scale = log_scale.exp()
        if name == "clip":
            out = LOSSES[name](ecg, text, scale, torch.tensor([0, 1, 1, 2]))
        elif name == "multi_positive":
            out = LOSSES[name](ecg, bank, scale, y)
        else:
            out = LOSSES[name](ecg, bank, scale, bias, y)
            out["loss"].backward(retain_graph=True)
            assert bias.grad is not None and bias.grad.abs() > 0
            log_scale.grad = None
        out["loss"].backward()
        assert log_scale.grad is not None and torch.isfinite(log_scale.grad) and log_scale.grad.abs() > 0, (
            name
        )


def test_rows_and_columns_without_positives_are_skipped():
    ecg, bank = _unit(3, 8, 11), _unit(4, 8, 12)
    y = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]])
    base = multi_positive_clip_loss(ecg, bank, 5.0, y)
    # An extra ECG with no label changes nothing in the ECG->label direction ...
    more_ecg = multi_positive_clip_loss(
        torch.cat([ecg, _unit(1, 8, 13)]), bank, 5.0, torch.cat([y, torch.zeros(1, 4, dtype=y.dtype)])
    )
    close(more_ecg["ecg_to_text"], base["ecg_to_text"].item())
    # ... and an extra label no ECG has changes nothing in the label->ECG direction.
    more_labels = multi_positive_clip_loss(
        ecg, torch.cat([bank, _unit(1, 8, 14)]), 5.0, torch.cat([y, torch.zeros(3, 1, dtype=y.dtype)], dim=1)
    )
    close(more_labels["text_to_ecg"], base["text_to_ecg"].item())
    # No positive at all: zero loss that still back-propagates.
    e = ecg.clone().requires_grad_(True)
    empty = multi_positive_clip_loss(e, bank, 5.0, torch.zeros(3, 4))
    assert empty["loss"].item() == 0.0
    empty["loss"].backward()
    assert e.grad is not None and torch.all(e.grad == 0)


def test_registry_module_forms_and_bad_options():
    assert set(LOSSES) == {"clip", "multi_positive", "sigmoid", "bce"}
    assert all(callable(f) for f in LOSSES.values())
    ecg, text = _unit(3, 8, 15), _unit(3, 8, 16)
    targets = torch.tensor([1, 1, 0])
    close(
        ClipLoss("mask")(ecg, text, 3.0, targets)["loss"],
        clip_loss(ecg, text, 3.0, targets, duplicates="mask")["loss"].item(),
    )
    with pytest.raises(ValueError):
        ClipLoss("bogus")
    with pytest.raises(ValueError):
        clip_loss(ecg, text, 3.0, targets, duplicates="bogus")
    with pytest.raises(ValueError):
        sigmoid_pairwise_loss(ecg, text, 3.0, 0.0, torch.eye(3), reduction="sum")


# --- rarest-first targets -------------------------------------------------------------------------------


def test_priority_targets_hand_computed():
    multi_hot = torch.tensor([[1, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0]])
    frequency = t([10, 3, 10, 50])  # label 1 is the rarest; labels 0 and 2 tie (index breaks it)
    out = priority_targets(multi_hot, frequency, 2.0)
    # row 0: order 1 (w 1), 0 (w 1/2), 3 (w 1/4) -> [2, 4, 0, 1] / 7
    expected = [[2 / 7, 4 / 7, 0, 1 / 7], [0, 0, 0, 0], [0, 1, 0, 0], [2 / 3, 0, 1 / 3, 0]]
    assert out.dtype == torch.float32
    assert out.tolist() == pytest.approx([pytest.approx(r, rel=1e-6) for r in expected])
    # ratio 1 is the uniform target; a float64 multi-hot keeps its dtype.
    uniform = priority_targets(multi_hot.double(), frequency, 1.0)
    assert uniform.dtype == torch.float64
    rows = multi_hot.double().sum(dim=1, keepdim=True)
    torch.testing.assert_close(uniform, multi_hot.double() / rows.clamp_min(1))


def test_multi_positive_with_row_target_hand_computed():
    ecg = t([[1, 0], [0.6, 0.8]])
    bank = t([[1, 0], [0, 1], [0.8, -0.6]])
    multi_hot = torch.tensor([[1, 0, 1], [1, 1, 0]])
    target = priority_targets(multi_hot.double(), t([5, 1, 2]), 3.0)  # row 0: label 2 (3/4), 0 (1/4)
    L = [[2.0, 0.0, 1.6], [1.2, 1.6, 0.0]]  # 2 * ecg @ bank.T
    e2t = ((lse(L[0]) - (0.25 * L[0][0] + 0.75 * L[0][2])) + (lse(L[1]) - (0.25 * L[1][0] + 0.75 * L[1][1]))) / 2
    out = multi_positive_clip_loss(ecg, bank, 2.0, multi_hot, target)
    close(out["ecg_to_text"], e2t)
    # the label -> ECG direction does not change
    close(out["text_to_ecg"], multi_positive_clip_loss(ecg, bank, 2.0, multi_hot)["text_to_ecg"].item())
    # the default row target is the uniform one
    uniform = multi_hot.double() / multi_hot.sum(dim=1, keepdim=True)
    close(multi_positive_clip_loss(ecg, bank, 2.0, multi_hot, uniform)["loss"],
          multi_positive_clip_loss(ecg, bank, 2.0, multi_hot)["loss"].item())


def test_rarest_first_optimum_separates_co_occurring_labels():
    """Minimising the ECG -> label loss with rarest-first targets leaves a gap of log(ratio) in logits
    between two always co-occurring labels; uniform targets leave them tied."""
    torch.manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1)
    multi_hot = torch.tensor([[1, 1, 0, 0]])
    for ratio, gap in ((1.0, 0.0), (2.0, math.log(2.0))):
        ecg = torch.randn(1, 8, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([ecg], lr=0.05)
        target = priority_targets(multi_hot, t([5, 1, 9, 9]), ratio)
        for _ in range(1500):
            e = torch.nn.functional.normalize(ecg, dim=1)
            loss = multi_positive_clip_loss(e, bank, 10.0, multi_hot, target)["ecg_to_text"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        logits = 10.0 * torch.nn.functional.normalize(ecg, dim=1) @ bank.T
        assert (logits[0, 1] - logits[0, 0]).item() == pytest.approx(gap, abs=0.05)


# --- partial label sets: unknown labels leave the loss ---------------------------------------------
def test_unknown_labels_leave_every_loss():
    from training.loss import bce_loss, clip_loss, multi_positive_clip_loss, sigmoid_pairwise_loss

    g = torch.Generator().manual_seed(3)
    ecg = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=1)
    bank = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=1)
    y = torch.zeros(6, 5)
    y[torch.arange(6), torch.tensor([0, 1, 2, 0, 1, 2])] = 1
    known = torch.ones(6, 5, dtype=torch.bool)
    known[:3, 3:] = False  # the first three ECGs cannot state labels 3 and 4
    # Moving the unknown labels' scores must not change the loss; moving known negatives must.
    bank2 = bank.clone()
    bank2[3:] = torch.nn.functional.normalize(torch.randn(2, 8, generator=g), dim=1)
    only_first = torch.ones(6, 5, dtype=torch.bool)
    only_first[:, 3:] = False  # labels 3-4 unknown for every ECG
    a = multi_positive_clip_loss(ecg, bank, 10.0, y, known=only_first)["loss"]
    b = multi_positive_clip_loss(ecg, bank2, 10.0, y, known=only_first)["loss"]
    assert torch.allclose(a, b) and not torch.allclose(
        multi_positive_clip_loss(ecg, bank, 10.0, y)["loss"], multi_positive_clip_loss(ecg, bank2, 10.0, y)["loss"])
    s1 = sigmoid_pairwise_loss(ecg, bank, 10.0, -5.0, y, known=only_first)["loss"]
    s2 = sigmoid_pairwise_loss(ecg, bank2, 10.0, -5.0, y, known=only_first)["loss"]
    assert torch.allclose(s1, s2)
    logits = torch.randn(6, 5, generator=g)
    logits2 = logits.clone()
    logits2[:3, 3:] += 7.0
    assert torch.allclose(bce_loss(logits, y, known=known)["loss"], bce_loss(logits2, y, known=known)["loss"])
    assert not torch.allclose(bce_loss(logits, y)["loss"], bce_loss(logits2, y)["loss"])
    # All-known mask equals no mask; the losses stay finite and differentiable.
    full = torch.ones(6, 5, dtype=torch.bool)
    assert torch.allclose(multi_positive_clip_loss(ecg, bank, 10.0, y, known=full)["loss"],
                          multi_positive_clip_loss(ecg, bank, 10.0, y)["loss"])
    e = ecg.clone().requires_grad_(True)
    out = multi_positive_clip_loss(e, bank, 10.0, y, known=known)["loss"]
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(e.grad).all()
    # CLIP (one text per ECG): text j of label pick[j] is not a negative for an ECG that cannot state it.
    pick = torch.tensor([0, 1, 2, 3, 4, 0])
    y_clip = torch.nn.functional.one_hot(pick, 5).float()
    texts = bank[pick]
    k = torch.ones(6, 5, dtype=torch.bool)
    k[0, 3] = False
    base = clip_loss(ecg, texts, 10.0, pick, known=k)["loss"]
    assert torch.isfinite(base) and not torch.allclose(base, clip_loss(ecg, texts, 10.0, pick)["loss"])
    # Masking pair (0, 3) equals removing it from both softmaxes by hand.
    logits = 10.0 * ecg @ texts.T
    same = (pick[:, None] == pick[None, :]).float()
    t = same / same.sum(1, keepdim=True)
    logits[0, 3] = -1e4
    manual = (-(t * logits.log_softmax(1)).sum(1).mean() - (t * logits.T.log_softmax(1)).sum(1).mean()) / 2
    assert torch.allclose(base, manual)
    with pytest.raises(ValueError, match="targets"):
        clip_loss(ecg, texts, 10.0, None, known=k)
    del y_clip
