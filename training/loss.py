"""Contrastive and supervised losses, all in one module (open_clip ``loss.py`` style).

Every loss returns a dict of named scalar tensors; ``"loss"`` is the total to back-propagate, the other
entries are its parts for logging. ``logit_scale`` is always the multiplier itself (already exp'd and
clamped, as :meth:`training.model.ContrastiveModel.forward` returns it), and the embeddings are unit vectors.

Partial label sets: every loss takes an optional ``known`` ``[B, L]`` mask (True where the ECG's source
states the label, present or absent; see :mod:`training.datasets.known`). An unknown (ECG, label) pair
is neither a positive nor a negative: it is removed from the softmaxes (contrastive losses) or from the
mean (sigmoid, BCE). ``known=None`` means every label is known.

- :func:`clip_loss`: the symmetric InfoNCE / CLIP loss (Radford et al. 2021, "Learning Transferable Visual
  Models From Natural Language Supervision") on a B x B matrix, as in the reference study: one positive
  label text per ECG. Two ECGs in a batch can share a label; how such pairs count is a choice
  (``duplicates=``, see there).
- :func:`multi_positive_clip_loss`: the principled version for multi-label ECGs: logits against the whole
  label bank and soft targets over all positives, in both directions.
- :func:`sigmoid_pairwise_loss`: the SigLIP loss (Zhai et al. 2023, "Sigmoid Loss for Language Image
  Pre-Training"): an independent binary decision per (ECG, label) pair, with a learnable bias.
- :func:`bce_loss`: binary cross-entropy on classifier logits, the supervised baseline.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "LOSSES",
    "ClipLoss",
    "MultiPositiveClipLoss",
    "SigmoidLoss",
    "bce_loss",
    "clip_loss",
    "multi_positive_clip_loss",
    "priority_targets",
    "sigmoid_pairwise_loss",
]

DUPLICATE_MODES = ("positive", "mask", "none")


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-sum_j target_ij * log_softmax(logits)_ij`` (each target row sums to 1)."""
    return -(target * logits.log_softmax(dim=-1)).sum(dim=-1).mean()


MASKED = -1e4  # logit of a pair left out of a softmax (finite: a zero target times -inf would give nan)


def _zero(like: torch.Tensor) -> torch.Tensor:
    # A zero that keeps the graph (and thus .backward()) alive when every row is skipped.
    return like.sum() * 0.0


