"""PTB-XL in its official PhysioNet layout (Wagner et al. 2020, Scientific Data 7:154).

``ptbxl_database.csv`` lists the records with ``scp_codes`` (a Python-dict literal of SCP-ECG statement ->
likelihood; a likelihood of 0 still means the statement was made), ``strat_fold`` (patient-wise folds:
1-8 train, 9 validation, 10 test) and the WFDB file names at 100 Hz and 500 Hz. Works unchanged on the
full 21,799-record download.
"""

from __future__ import annotations

import ast
import csv
from collections.abc import Iterator
from pathlib import Path

from edge.interpret.catalogue import Catalogue, load_catalogue

from .base import DatasetError, Reader, Record
from .known import AXIS_LABELS, known_labels, scp_vocabulary

__all__ = ["PTBXLReader", "parse_scp_codes", "HEART_AXIS"]

# ``heart_axis`` column -> axis-deviation label stated present (LAD/RAD) or None for "neither".
# PTB-XL grades the axis: measured with edge.dsp.measure on its records, "LAD" lies between about 0 and -30 deg
# (median -13, n=27) and "ALAD" (abnormal) below -30 (median -38, n=10); 左軸偏位 is < -30 deg, so only ALAD
# states it. "RAD" (median 107) and "ARAD" are > 90 deg. LAD, AXR and MID state neither deviation.
# AXL (not in this subset), SAG (sagittal) and empty cells state nothing: LAD and RAD stay unknown for the record.
HEART_AXIS = {"ALAD": "LAD", "RAD": "RAD", "ARAD": "RAD", "MID": None, "LAD": None, "AXR": None}


def parse_scp_codes(text: str) -> dict[str, float]:
    """Parse the ``scp_codes`` column safely (``ast.literal_eval``, never ``eval``)."""
    if not text or not text.strip():
        return {}
    value = ast.literal_eval(text)
    if not isinstance(value, dict):
        raise ValueError(f"scp_codes is not a dict: {text!r}")
    return {str(k): float(v) for k, v in value.items()}


class PTBXLReader(Reader):
    """Records of a PTB-XL folder; ``rate`` 100 or 500 picks ``records100/`` or ``records500/``."""

    name = "ptbxl"

    def __init__(
        self,
        root: str | Path,
        rate: int = 100,
        folds: set[int] | None = None,
        catalogue: Catalogue | None = None,
        on_error: str = "raise",
        heart_axis: bool = True,
        **kwargs,
    ):
        super().__init__(on_error, **kwargs)
        self.root = Path(root)
        self.heart_axis = heart_axis
        if rate not in (100, 500):
            raise DatasetError(f"PTB-XL rate must be 100 or 500, got {rate}")
        self.rate = rate
        self.catalogue = catalogue or load_catalogue()
        db = self.root / "ptbxl_database.csv"
        if not db.is_file():
            raise DatasetError(f"{self.root}: not a PTB-XL folder (no ptbxl_database.csv)")
        with db.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if folds is not None:
            rows = [r for r in rows if int(float(r["strat_fold"])) in folds]
        self.rows = rows
        self.vocabulary = scp_vocabulary(self.catalogue)

    def __len__(self) -> int:
        return len(self.rows)

    def labels_of(self, key: str, codes: dict[str, float]) -> tuple[str, ...] | None:
        ids = []
        for code in codes:
            label = self.catalogue.from_scp(code)
            if label is None:
                self.fail(key, f"unknown_code: SCP code {code!r} has no catalogue label")
                return None
            ids.append(label.id)
        return tuple(dict.fromkeys(ids))

    def __iter__(self) -> Iterator[Record]:
        column = "filename_lr" if self.rate == 100 else "filename_hr"
        for row in self.rows:
            key = f"ptbxl:{int(float(row['ecg_id']))}"
            try:
                codes = parse_scp_codes(row["scp_codes"])
            except (ValueError, SyntaxError) as exc:
                self.fail(key, f"bad_labels: cannot parse scp_codes ({exc})")
                continue
            labels = self.labels_of(key, codes)
            if labels is None:
                continue
            if not labels:
                self.fail(key, "no_labels: record has no SCP statements")
                continue
            stated = set(self.vocabulary)
            axis = (row.get("heart_axis") or "").strip().upper() if self.heart_axis else ""
            if axis in HEART_AXIS:
                stated.update(a for a in AXIS_LABELS if a in self.catalogue)
                if HEART_AXIS[axis] is not None and HEART_AXIS[axis] in self.catalogue:
                    labels = (*labels, HEART_AXIS[axis])
            path = self.root / row[column]
            loaded = self.read_wfdb(key, path, lead_counts=(12,))
            if loaded is None:
                continue
            signal, fs, leads = loaded
            patient = row.get("patient_id") or None
            yield Record(
                key=key,
                source=self.name,
                signal=signal,
                fs=fs,
                leads=leads,
                labels=labels,
                patient=f"ptbxl:{int(float(patient))}" if patient else None,
                fold=int(float(row["strat_fold"])),
                meta={"scp_codes": codes, "path": str(path), "heart_axis": axis or None},
                known=known_labels(self.catalogue, stated, labels),
            )
