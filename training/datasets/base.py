"""What every dataset reader yields: a :class:`Record` with catalogue label ids, and how bad input is handled.

A reader maps its source codes (SCP-ECG, SNOMED CT, Japanese terms) to label-catalogue ids. Bad input
(missing file, wrong lead count, NaN, unknown code) raises :class:`DatasetError` naming the record, or,
when the user asked for ``on_error="skip"``, is counted in a :class:`SkipLog` that the prepare step
writes next to the cached windows: nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Record", "DatasetError", "SkipLog", "Reader", "fold_from_key", "check_on_error"]

LEAD_COUNTS = (8, 12)  # 12-lead recordings, or 8 channels (I, II, V1-V6) with the limb leads derived later

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")


class DatasetError(ValueError):
    """Input that cannot be read or labelled; the message names the record."""


@dataclass
class Record:
    """One ECG with its labels; ``signal`` is lead-first float32 in mV, or model input if ``preprocessed``."""

    key: str  # globally unique, e.g. "ptbxl:17" (the same ECG from two sources has the same key)
    source: str  # dataset name, e.g. "ptbxl", "cinc2021", "ptbxl_processed", "manifest"
    signal: np.ndarray  # [C, T]; channel names in `leads`
    fs: float  # sampling rate of `signal`, Hz
    leads: tuple[str, ...]  # channel names of `signal` (any case; derived leads filled in later)
    labels: tuple[str, ...]  # catalogue ids (without ancestors; the prepare step expands them)
    patient: str | None = None  # patient id, keeps splits patient-wise
    fold: int | None = None  # 1..10; PTB-XL strat_fold, or derived from the patient for other sources
    preprocessed: bool = False  # True when `signal` already went through the signal contract
    meta: dict = field(default_factory=dict)  # source-specific extras (codes as given, file path, ...)
    known: frozenset[str] | None = None  # labels the source states (present or absent); None = every label
    fold_derived: bool = False  # fold assigned here (no official fold): an official fold of the same ECG wins


@dataclass
class SkipLog:
    """Records a reader or the prepare step left out, with the reason, when the user asked to skip."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, key: str, reason: str) -> None:
        logger.warning("skipping %s: %s", key, reason)
        self.items.append((key, reason))

    def counts(self) -> dict[str, int]:
        return dict(Counter(reason.split(":")[0] for _, reason in self.items))

    def __len__(self) -> int:
        return len(self.items)


class Reader:
    """Base class: iterate over :class:`Record` objects; ``len()`` is the number of candidate records."""

    name = "dataset"

    def __init__(self, on_error: str = "raise", skips: SkipLog | None = None):
        self.on_error = check_on_error(on_error)
        self.skips = skips if skips is not None else SkipLog()

    def __len__(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def __iter__(self) -> Iterator[Record]:  # pragma: no cover - overridden
        raise NotImplementedError

    def read_wfdb(self, key: str, path, lead_counts: tuple[int, ...] | None = LEAD_COUNTS):
        """``(signal float32 [C, T] mV, fs, lead names)`` of a WFDB record, or None after :meth:`fail`.

        ``lead_counts=None`` accepts any channel count (leads are then picked by name downstream).
        """
        import wfdb

        if not Path(f"{path}.hea").is_file():
            self.fail(key, f"missing_file: {path}.hea not found")
            return None
        from edge.readers.records import RecordError, check_header_fs

        try:  # wfdb reads a header rate of "-500" as its default, 250 Hz: check the header itself
            check_header_fs(Path(f"{path}.hea"))
        except RecordError as exc:
            self.fail(key, f"bad_fs: {exc}")
            return None
        try:
            rec = wfdb.rdrecord(str(path))
        except Exception as exc:  # wfdb raises many types for broken files
            self.fail(key, f"unreadable: {path}: {exc}")
            return None
        signal = np.asarray(rec.p_signal, dtype=np.float32).T
        if lead_counts is not None and signal.shape[0] not in lead_counts:
            self.fail(key, f"wrong_leads: {signal.shape[0]} leads in {path}, expected {' or '.join(map(str, lead_counts))}")
            return None
        if not np.isfinite(signal).all():
            self.fail(key, f"nan: non-finite samples in {path}")
            return None
        return signal, float(rec.fs), tuple(rec.sig_name)

    def fail(self, key: str, reason: str) -> None:
        """Raise, or count a skip, according to ``on_error``."""
        if self.on_error == "raise":
            raise DatasetError(f"{key}: {reason}")
        self.skips.add(key, reason)


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    return on_error


def fold_from_key(key: str, n_folds: int = 10) -> int:
    """A stable fold 1..n_folds from a patient or record id, for sources without official folds."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") % n_folds + 1
