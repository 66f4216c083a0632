"""A hospital's own data: a CSV manifest of recordings and their labels.

Columns (header row required; paths relative to the CSV's folder):

- ``path`` (required): a WFDB record (with or without ``.hea``), a ``.npy`` array ``[leads, samples]`` in mV,
  or an ECG-cart file (MFER, DICOM waveform, HL7 aECG, SCP-ECG, GE MUSE / Philips XML, EDF; recognised by
  content, gains and lead names from the file: ``edge.readers.cart_formats``).
- ``labels`` (required): separated by ``;`` or ``|`` (e.g. ``洞調律;完全右脚ブロック`` or ``SR|CRBBB``). Each is a
  catalogue id, a Japanese or English name or alias (any width, case, hiragana/katakana), a PTB-XL SCP-ECG
  statement code, a SNOMED CT concept id as in PhysioNet Challenge headers (``164889003``), a hospital wording
  of the shared vocabulary (``edge/data/vocabulary.csv``: ``1度AVB``, ``PQ延長``, ``ストレインパターン`` -> two
  labels; the same words the report parser reads), or any term that ``ecg-edge labels TERM`` finds exactly
  one label for (``left atrial enlargement`` -> LAE); a term that matches several labels is refused with
  suggestions.
- ``fs``: sampling rate in Hz, required for ``.npy``.
- ``leads``: channel names for ``.npy``, comma-separated (default: 12 standard leads, or I, II, V1-V6 for 8).
- ``patient_id``: keeps splits patient-wise.
- ``split`` (``train``/``val``/``test``) or ``fold`` (1-10): otherwise a stable fold from the patient id.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.dsp.signal import EIGHT_CHANNEL_LEADS, LEADS
from edge.interpret.catalogue import Catalogue, load_catalogue
from edge.readers.cart_formats import CartFormatError, read_cart_file

from .base import DatasetError, Reader, Record, fold_from_key

__all__ = ["ManifestReader", "SPLIT_FOLDS"]

SPLIT_FOLDS = {"train": 1, "val": 9, "valid": 9, "validation": 9, "test": 10}


class ManifestReader(Reader):
    """Records listed in a manifest CSV."""

    name = "manifest"

    def __init__(
        self,
        csv_path: str | Path,
        folds: set[int] | None = None,
        catalogue: Catalogue | None = None,
        on_error: str = "raise",
        **kwargs,
    ):
        super().__init__(on_error, **kwargs)
        self.path = Path(csv_path)
        if not self.path.is_file():
            raise DatasetError(f"manifest {self.path} not found")
        self.catalogue = catalogue or load_catalogue()
        with self.path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"path", "labels"} - set(reader.fieldnames or ())
            if missing:
                raise DatasetError(f"manifest {self.path}: missing column(s) {sorted(missing)}")
            self.rows = list(reader)
        self.folds = folds

    def __len__(self) -> int:
        return len(self.rows)

    def _fold(self, row: dict, line: int, key: str) -> int | None:
        text = (row.get("fold") or "").strip()
        if text:
            if not (text.isdigit() and 1 <= int(text) <= 10):  # fold 99 would go into no split, silently
                self.fail(key, f"bad_fold: {self.path}:{line}: fold {text[:20]!r} is not 1..10")
                return None
            return int(text)
        split = (row.get("split") or "").strip().lower()
        if split:
            if split not in SPLIT_FOLDS:
                raise DatasetError(f"{self.path}:{line}: split {split!r} not in {sorted(SPLIT_FOLDS)}")
            return SPLIT_FOLDS[split]
        return fold_from_key(row.get("patient_id") or row["path"])

    def _labels(self, key: str, text: str) -> tuple[str, ...] | None:
        ids = []
        for term in (t.strip() for t in re.split(r"[;|]", text)):
            if not term:
                continue
            try:
                ids.extend(lab.id for lab in self.catalogue.lookup(term))  # names, codes and the vocabulary
            except KeyError as exc:
                found = self.catalogue.search(term)  # what `ecg-edge labels TERM` finds
                if len(found) == 1:
                    ids.append(found[0].id)
                    continue
                self.fail(key, f"unknown_code: {exc.args[0] if exc.args else term}")
                return None
        if not ids:
            self.fail(key, "no_labels: empty labels column")
            return None
        return tuple(dict.fromkeys(ids))

    def _load(self, key: str, path: Path, row: dict) -> tuple[np.ndarray, float, tuple[str, ...]] | None:
        if path.suffix == ".npy":
            if not path.is_file():
                self.fail(key, f"missing_file: {path}")
                return None
            try:
                x = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:  # empty, truncated, not numpy, object (pickle)
                self.fail(key, f"unreadable: {path}: not a numeric .npy array ({exc or 'empty file'})")
                return None
            if x.dtype.kind not in "fiu" or x.ndim != 2 or 0 in x.shape:
                self.fail(key, f"unreadable: {path}: array of shape {x.shape} and dtype {x.dtype}, need [leads, samples]")
                return None
            x = x.astype(np.float32)
            fs_text = (row.get("fs") or "").strip()
            try:
                fs = float(fs_text)
            except ValueError:
                self.fail(key, f"bad_fs: fs {fs_text[:20]!r} is not a number (.npy records need an fs column)")
                return None
            if not (math.isfinite(fs) and 50 <= fs <= 20000):
                self.fail(key, f"bad_fs: fs {fs_text[:20]!r} is not a sampling rate of an ECG (50..20000 Hz)")
                return None
            names = row.get("leads") or ""
            leads = tuple(n.strip() for n in names.split(",")) if names.strip() else None
            if leads is None:
                leads = LEADS if x.shape[0] == 12 else EIGHT_CHANNEL_LEADS if x.shape[0] == 8 else ()
            return x, fs, leads
        base = path.with_suffix("") if path.suffix == ".hea" else path
        if path.is_file() and not Path(f"{base}.hea").is_file():  # an ECG-cart file, format by content
            try:
                rec = read_cart_file(path)
            except CartFormatError as exc:
                self.fail(key, f"unreadable: {exc}")
                return None
            return rec.x_mv, rec.fs, tuple(rec.leads)
        return self.read_wfdb(key, base, lead_counts=None)  # extra channels are dropped by lead name later

    def __iter__(self) -> Iterator[Record]:
        for line, row in enumerate(self.rows, start=2):
            path = (self.path.parent / row["path"].strip()).resolve()
            key = f"manifest:{path}"
            fold = self._fold(row, line, key)
            if fold is None or self.folds is not None and fold not in self.folds:
                continue
            labels = self._labels(key, row["labels"])
            if labels is None:
                continue
            loaded = self._load(key, path, row)
            if loaded is None:
                continue
            x, fs, leads = loaded
            if x.ndim != 2 or x.shape[0] not in (8, 12) and len(leads) != x.shape[0]:
                self.fail(key, f"wrong_leads: array of shape {x.shape}; need 12 leads or 8 (I, II, V1-V6)")
                continue
            if not np.isfinite(x).all():
                self.fail(key, "nan: non-finite samples")
                continue
            patient = (row.get("patient_id") or "").strip() or None
            given = bool((row.get("fold") or "").strip() or (row.get("split") or "").strip())
            yield Record(key, self.name, x, fs, leads, labels, patient, fold, meta={"path": str(path)},
                         fold_derived=not given)  # fmt: skip
