"""The bundle's label set: every label's text embedding, computed once so the device never runs a text model.

Rows are the catalogue's 98 labels in catalogue order (the checkpoint's ``label_ids``), then any extra
labels a hospital adds at export time (``--extra-labels``, CSV or JSON with ``id, ja, en`` and optional
``category, parents, description_ja, aliases``). Catalogue rows come from the checkpoint's stored text
input through its trained text tower; extra rows get their text input from
:func:`training.text_side.text_input_for`, the same recipe training used, after checking that the text
encoder available now reproduces the checkpoint's stored input (a different encoder version would put
the new labels in another space).

Labels never trained carry ``zero_shot: true`` (DESIGN.md contract 3, "Labels never trained"): extra
labels, labels held out of training, and catalogue labels without a single positive window in the
training folds (when the export reads the checkpoint's own training data, :meth:`LabelSet.mark_untrained`).
Their ``zero_shot_reason`` says which. ``new`` keeps its meaning: added at export or held out.

An extra label's ``description_ja`` becomes part of its text only when the checkpoint's text mode uses
descriptions (``ja+desc``); otherwise it is shown by ``ecg-edge labels`` but does not change the
embedding, and the export says so in a warning (as it does for a ``ja+desc`` label without one).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edge.interpret.catalogue import Catalogue, CatalogueError, Label
from training.text_side import text_input_for

from .onnx_export import ExportError

__all__ = ["LabelSet", "read_extra_labels", "build_label_set", "check_text_encoder", "description_warnings"]

logger = logging.getLogger(__name__)

_LIST_FIELDS = ("parents", "scp", "snomed", "aliases")


@dataclass
class LabelSet:
    """Label entries in row order and their unit text embeddings ``float32[L, D]``."""

    entries: list[dict]  # {id, ja, en, category, parents, description_ja, new, zero_shot[, zero_shot_reason]}
    embeddings: np.ndarray
    catalogue: Catalogue  # the checkpoint's catalogue extended by the extra labels
    warnings: list[str] = field(default_factory=list)  # things the user should know about the label texts

    @property
    def ids(self) -> list[str]:
        return [e["id"] for e in self.entries]

    @property
    def new_ids(self) -> list[str]:
        return [e["id"] for e in self.entries if e["new"]]

    @property
    def zero_shot_ids(self) -> list[str]:
        return [e["id"] for e in self.entries if e["zero_shot"]]

    def mark_untrained(self, train_positives: np.ndarray | None) -> list[str]:
        """Mark catalogue labels with no positive training window as zero-shot; returns their ids.

        ``train_positives``: positive windows per catalogue label in the checkpoint's training folds
        (``None`` when the export data is not the checkpoint's own, and nothing can be said).
        """
        if train_positives is None:
            return []
        marked = []
        for entry, count in zip(self.entries, np.asarray(train_positives), strict=False):
            if count == 0 and not entry["zero_shot"]:
                entry.update(zero_shot=True, zero_shot_reason="no training example")
                marked.append(entry["id"])
        if marked:
            logger.info("%d label(s) had no positive training window and are marked zero-shot: %s", len(marked),
                        ", ".join(marked))
        return marked


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


def _text_input(ckpt: dict, labels: list) -> torch.Tensor:
    try:
        return text_input_for(ckpt["text"], labels)
    except (ImportError, ModuleNotFoundError) as exc:
        raise ExportError(f"extra labels need the checkpoint's text encoder "
                          f"({ckpt['text'].get('encoder')!r}) at export time: {exc}") from None


def check_text_encoder(ckpt: dict, catalogue: Catalogue, min_cosine: float = 0.999,
                       now: torch.Tensor | None = None) -> float:
    """Recompute the catalogue's text input now and compare it with the checkpoint's; returns the worst cosine.

    New labels are only comparable with the trained ones if the text encoder embeds texts as it did in
    training; raise :class:`ExportError` when it does not (another encoder version, another text recipe).
    """
    if now is None:  # the catalogue's text input as the encoder installed here computes it
        now = _text_input(ckpt, list(catalogue.labels))
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


def _entry(label: Label, reason: str | None) -> dict:
    """A bundle label row; ``reason`` why it was never trained (None: trained)."""
    entry = {"id": label.id, "ja": label.ja, "en": label.en, "category": label.category,
             "parents": list(label.parents), "description_ja": label.description_ja, "new": reason is not None,
             "zero_shot": reason is not None}
    if reason:
        entry["zero_shot_reason"] = reason
    return entry


def description_warnings(mode: str, extra: list[Label]) -> list[str]:
    """Say when an extra label's description is ignored (text mode without descriptions) or missing."""
    if mode == "ja+desc":
        bare = [lb.id for lb in extra if not (lb.description_ja or "").strip()]
        return [f"extra label(s) {', '.join(bare)} have no description_ja: the text mode ja+desc embeds the term "
                "with its description, so their text is the term alone"] if bare else []
    described = [lb.id for lb in extra if (lb.description_ja or "").strip()]
    return [f"description_ja of extra label(s) {', '.join(described)} is not used for their text embedding: the "
            f"checkpoint's text mode is {mode!r} (only ja+desc uses descriptions); it is kept for ecg-edge labels"] \
        if described else []


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
    entries = [_entry(lb, "held out of training" if lb.id in holdout else None) for lb in catalogue.labels]
    warnings = []
    if extra:
        # Text input of the extended catalogue, so that modes that read the hierarchy (ja+parents) see
        # an extra label's catalogue parents; the catalogue's rows check the encoder, the rest are the extras'.
        text_input = _text_input(ckpt, list(extended.labels))
        n = len(catalogue.labels)
        check_text_encoder(ckpt, catalogue, now=text_input[:n])
        extra_emb = model.encode_text(text_input[n:]).float().numpy()
        emb = np.concatenate([emb, extra_emb])
        entries += [_entry(lb, "added at export (--extra-labels)") for lb in extra]
        warnings = description_warnings(str(ckpt["text"].get("mode", "ja")), list(extra))
        for w in warnings:
            logger.warning(w)
        logger.info("added %d new label(s): %s", len(extra), ", ".join(f"{lb.id} {lb.ja}" for lb in extra))
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-4):
        raise ExportError(f"label embeddings are not unit vectors (norms {norms.min():.4f}..{norms.max():.4f})")
    return LabelSet(entries, emb, extended, warnings)
