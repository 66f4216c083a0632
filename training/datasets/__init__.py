"""Dataset readers: each yields :class:`Record` objects labelled with catalogue ids.

``open_dataset("ptbxl", path)`` and friends; on the command line a source is written ``KIND=PATH``
(``ptbxl=../shared/data/ptbxl``, ``cinc2021=...``, ``challenge2020=...``, ``ptbxl_processed=...``,
``manifest=my.csv``). Each record carries the labels its source can state (``Record.known``, see
:mod:`.known`); the rest are unknown for it.
"""

from __future__ import annotations

from pathlib import Path

from .base import DatasetError, Reader, Record, SkipLog, fold_from_key
from .cinc import Challenge2020Reader, CinC2021Reader
from .manifest import ManifestReader
from .processed import ProcessedPTBXLReader
from .ptbxl import PTBXLReader

__all__ = [
    "READERS",
    "DatasetError",
    "Reader",
    "Record",
    "SkipLog",
    "fold_from_key",
    "open_dataset",
    "parse_source",
    "PTBXLReader",
    "CinC2021Reader",
    "Challenge2020Reader",
    "ProcessedPTBXLReader",
    "ManifestReader",
]

READERS: dict[str, type[Reader]] = {
    "ptbxl": PTBXLReader,
    "cinc2021": CinC2021Reader,
    "challenge2020": Challenge2020Reader,
    "ptbxl_processed": ProcessedPTBXLReader,
    "manifest": ManifestReader,
}


def open_dataset(kind: str, path: str | Path, **options) -> Reader:
    """A reader of the given kind over ``path``; options go to the reader (``folds``, ``on_error``, ...)."""
    if kind not in READERS:
        raise DatasetError(f"unknown dataset kind {kind!r}; choose from {sorted(READERS)}")
    return READERS[kind](path, **options)


def parse_source(text: str) -> tuple[str, Path]:
    """``"ptbxl=/data/ptbxl"`` -> ``("ptbxl", Path("/data/ptbxl"))``."""
    kind, sep, path = text.partition("=")
    if not sep or not path:
        raise DatasetError(f"data source {text!r} must be written KIND=PATH with KIND in {sorted(READERS)}")
    kind = kind.strip().lower()
    if kind not in READERS:
        raise DatasetError(f"unknown dataset kind {kind!r} in {text!r}; choose from {sorted(READERS)}")
    return kind, Path(path).expanduser()
