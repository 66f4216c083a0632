"""The bundle's label set: every label's text embedding, computed once so the device never runs a text model.

Rows are the catalogue's 98 labels in catalogue order (the checkpoint's ``label_ids``), then any extra
labels a hospital adds at export time (``--extra-labels``, CSV or JSON with ``id, ja, en`` and optional
``category, parents, description_ja, aliases``). Catalogue rows come from the checkpoint's stored text
input through its trained text tower; extra rows get their text input from
:func:`training.text_side.text_input_for`, the same recipe training used, after checking that the text
encoder available now reproduces the checkpoint's stored input (a different encoder version would put
the new labels in another space). Labels held out of training and extra labels are marked ``new``: they
are scored zero-shot.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge.catalogue import Catalogue, CatalogueError, Label
from training.text_side import text_input_for

from .onnx_export import ExportError

__all__ = ["LabelSet", "read_extra_labels", "build_label_set", "check_text_encoder"]

logger = logging.getLogger(__name__)

_LIST_FIELDS = ("parents", "scp", "snomed", "aliases")


@dataclass
class LabelSet:
    """Label entries in row order and their unit text embeddings ``float32[L, D]``."""

    entries: list[dict]  # {id, ja, en, category, parents, description_ja, new}; thresholds are added later
    embeddings: np.ndarray
    catalogue: Catalogue  # the checkpoint's catalogue extended by the extra labels

    @property
    def ids(self) -> list[str]:
        return [e["id"] for e in self.entries]

    @property
    def new_ids(self) -> list[str]:
        return [e["id"] for e in self.entries if e["new"]]


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.replace("|", ";").split(";") if v.strip()]


def read_extra_labels(path: str | Path) -> list[Label]:
    """New labels from a CSV (header row; list fields separated by ``;`` or ``|``) or a JSON list."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"extra labels file {path} not found")
    try:
        text = path.read_text(encoding="utf-8-sig")  # spreadsheet software writes a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read extra labels {path}: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExportError(f"{path}: not valid JSON ({exc})") from None
        rows = doc.get("labels") if isinstance(doc, dict) else doc
        if not isinstance(rows, list):
            raise ExportError(f"{path}: expected a list of labels or an object with a 'labels' list")
    else:
        rows = []
        for row in csv.DictReader(text.splitlines()):
            item = {k.strip(): (v or "").strip() for k, v in row.items() if k and (v or "").strip()}
            for key in _LIST_FIELDS:
                if key in item:
                    item[key] = _split_list(item[key])
            rows.append(item)
    if not rows:
        raise ExportError(f"{path}: no labels in the file")
    try:
        return [Label.from_dict(r) for r in rows]
    except (CatalogueError, TypeError) as exc:
        raise ExportError(f"{path}: {exc}") from None


def check_text_encoder(ckpt: dict, catalogue: Catalogue, min_cosine: float = 0.999) -> float:
    """Recompute the catalogue's text input now and compare it with the checkpoint's; returns the worst cosine.

    New labels are only comparable with the trained ones if the text encoder embeds texts as it did in
    training; raise :class:`ExportError` when it does not (another encoder version, another text recipe).
    """
    try:
        now = text_input_for(ckpt["text"], catalogue.labels)
    except (ImportError, ModuleNotFoundError) as exc:
        raise ExportError(f"extra labels need the checkpoint's text encoder "
                          f"({ckpt['text'].get('encoder')!r}) at export time: {exc}") from None
    stored = ckpt["text_input"]
    if now.shape != stored.shape:
        raise ExportError(f"the text encoder now gives input of shape {tuple(now.shape)}, the checkpoint "
                          f"stored {tuple(stored.shape)}")
    if ckpt["text"]["kind"] == "byte":
        worst = 1.0 if torch.equal(now, stored) else 0.0
    else:
        a, b = now.double(), stored.double()
        worst = float((torch.sum(a * b, 1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-12)).min())
    if worst < min_cosine:
        raise ExportError(f"the text encoder available now does not reproduce the checkpoint's label texts "
                          f"(worst cosine {worst:.4f} < {min_cosine}); new labels would be embedded in another "
                          f"space. Install the encoder version used in training ({ckpt['text'].get('encoder_spec')})")
    return worst


def _entry(label: Label, new: bool) -> dict:
    return {"id": label.id, "ja": label.ja, "en": label.en, "category": label.category,
            "parents": list(label.parents), "description_ja": label.description_ja, "new": bool(new)}


@torch.no_grad()
def build_label_set(model: torch.nn.Module, ckpt: dict, catalogue: Catalogue, extra: list[Label] = ()) -> LabelSet:
    """The label rows (catalogue, then ``extra``) and their unit-norm embeddings through the text tower."""
    if list(catalogue.ids) != list(ckpt["label_ids"]):
        raise ExportError("the checkpoint was trained with another label catalogue than the installed one "
                          f"({len(ckpt['label_ids'])} labels, first {ckpt['label_ids'][:3]})")
    try:
        extended = catalogue.extended(extra) if extra else catalogue
    except CatalogueError as exc:
        raise ExportError(f"extra labels: {exc}") from None
    holdout = set(ckpt.get("holdout_label_ids") or [])
    emb = model.encode_text(ckpt["text_input"]).float().numpy()
    entries = [_entry(lb, lb.id in holdout) for lb in catalogue.labels]
    if extra:
        check_text_encoder(ckpt, catalogue)
        extra_emb = model.encode_text(text_input_for(ckpt["text"], list(extra))).float().numpy()
        emb = np.concatenate([emb, extra_emb])
        entries += [_entry(lb, True) for lb in extra]
        logger.info("added %d new label(s): %s", len(extra), ", ".join(f"{lb.id} {lb.ja}" for lb in extra))
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-4):
        raise ExportError(f"label embeddings are not unit vectors (norms {norms.min():.4f}..{norms.max():.4f})")
    return LabelSet(entries, emb, extended)
