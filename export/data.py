"""The real windows an export needs: calibration, validation (thresholds) and test (gate, metrics).

Every window comes from :func:`training.prepare.prepare`, i.e. it went through the signal contract
(``edge.dsp.signal.preprocess``) exactly as in training and on the device. By default the datasets are the
checkpoint's own training sources (``ckpt["data"]["sources"]``, absolute paths), and the run's prepared
cache is reused when its fingerprint is the checkpoint's, so nothing is read twice.

Folds follow the training convention (PTB-XL ``strat_fold``): calibration on the training folds, decision
thresholds on the validation folds (9), the int8 gate and the reported metrics on the test folds (10).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.interpret.catalogue import Catalogue
from training.datasets import DatasetError, parse_source
from training.prepare import PreparedDataset, Source, default_cache_dir, prepare

from .onnx_export import ExportError

__all__ = ["ExportWindows", "checkpoint_sources", "load_export_windows", "training_cache"]

logger = logging.getLogger(__name__)


@dataclass
class ExportWindows:
    """Model inputs (float32 ``[N, 12, T]``) and multi-hot targets (``[N, 98]``) per role."""

    calib: np.ndarray  # calibration windows from the calibration folds
    val_x: np.ndarray  # validation windows (thresholds)
    val_y: np.ndarray
    test_x: np.ndarray  # test windows (gate and metrics)
    test_y: np.ndarray
    sources: list[dict]  # the datasets, as Source.describe() gives them
    fingerprint: str  # the prepared cache's fingerprint
    folds: dict[str, list[int]]  # {"calibration": [...], "validation": [...], "test": [...]}
    val_keys: list[str] = field(default_factory=list)  # record key of each validation window
    test_keys: list[str] = field(default_factory=list)  # record key of each test window
    # positive windows per catalogue label in the checkpoint's training folds; None unless the export
    # data is exactly the checkpoint's training data (same fingerprint)
    train_positives: np.ndarray | None = None
    # known-label masks (uint8, like val_y / test_y): 1 where the window's sources state the label
    val_known: np.ndarray | None = None
    test_known: np.ndarray | None = None
    # contract-7 measurements of each raw window (float32 [N, len(measurement_keys)], NaN = not measured)
    val_measurements: np.ndarray | None = None
    test_measurements: np.ndarray | None = None
    measurement_keys: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        """What the manifest records about the data the export measured on."""
        return {"sources": self.sources, "fingerprint": self.fingerprint, "folds": self.folds,
                "windows": {"calibration": len(self.calib), "validation": len(self.val_x), "test": len(self.test_x)}}


def checkpoint_sources(ckpt: dict) -> list[Source]:
    """The checkpoint's training datasets as :class:`Source` objects (same fingerprint as in training)."""
    out = []
    for s in (ckpt.get("data") or {}).get("sources", []):
        options = tuple(sorted((s.get("options") or {}).items()))
        out.append(Source(s["kind"], Path(s["path"]), options))
    return out


def _source_from_text(text: str) -> Source:
    kind, path = parse_source(text)
    # PTB-XL as in training: the 100 Hz files (ecg-train --ptbxl-rate default).
    return Source(kind, path, (("rate", 100),) if kind == "ptbxl" else ())


def training_cache(ckpt: dict, checkpoint: Path) -> PreparedDataset | None:
    """The run's own prepared cache, opened read only, when it still holds exactly the checkpoint's data."""
    cfg = ckpt.get("train_config") or {}
    data = ckpt.get("data") or {}
    candidates = [Path(data["cache"])] if data.get("cache") else []  # where the run prepared its windows
    candidates += [Path(cfg["cache_dir"])] if cfg.get("cache_dir") else []
    candidates += [checkpoint.parent.parent / "cache"]
    for folder in candidates:
        meta = folder / "meta.json"
        try:
            if meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("fingerprint") == \
                    (ckpt.get("data") or {}).get("fingerprint"):
                logger.info("reusing the training run's prepared windows in %s (read only)", folder)
                return PreparedDataset(folder)
        except (OSError, json.JSONDecodeError, DatasetError):
            continue
    logger.warning("the training run's prepared windows are not in %s any more (moved, deleted or prepared again "
                   "for other data); preparing the data again", ", ".join(str(c) for c in dict.fromkeys(candidates)))
    return None


