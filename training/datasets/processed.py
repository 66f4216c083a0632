"""The preprocessed PTB-XL array set (``signals_100hz_f16.npz`` + ``index.csv``).

A third party band-pass filtered these records 0.5-40 Hz (zero-phase), z-scored each lead and decimated
to 100 Hz, so absolute amplitude is lost. The arrays are therefore only usable with a signal contract
that produces the same thing (100 Hz, 10 s, 0.5-40 Hz band, per-lead z-score): the reader checks that
and refuses otherwise. Records without ``scp_codes`` are unlabelled; they are left out unless asked for
(quantization calibration, self-supervised pretraining).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.catalogue import Catalogue, load_catalogue
from edge.signal import LEADS, SignalConfig

from .base import DatasetError, Reader, Record
from .ptbxl import parse_scp_codes

__all__ = ["ProcessedPTBXLReader", "check_compatible"]


def check_compatible(config: SignalConfig) -> None:
    """Raise :class:`DatasetError` unless ``config`` reproduces how the arrays were made."""
    ok = (
        abs(config.fs - 100.0) < 1e-9
        and abs(config.window_s - 10.0) < 1e-9
        and tuple(config.band_hz) == (0.5, 40.0)
        and config.normalization == "lead_zscore"
    )
    if not ok:
        raise DatasetError(
            "ptbxl_processed holds 100 Hz, 10 s, 0.5-40 Hz, per-lead z-scored arrays; the signal contract "
            f"{config.to_dict()} differs, so these records cannot be used with it"
        )


class ProcessedPTBXLReader(Reader):
    """Rows of ``index.csv`` with their arrays; ``signal`` is already model input (``preprocessed=True``)."""

    name = "ptbxl_processed"

    def __init__(
        self,
        root: str | Path,
        folds: set[int] | None = None,
        include_unlabelled: bool = False,
        catalogue: Catalogue | None = None,
        on_error: str = "raise",
        **kwargs,
    ):
        super().__init__(on_error, **kwargs)
        self.root = Path(root)
        npz, index = self.root / "signals_100hz_f16.npz", self.root / "index.csv"
        for path in (npz, index):
            if not path.is_file():
                raise DatasetError(f"{self.root}: {path.name} not found")
        self.catalogue = catalogue or load_catalogue()
        with index.open(newline="", encoding="utf-8") as f:
            rows = {int(r["ecg_id"]): r for r in csv.DictReader(f)}
        with np.load(npz) as data:  # no allow_pickle: plain arrays only
            self.x = data["x"]
            self.ecg_id = data["ecg_id"].astype(np.int64)
        if self.x.ndim != 3 or self.x.shape[2] != 12:
            raise DatasetError(f"{npz}: expected x of shape (N, T, 12), got {self.x.shape}")
        self.items = []
        for i, ecg_id in enumerate(self.ecg_id):
            row = rows.get(int(ecg_id))
            if row is None:
                raise DatasetError(f"{npz}: ecg_id {ecg_id} has no row in index.csv")
            labelled = bool(row["scp_codes"].strip())
            if not labelled and not include_unlabelled:
                continue
            fold = int(float(row["strat_fold"])) if row["strat_fold"].strip() else None
            if folds is not None and fold not in folds:
                continue
            self.items.append((i, row, fold))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Record]:
        for i, row, fold in self.items:
            key = f"ptbxl:{int(row['ecg_id'])}"
            codes = parse_scp_codes(row["scp_codes"])
            labels = []
            for code in codes:
                label = self.catalogue.from_scp(code)
                if label is None:
                    self.fail(key, f"unknown_code: SCP code {code!r} has no catalogue label")
                    break
                labels.append(label.id)
            else:
                signal = self.x[i].T.astype(np.float32)
                if not np.isfinite(signal).all():
                    self.fail(key, "nan: non-finite samples")
                    continue
                patient = row.get("patient_id", "").strip()
                yield Record(
                    key=key,
                    source=self.name,
                    signal=signal,
                    fs=100.0,
                    leads=LEADS,
                    labels=tuple(dict.fromkeys(labels)),
                    patient=f"ptbxl:{int(float(patient))}" if patient else None,
                    fold=fold,
                    preprocessed=True,
                    meta={"scp_codes": codes},
                )
