"""The text tower of the contrastive model and its input, built from one serialisable spec.

Two kinds, as in the study and its cheaper alternative:

- ``frozen``: a pretrained text encoder (USE-m3, e5-small, a local Hugging Face model...) embeds each
  label's text(s) once (cached); a trainable :class:`~training.model.ProjectionHead` maps them into the
  shared space. The text input is the frozen feature matrix ``[n_labels, d_text]``.
- ``byte``: a small trainable byte-level encoder (:mod:`training.byte_text`) plus a projection head,
  trained from scratch with the ECG encoder. The text input is the byte-token matrix ``[n_labels, L]``.

The spec (a plain dict) goes into the checkpoint, so evaluation and export rebuild the same tower and
compute the same input for any label, including labels added after training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .model import ProjectionHead

__all__ = ["TextConfig", "build_text_tower", "text_input_for", "text_spec"]

FROZEN_DEFAULT = "use-m3"


@dataclass
class TextConfig:
    """How label texts are embedded; serialised into the checkpoint as the text spec."""

    encoder: str = FROZEN_DEFAULT  # "byte" (trainable) or a frozen encoder name: use-m3, e5-small, hashing, hf:DIR
    mode: str = "ja"  # label text recipe (training.label_texts): ja, ja+desc, ja+en, templates
    head: str = "linear"  # text projection: "linear" (trained), or "none" (frozen text space, ECG maps into it)
    head_hidden: int | None = None  # hidden width of the projection MLP (None: one Linear layer)
    byte_width: int = 128  # byte encoder width (kind "byte" only)
    byte_depth: int = 2  # byte encoder transformer layers (kind "byte" only)
    byte_max_len: int = 64  # bytes per text (kind "byte" only)

    def to_dict(self) -> dict:
        return asdict(self)


def text_spec(cfg: TextConfig, embed_dim: int) -> dict:
    """The spec for a new model: which encoder, which texts, which head."""
    if cfg.head not in ("linear", "none"):
        raise ValueError(f"text head must be linear or none, got {cfg.head!r}")
    spec = {"encoder": cfg.encoder, "mode": cfg.mode, "head": cfg.head, "head_hidden": cfg.head_hidden, "embed_dim": embed_dim}
    if cfg.encoder == "byte":
        if cfg.head == "none":
            raise ValueError("a trainable byte-level text encoder needs a projection head (--text-head linear)")
        from .byte_text import ByteTextConfig

        bcfg = ByteTextConfig(width=cfg.byte_width, depth=cfg.byte_depth, max_len=cfg.byte_max_len)
        spec.update(kind="byte", byte=asdict(bcfg))
    else:
        from .text_encoders import get_text_encoder

        encoder = get_text_encoder(cfg.encoder)
        spec.update(kind="frozen", encoder_spec=encoder.spec(), text_dim=int(encoder.dim))
        if cfg.head == "none":  # the ECG encoder must then embed into the text encoder's own space
            spec["embed_dim"] = int(encoder.dim)
    return spec


class _Normalize(nn.Module):
    """Parameter-free text tower: the frozen features themselves, unit-normalised."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def build_text_tower(spec: dict) -> nn.Module:
    """A fresh (untrained) text tower for ``spec``; load weights from a checkpoint on top."""
    if spec["kind"] == "frozen":
        if spec.get("head") == "none":
            return _Normalize()
        return ProjectionHead(spec["text_dim"], spec["embed_dim"], spec.get("head_hidden"))
    from .byte_text import ByteTextConfig, ByteTextEncoder

    bcfg = ByteTextConfig(**spec["byte"])
    return nn.Sequential(ByteTextEncoder(bcfg), ProjectionHead(bcfg.out_dim, spec["embed_dim"], spec.get("head_hidden")))


def text_input_for(spec: dict, labels: Sequence, cache_dir=None) -> torch.Tensor:
    """The text tower's input for ``labels`` (objects with id/ja/en/description_ja)."""
    from .label_texts import build_label_bank, label_texts

    if spec["kind"] == "frozen":
        from .text_encoders import get_text_encoder

        encoder = get_text_encoder(spec["encoder_spec"])
        bank = build_label_bank(encoder, labels, spec["mode"], cache=cache_dir)
        return torch.from_numpy(np.asarray(bank, dtype=np.float32))
    from .byte_text import tokenize_bytes

    texts = [" ".join(t) for t in label_texts(labels, spec["mode"])]
    return torch.from_numpy(tokenize_bytes(texts, spec["byte"]["max_len"]))
