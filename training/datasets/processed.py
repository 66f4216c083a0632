"""The preprocessed PTB-XL array set (``signals_100hz_f16.npz`` + ``index.csv``).

A third party band-pass filtered these records 0.5-40 Hz (zero-phase), z-scored each lead and decimated
to 100 Hz, so absolute amplitude is lost. The arrays are therefore only usable with a signal contract
that produces the same thing (100 Hz, 10 s, 0.5-40 Hz band, per-lead z-score): the reader checks that
and refuses otherwise.

Labels: ``scp_codes`` of ``index.csv`` where present, and the PhysioNet/CinC Challenge 2020 labels of
``challenge2020_labels.csv`` (SNOMED CT, only the Challenge's 27 scored classes) merged in. The 1,308
records labelled by the Challenge alone state only those classes (every other label is unknown for
them) and have no ``strat_fold`` or patient: they get a stable fold 1-8 (training folds only, never
validation or test). Records without any label are left out unless asked for (quantization
calibration, self-supervised pretraining).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.dsp.signal import LEADS, SignalConfig
from edge.interpret.catalogue import Catalogue, load_catalogue

from .base import DatasetError, Reader, Record, fold_from_key
from .known import SCORED_2020, known_labels, scp_vocabulary, snomed_vocabulary
from .ptbxl import parse_scp_codes

CHALLENGE_LABELS = "challenge2020_labels.csv"
# The Challenge derived its axis classes for PTB-XL from heart_axis: 39732003 (left axis deviation) stands for
# PTB-XL's "LAD" (a leftward but normal axis, 0..-30 deg, see training.datasets.ptbxl.HEART_AXIS) as well as
# "ALAD" (checked on the 34 records also in ptbxl/), and a missing class for an empty heart_axis too. So on these
# records the Challenge's LAD says nothing, and neither does the absence of RAD. A stated RAD alone cannot be
# kept either: RAD would then be known only where it is present, and a label known only when positive teaches
# the model it is always there (measured: with those 24 RAD positives kept, 右軸偏位 and 軸偏位 were in the top 5
# of 15 and 22 of 33 left-out Georgia records, true in 0 and 2). Both axis classes are dropped: unknown here.
UNRELIABLE_AXIS_CODES = {"39732003", "47665007"}
AXIS_UNSTATED = ("LAD", "RAD")
TRAIN_ONLY_FOLDS = 8  # records without strat_fold go to a stable fold 1..8 (PTB-XL's training folds)

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
        challenge_labels: bool = True,
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
        self.challenge: dict[int, list[str]] = {}
        extra = self.root / CHALLENGE_LABELS
        if challenge_labels and extra.is_file():
            with extra.open(newline="", encoding="utf-8") as f:
                for r in csv.DictReader(f):
                    codes = [c.strip() for c in (r.get("snomed_codes") or "").split(";")
                             if c.strip() and c.strip() not in UNRELIABLE_AXIS_CODES]
                    if codes:
                        self.challenge[int(r["ecg_id"])] = codes
        self.scp_vocabulary = scp_vocabulary(self.catalogue)
        self.scored_vocabulary = snomed_vocabulary(self.catalogue, SCORED_2020)
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
            labelled = bool(row["scp_codes"].strip()) or int(ecg_id) in self.challenge
            if not labelled and not include_unlabelled:
                continue
            fold = int(float(row["strat_fold"])) if row["strat_fold"].strip() else None
            if fold is None and int(ecg_id) in self.challenge:
                fold = fold_from_key(f"ptbxl:{int(ecg_id)}", TRAIN_ONLY_FOLDS)
            if folds is not None and fold not in folds:
                continue
            self.items.append((i, row, fold))

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Record]:
        for i, row, fold in self.items:
            key = f"ptbxl:{int(row['ecg_id'])}"
            codes = parse_scp_codes(row["scp_codes"])
            snomed = self.challenge.get(int(row["ecg_id"]), [])
            labels, stated = [], set()
            if codes:
                stated |= self.scp_vocabulary
            if snomed:
                stated |= self.scored_vocabulary - set(AXIS_UNSTATED)
            for code in snomed:
                label = self.catalogue.from_snomed(code)
                if label is not None:  # every scored class has a catalogue label
                    labels.append(label.id)
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
                    meta={"scp_codes": codes, "snomed": snomed},
                    known=known_labels(self.catalogue, stated, labels) if labels else frozenset(),
                    fold_derived=not row["strat_fold"].strip(),
                )
