"""A small trainable byte-level text encoder (torch only): the no-download alternative to a frozen LLM.

Texts become UTF-8 byte ids (ByT5, Xue et al. 2022, showed byte-level models need no vocabulary;
Japanese is 3 bytes per character), a small pre-LayerNorm transformer encoder (Vaswani et al. 2017)
reads them, and masked mean pooling gives one vector per text. Trained jointly with the ECG encoder under
the CLIP loss (Radford et al. 2021), it learns label texts from the pairs alone, so it cannot place a
label whose wording it never saw as well as a pretrained encoder can; that is its trade-off.

``tokenize_bytes`` applies NFKC normalisation first (full-width ``ＱＲＳ`` and ``QRS`` become the same
bytes), then ids are byte + 1 with 0 as padding; rows are truncated to ``max_len`` bytes.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["PAD_ID", "ByteTextConfig", "ByteTextEncoder", "tokenize_bytes"]

log = logging.getLogger(__name__)

PAD_ID = 0  # token id of padding; byte b has id b + 1


def tokenize_bytes(texts: Sequence[str], max_len: int = 64, nfkc: bool = True) -> np.ndarray:
    """UTF-8 byte ids ``int64 [n, max_len]``: byte + 1, 0 = padding, truncated to ``max_len`` bytes."""
    if isinstance(texts, str):
        raise TypeError("tokenize_bytes takes a sequence of strings, not one string: wrap it in a list")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, not {max_len}")
    out = np.zeros((len(texts), max_len), dtype=np.int64)
    for i, text in enumerate(texts):
        if nfkc:
            text = unicodedata.normalize("NFKC", text)
        ids = np.frombuffer(text.encode("utf-8")[:max_len], dtype=np.uint8).astype(np.int64) + 1
        out[i, : len(ids)] = ids
    return out


@dataclass
class ByteTextConfig:
    """Shape of the byte text encoder; stored in the checkpoint and enough to rebuild the module."""

    vocab_size: int = 257  # 256 byte values + padding id 0
    width: int = 128  # embedding and transformer width (d_model)
    depth: int = 2  # transformer encoder layers
    heads: int = 4  # attention heads; width must be divisible by heads
    max_len: int = 64  # longest input in bytes (learned positions); tokenize_bytes truncates to this
    out_dim: int = 128  # output size; a Linear maps width -> out_dim unless they are equal
    mlp_ratio: float = 4.0  # feed-forward width / width
    dropout: float = 0.1  # dropout in attention and feed-forward (training only)


class ByteTextEncoder(nn.Module):
    """``forward(token_ids LongTensor[n, L]) -> Tensor[n, out_dim]``, with ``L <= cfg.max_len``.

    Padding (id 0) is masked in attention and in the mean pooling, so the output does not depend on how
    much padding follows the text. A text with no bytes at all pools its first (padding) position.
    The output is not normalised: the projection head or the contrastive model does that.
    """

    def __init__(self, cfg: ByteTextConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ByteTextConfig()
        if cfg.width % cfg.heads:
            raise ValueError(f"width {cfg.width} is not divisible by heads {cfg.heads}")
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.width, padding_idx=PAD_ID)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.width)
        layer = nn.TransformerEncoderLayer(
            d_model=cfg.width,
            nhead=cfg.heads,
            dim_feedforward=int(cfg.width * cfg.mlp_ratio),
            dropout=cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # Pre-LN trains stably at this small size; nested tensors are off because they need post-LN.
        self.encoder = nn.TransformerEncoder(layer, num_layers=cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)
        self.proj: nn.Module = (
            nn.Identity() if cfg.out_dim == cfg.width else nn.Linear(cfg.width, cfg.out_dim)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.tok_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.tok_emb.weight[PAD_ID].zero_()

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        if token_ids.ndim != 2:
            raise ValueError(f"expected token ids [n, L], got shape {tuple(token_ids.shape)}")
        n, length = token_ids.shape
        if length > self.cfg.max_len:
            raise ValueError(f"input length {length} exceeds max_len {self.cfg.max_len}")
        token_ids = token_ids.long()
        valid = token_ids != PAD_ID
        valid[:, 0] |= ~valid.any(dim=1)  # an empty text keeps one position, else attention gives NaN
        pos = torch.arange(length, device=token_ids.device)
        h = self.tok_emb(token_ids) + self.pos_emb(pos)[None]
        h = self.norm(self.encoder(h, src_key_padding_mask=~valid))
        w = valid.unsqueeze(-1).to(h.dtype)
        pooled = (h * w).sum(dim=1) / w.sum(dim=1)
        return self.proj(pooled)
