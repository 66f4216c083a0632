"""Which label catalogue a training run uses, and reading it back from a checkpoint.

``ecg-train --catalogue FILE`` trains on a hospital's own catalogue. FILE is a JSON catalogue in the format
of ``edge/data/labels.json`` (an object with a ``labels`` list, or the bare list; each label needs ``id``,
``ja`` and ``en`` and may have ``category``, ``parents``, ``scp``, ``snomed``, ``aliases``,
``description_ja``), either

- a whole catalogue (any labels, any order), or
- ``{"extends": "default", "labels": [...]}``: the shipped 98 labels followed by the hospital's own (their
  parents may be shipped labels, e.g. a ``"parents": ["RBBB"]``).

Every checkpoint carries its catalogue (``ckpt["catalogue"]``), so ``ecg-eval`` and ``ecg-export`` rebuild the
same labels without the file, and the bundle's ``labels.json`` names the hospital's labels.
"""

from __future__ import annotations

import json
from pathlib import Path

from edge.interpret.catalogue import Catalogue, CatalogueError, Label, load_catalogue

__all__ = ["catalogue_of_checkpoint", "load_training_catalogue"]


def load_training_catalogue(path: str | Path | None = None) -> Catalogue:
    """The shipped catalogue (``None``), a whole catalogue file, or the shipped one extended by a file."""
    if path is None:
        return load_catalogue()
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(f"cannot read label catalogue {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(doc, dict) and "extends" in doc:
        if doc["extends"] != "default":
            raise CatalogueError(f"{path}: 'extends' must be \"default\" (the shipped catalogue)")
        labels = doc.get("labels")
        if not isinstance(labels, list) or not labels:
            raise CatalogueError(f"{path}: expected a non-empty 'labels' list next to 'extends'")
        try:
            return load_catalogue().extended(labels)
        except (CatalogueError, TypeError) as exc:
            raise CatalogueError(f"{path}: {exc}") from None
    return load_catalogue(path)


def catalogue_of_checkpoint(ckpt: dict) -> Catalogue:
    """The catalogue a checkpoint was trained with (older checkpoints: the shipped one, if its ids match)."""
    stored = ckpt.get("catalogue")
    if stored:
        catalogue = Catalogue([Label.from_dict(d) for d in stored], source="checkpoint")
    else:
        catalogue = load_catalogue()
    if list(catalogue.ids) != list(ckpt["label_ids"]):
        raise ValueError("the checkpoint was trained with another label catalogue and does not carry it")
    return catalogue