def _sample(idx: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    if n is None or len(idx) <= n:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))


def load_export_windows(
    ckpt: dict,
    checkpoint: str | Path,
    catalogue: Catalogue,
    data: Sequence[str] = (),
    cache: str | Path | None = None,
    calib_folds: Sequence[int] | None = None,
    val_folds: Sequence[int] = (9,),
    test_folds: Sequence[int] = (10,),
    calib_windows: int = 256,
    max_eval_windows: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> ExportWindows:
    """Prepare (or reuse) the windows of ``data`` (default: the checkpoint's sources) and split them by fold."""
    checkpoint = Path(checkpoint)
    ds = None
    if data:
        try:
            sources = [_source_from_text(s) for s in data]
        except DatasetError as exc:
            raise ExportError(f"--data: {exc}") from None
    else:
        sources = checkpoint_sources(ckpt)
        ds = training_cache(ckpt, checkpoint) if cache is None else None
        missing = [str(s.path) for s in sources if not Path(s.path).exists()]
        if ds is None and (not sources or missing):
            where = f" (missing: {', '.join(missing)})" if missing else ""
            raise ExportError("the checkpoint's training data is not available here" + where +
                              "; give the datasets with --data KIND=PATH (e.g. --data ptbxl=/data/ptbxl)")
    if ds is None:
        folder = Path(cache) if cache is not None else default_cache_dir(sources, ckpt["signal_config"])
        try:
            ds = prepare(sources, folder, ckpt["signal_config"], catalogue, progress=progress)
        except DatasetError as exc:
            raise ExportError(f"cannot read the export data: {exc}") from None
    if ds.label_ids != list(ckpt["label_ids"]):
        raise ExportError(f"{ds.folder} was prepared with another label catalogue than the checkpoint's")
    calib_folds = list(calib_folds or (ckpt.get("data") or {}).get("train_folds") or range(1, 9))
    roles = {"calibration": calib_folds, "validation": list(val_folds), "test": list(test_folds)}
    flags = {"calibration": "--calib-folds", "validation": "--val-folds", "test": "--test-folds"}
    idx = {}
    for role, folds in roles.items():
        idx[role] = ds.indices(folds)
        if len(idx[role]) == 0:
            raise ExportError(f"no labelled windows in the {role} folds {folds} of the export data "
                              f"({', '.join(s.kind for s in sources)}); choose others with {flags[role]}")
    calib = _sample(idx["calibration"], calib_windows, seed)
    val, test = _sample(idx["validation"], max_eval_windows, seed + 1), _sample(idx["test"], max_eval_windows, seed + 2)

    def load(i: np.ndarray) -> np.ndarray:
        return np.asarray(ds.windows[i], dtype=np.float32)

    logger.info("export windows: %d calibration (folds %s), %d validation (folds %s), %d test (folds %s)",
                len(calib), calib_folds, len(val), list(val_folds), len(test), list(test_folds))
    train_positives = None
    if ds.meta.get("fingerprint") == (ckpt.get("data") or {}).get("fingerprint"):
        train_idx = ds.indices(list((ckpt.get("data") or {}).get("train_folds") or range(1, 9)))
        train_positives = (np.asarray(ds.labels[train_idx]) > 0).sum(axis=0)
    return ExportWindows(load(calib), load(val), ds.labels[val].astype(np.float32), load(test),
                         ds.labels[test].astype(np.float32), [s.describe() for s in sources],
                         ds.meta["fingerprint"], roles, [ds.keys[i] for i in val], [ds.keys[i] for i in test],
                         train_positives, val_known=np.asarray(ds.known[val]), test_known=np.asarray(ds.known[test]),
                         val_measurements=np.asarray(ds.measurements[val]),
                         test_measurements=np.asarray(ds.measurements[test]),
                         measurement_keys=list(ds.measurement_keys))