def clip_loss(
    ecg: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor | float,
    targets: torch.Tensor | None = None,
    duplicates: str = "positive",
    known: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Symmetric CLIP loss over a batch of B (ECG, label text) pairs.

    Args:
        ecg: ``[B, D]`` unit ECG embeddings.
        text: ``[B, D]`` unit text embeddings; row i is the text of the label sampled for ECG i (for a
            fixed label bank: ``bank[targets]``).
        logit_scale: the multiplier of the cosine similarities (1/temperature).
        targets: ``LongTensor[B]``, the label index sampled for each ECG; only used to find pairs of
            ECGs that share a label. ``None`` means all labels in the batch are distinct.
        duplicates: what a pair (i, j), i != j, with the same label means:

            - ``"positive"`` (default): a positive. Targets become soft: row i spreads its mass evenly
              over every column with its label, in both directions (the multi-positive fix), so
              same-label ECGs (and texts) are interchangeable. When the duplicates' text rows are
              identical (a deterministic text tower, one text per label) this equals ``"none"`` exactly;
              it differs, and matters, when they are not (sampled templates, text dropout), where plain
              CLIP would push ECG i away from another phrasing of its own label. A label shared by k
              ECGs puts a floor of log k on its rows: compare loss values only at equal batch size.
            - ``"mask"``: neither positive nor negative: the other same-label entries are removed from
              both softmaxes, so row i competes only against other labels (no floor).
            - ``"none"``: the standard CLIP loss (``arange(B)`` targets), ignoring duplicates, as in the
              reference study.
        known: ``[B, L]`` bool over the label bank (needs ``targets``): pair (i, j) is left out of both
            softmaxes when label ``targets[j]`` is unknown for ECG i.

    Returns:
        ``{"loss": mean of both directions, "ecg_to_text": ..., "text_to_ecg": ...}``.
    """
    if duplicates not in DUPLICATE_MODES:
        raise ValueError(f"duplicates must be one of {DUPLICATE_MODES}, got {duplicates!r}")
    logits = logit_scale * ecg @ text.T  # [B, B]; row i: ECG i against every text in the batch
    n = logits.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    same = eye if targets is None else targets[:, None] == targets[None, :]
    if known is not None:
        if targets is None:
            raise ValueError("clip_loss: a known-label mask needs the targets (label index of each text)")
        logits = logits.masked_fill(~known.bool()[:, targets] & ~same, MASKED)
    if duplicates == "positive":
        target = same.to(logits.dtype)
        target = target / target.sum(dim=1, keepdim=True)  # symmetric, so it serves both directions
        e2t, t2e = _soft_cross_entropy(logits, target), _soft_cross_entropy(logits.T, target)
    else:
        if duplicates == "mask":
            logits = logits.masked_fill(same & ~eye, float("-inf"))
        labels = torch.arange(n, device=logits.device)
        e2t, t2e = F.cross_entropy(logits, labels), F.cross_entropy(logits.T, labels)
    return {"loss": (e2t + t2e) / 2, "ecg_to_text": e2t, "text_to_ecg": t2e}


def priority_targets(multi_hot: torch.Tensor, priority: torch.Tensor, ratio: float) -> torch.Tensor:
    """ECG -> label soft targets that rank an ECG's positives instead of spreading mass evenly.

    ``priority`` is ``[L]``, lower = first (e.g. a label's training frequency, so the rarest and most
    specific label of an ECG comes first: 1度房室ブロック before 房室ブロック before 伝導障害, 正常心電図
    before 洞調律). Within a row, the positive in position k (0 = first) gets weight ``ratio ** -k``,
    then the row is normalised. At the optimum two co-occurring positives differ by
    ``log(ratio) / logit_scale`` in cosine instead of tying, so the top-1 label of an ECG is a decision
    the model makes, not a coin that numerical noise (int8 rounding) flips. ``ratio = 1`` is uniform.
    Ties in ``priority`` are broken by label index. Rows without positives stay zero.
    """
    dtype = multi_hot.dtype if multi_hot.is_floating_point() else torch.float32
    y = multi_hot.to(torch.float64)
    order = torch.argsort(priority, stable=True)
    ranked = y[:, order]
    position = torch.empty_like(ranked)
    position[:, order] = (ranked.cumsum(dim=1) - 1) * ranked  # within-row position of each positive
    weights = y * torch.as_tensor(float(ratio), dtype=torch.float64).pow(-position)
    total = weights.sum(dim=1, keepdim=True)
    return torch.where(total > 0, weights / total.clamp_min(1e-12), weights).to(dtype)


def multi_positive_clip_loss(
    ecg: torch.Tensor, label_bank: torch.Tensor, logit_scale: torch.Tensor | float, multi_hot: torch.Tensor,
    row_target: torch.Tensor | None = None, known: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Symmetric CLIP loss against the whole label bank with soft multi-positive targets.

    Args:
        ecg: ``[B, D]`` unit ECG embeddings.
        label_bank: ``[L, D]`` unit embeddings of every label text.
        logit_scale: the multiplier of the cosine similarities.
        multi_hot: ``[B, L]`` 0/1 (or bool) positives.
        row_target: ``[B, L]`` ECG -> label targets (rows sum to 1 where there are positives), e.g.
            :func:`priority_targets`; default ``multi_hot / rowsum`` (every positive alike).
        known: ``[B, L]`` bool; an unknown pair leaves both softmaxes (ECG i does not compete against a
            label its source cannot state, and that label's column does not count ECG i as a negative).

    ECG -> label: each ECG row's softmax over the L labels is matched to ``row_target`` (default
    ``multi_hot / rowsum``).
    Label -> ECG: each label column's softmax over the B ECGs of the batch is matched to
    ``multi_hot[:, l] / colsum``. Rows and columns without any positive are skipped (they still appear
    as negatives in the other direction's softmax); each direction is the mean over the kept ones, and
    the total is the mean of the two directions.

    Returns:
        ``{"loss", "ecg_to_text", "text_to_ecg"}``.
    """
    logits = logit_scale * ecg @ label_bank.T  # [B, L]
    y = multi_hot.to(logits.dtype)
    if known is not None:
        logits = logits.masked_fill(~(known.bool() | (y > 0)), MASKED)
    row_pos, col_pos = y.sum(dim=1), y.sum(dim=0)
    rows, cols = row_pos > 0, col_pos > 0
    target = y / row_pos.clamp_min(1)[:, None] if row_target is None else row_target.to(logits.dtype)
    e2t = _soft_cross_entropy(logits[rows], target[rows]) if rows.any() else _zero(logits)
    if cols.any():
        t2e = _soft_cross_entropy(logits[:, cols].T, (y[:, cols] / col_pos[cols]).T)
    else:
        t2e = _zero(logits)
    return {"loss": (e2t + t2e) / 2, "ecg_to_text": e2t, "text_to_ecg": t2e}


def sigmoid_pairwise_loss(
    ecg: torch.Tensor,
    label_bank: torch.Tensor,
    logit_scale: torch.Tensor | float,
    logit_bias: torch.Tensor | float,
    multi_hot: torch.Tensor,
    reduction: str = "mean",
    known: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """SigLIP loss: ``-log sigmoid(z_ij * (scale * <ecg_i, label_j> + bias))``, z = +1 positive / -1 not.

    Every (ECG, label bank row) pair is an independent binary problem, so several positives per ECG
    need no special care. ``reduction="mean"`` (default) averages over all B*L pairs, which keeps the
    value on the scale of :func:`bce_loss` whatever the bank size; ``"batch"`` is SigLIP's sum over
    pairs divided by B (L times larger). SigLIP initialises scale = 10 and bias = -10, which suits the
    many negatives per ECG.

    Returns:
        ``{"loss", "pos", "neg"}`` (pos / neg: mean loss over positive / negative pairs, for logging).
    """
    if reduction not in ("mean", "batch"):
        raise ValueError(f"reduction must be 'mean' or 'batch', got {reduction!r}")
    logits = logit_scale * ecg @ label_bank.T + logit_bias  # [B, L]
    y = multi_hot.to(logits.dtype)
    keep = torch.ones_like(y, dtype=torch.bool) if known is None else known.bool() | (y > 0)
    per_pair = -F.logsigmoid((2 * y - 1) * logits) * keep
    n_kept = keep.sum().clamp_min(1)
    loss = per_pair.sum() / n_kept if reduction == "mean" else per_pair.sum() / logits.shape[0]
    is_pos = y > 0
    is_neg = ~is_pos & keep
    pos = per_pair[is_pos].mean() if is_pos.any() else _zero(per_pair)
    neg = per_pair[is_neg].mean() if is_neg.any() else _zero(per_pair)
    return {"loss": loss, "pos": pos.detach(), "neg": neg.detach()}


def bce_loss(
    logits: torch.Tensor, multi_hot: torch.Tensor, pos_weight: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Binary cross-entropy with logits, mean over the known (ECG, label) entries; ``pos_weight`` is ``[L]``."""
    y = multi_hot.to(logits.dtype)
    if known is None:
        return {"loss": F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight)}
    keep = (known.bool() | (y > 0)).to(logits.dtype)
    per = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight, reduction="none")
    return {"loss": (per * keep).sum() / keep.sum().clamp_min(1)}


class ClipLoss(nn.Module):
    """Module form of :func:`clip_loss` holding its ``duplicates`` choice."""

    def __init__(self, duplicates: str = "positive") -> None:
        super().__init__()
        if duplicates not in DUPLICATE_MODES:
            raise ValueError(f"duplicates must be one of {DUPLICATE_MODES}, got {duplicates!r}")
        self.duplicates = duplicates

    def forward(
        self,
        ecg: torch.Tensor,
        text: torch.Tensor,
        logit_scale: torch.Tensor | float,
        targets: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        return clip_loss(ecg, text, logit_scale, targets, duplicates=self.duplicates, known=known)


class MultiPositiveClipLoss(nn.Module):
    """Module form of :func:`multi_positive_clip_loss`."""

    def forward(
        self,
        ecg: torch.Tensor,
        label_bank: torch.Tensor,
        logit_scale: torch.Tensor | float,
        multi_hot: torch.Tensor,
        row_target: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        return multi_positive_clip_loss(ecg, label_bank, logit_scale, multi_hot, row_target, known)


class SigmoidLoss(nn.Module):
    """Module form of :func:`sigmoid_pairwise_loss` holding its ``reduction``."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(
        self,
        ecg: torch.Tensor,
        label_bank: torch.Tensor,
        logit_scale: torch.Tensor | float,
        logit_bias: torch.Tensor | float,
        multi_hot: torch.Tensor,
        known: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        return sigmoid_pairwise_loss(ecg, label_bank, logit_scale, logit_bias, multi_hot, self.reduction, known)


# Name -> loss function (options such as ``duplicates`` or ``reduction`` go through functools.partial).
LOSSES = {
    "clip": clip_loss,
    "multi_positive": multi_positive_clip_loss,
    "sigmoid": sigmoid_pairwise_loss,
    "bce": bce_loss,
}
