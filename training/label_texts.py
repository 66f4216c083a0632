"""The texts that stand for each label, and the label bank: one unit vector per label.

A label is embedded from one or more texts made from its catalogue entry (``ja``, ``en``,
``description_ja``). With several texts (prompt templates, as in CLIP, Radford et al. 2021, and its
"prompt ensembling") the label's vector is the mean of the L2-normalised text embeddings, normalised
again: the recipe of open_clip's ``build_zero_shot_classifier``. Evaluation and export both call
:func:`build_label_bank`, so a label added after training is embedded exactly as the trained ones were.

Modes (:data:`MODES`):

- ``ja``: the Japanese term alone, ``完全右脚ブロック``.
- ``ja+desc``: term and its Japanese description, ``完全右脚ブロック：QRS幅が…``.
- ``ja+en``: term and English name, ``完全右脚ブロック（complete right bundle branch block）``.
- ``templates``: the term in each of :data:`JA_TEMPLATES` (several texts per label).
- ``ja+parents``: the term, and the term preceded by its ancestors in the catalogue hierarchy,
  ``心筋梗塞・下壁心筋梗塞`` (two texts, averaged). Hierarchy in the prompt, as in CLIP's "a type of"
  prompts and CHiLS (Novack et al. 2023), lets a new label land near the seen labels it belongs to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .text_cache import EmbeddingCache, encode_cached
from .text_encoders import TextEncoder

__all__ = ["JA_TEMPLATES", "MODES", "LabelLike", "build_label_bank", "label_texts"]

log = logging.getLogger(__name__)

MODES = ("ja", "ja+desc", "ja+en", "templates", "ja+parents")

# Phrasings of a finding as it appears in Japanese ECG reports; the bare term comes first.
JA_TEMPLATES = (
    "{ja}",
    "心電図所見：{ja}",
    "{ja}を認める",
    "{ja}の心電図",
)


class LabelLike(Protocol):
    """What this module reads from a label (``edge.interpret.catalogue.Label`` has these and more)."""

    id: str
    ja: str
    en: str
    description_ja: str


def _ancestor_path(label: Any, by_id: dict[str, Any]) -> list[str]:
    """Japanese terms of the label's ancestors, farthest first (breadth-first over ``parents``)."""
    seen: list[str] = []
    frontier = list(getattr(label, "parents", ()) or ())
    while frontier:
        pid = frontier.pop(0)
        if pid in seen or pid not in by_id:
            continue
        seen.append(pid)
        frontier.extend(getattr(by_id[pid], "parents", ()) or ())
    return [str(by_id[pid].ja) for pid in reversed(seen)]


def _texts_for(label: Any, mode: str, templates: Sequence[str], by_id: dict[str, Any] | None = None) -> list[str]:
    ja = str(label.ja).strip()
    if not ja:
        raise ValueError(f"label {getattr(label, 'id', label)!r} has no Japanese term")
    if mode == "ja":
        return [ja]
    if mode == "ja+parents":
        path = _ancestor_path(label, by_id or {})
        return [ja, "・".join([*path, ja])] if path else [ja]
    if mode == "ja+desc":
        desc = str(getattr(label, "description_ja", "") or "").strip()
        return [f"{ja}：{desc}" if desc else ja]
    if mode == "ja+en":
        en = str(getattr(label, "en", "") or "").strip()
        return [f"{ja}（{en}）" if en else ja]
    # templates: format with every field so custom templates may also use {en} or {description_ja}
    fields = {
        "ja": ja,
        "en": getattr(label, "en", ""),
        "description_ja": getattr(label, "description_ja", ""),
        "id": getattr(label, "id", ""),
    }
    return [t.format(**fields) for t in templates]


def label_texts(
    labels: Sequence[Any], mode: str = "ja", templates: Sequence[str] | None = None
) -> list[list[str]]:
    """The text(s) for each label: a list per label, in label order.

    ``templates`` replaces :data:`JA_TEMPLATES` in ``templates`` mode (fields: ``{ja}``, ``{en}``,
    ``{description_ja}``, ``{id}``).
    """
    if mode not in MODES:
        raise ValueError(f"unknown label text mode {mode!r}; choose one of {MODES}")
    templates = tuple(templates) if templates is not None else JA_TEMPLATES
    if mode == "templates" and not templates:
        raise ValueError("templates mode needs at least one template")
    by_id = {getattr(label, "id", None): label for label in labels}
    return [_texts_for(label, mode, templates, by_id) for label in labels]


def build_label_bank(
    encoder: TextEncoder,
    labels: Sequence[Any],
    mode: str = "ja",
    cache: EmbeddingCache | str | Path | None = None,
    templates: Sequence[str] | None = None,
) -> np.ndarray:
    """Unit vector per label, float32 ``[n_labels, encoder.dim]``, rows in label order.

    Every text is embedded (all in one ``encode`` call), L2-normalised, averaged over the label's texts
    and normalised again. ``cache``: an :class:`EmbeddingCache` or its folder to reuse embeddings across
    runs; ``None`` embeds without touching the disk.
    """
    per_label = label_texts(labels, mode, templates)
    flat = [t for texts in per_label for t in texts]
    if cache is None:
        emb = np.asarray(encoder.encode(flat), dtype=np.float32)
    else:
        emb = encode_cached(encoder, flat, cache)
    if emb.shape != (len(flat), encoder.dim):
        raise ValueError(f"{encoder.name} returned shape {emb.shape}, expected {(len(flat), encoder.dim)}")
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    bank = np.zeros((len(per_label), encoder.dim), np.float32)
    start = 0
    for i, texts in enumerate(per_label):
        bank[i] = emb[start : start + len(texts)].mean(axis=0)
        start += len(texts)
    bank /= np.maximum(np.linalg.norm(bank, axis=1, keepdims=True), 1e-12)
    log.debug("label bank: %d labels, %d texts, %s, mode %s", len(per_label), len(flat), encoder.name, mode)
    return bank.astype(np.float32)
