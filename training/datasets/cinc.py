"""PhysioNet/Computing in Cardiology Challenge 2021 WFDB records (Reyna et al. 2021).

Each ``.hea`` header (signal in a MATLAB v4 ``.mat``, WFDB format ``16x1+24``, read by ``wfdb``) carries
``# Dx: <SNOMED CT codes>``; they map to catalogue labels through the catalogue's ``snomed`` field. The
Challenge has no official folds: a stable fold 1-10 is derived from the record name (patients are not
identified across records in the released headers).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from edge.catalogue import Catalogue, load_catalogue

from .base import DatasetError, Reader, Record, fold_from_key

__all__ = ["CinC2021Reader", "read_dx_codes", "record_key"]


def record_key(stem: str) -> str:
    """Challenge ``HR#####`` records are PTB-XL ECGs: key them as ``ptbxl:<ecg_id>`` so the prepare step
    sees the same ECG only once when PTB-XL itself is also used."""
    if stem.startswith("HR") and stem[2:].isdigit():
        return f"ptbxl:{int(stem[2:])}"
    return f"cinc2021:{stem}"


def read_dx_codes(header: Path) -> list[str]:
    """SNOMED CT codes of the ``# Dx:`` comment line of a Challenge header."""
    for line in header.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("#") and line.lstrip("# ").lower().startswith("dx:"):
            text = line.split(":", 1)[1]
            return [c.strip() for c in text.split(",") if c.strip()]
    return []


class CinC2021Reader(Reader):
    """All records (``*.hea``) found under ``root``, recursively."""

    name = "cinc2021"

    def __init__(
        self,
        root: str | Path,
        folds: set[int] | None = None,
        catalogue: Catalogue | None = None,
        on_error: str = "raise",
        **kwargs,
    ):
        super().__init__(on_error, **kwargs)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: folder not found")
        self.catalogue = catalogue or load_catalogue()
        self.headers = sorted(self.root.rglob("*.hea"))
        if not self.headers:
            raise DatasetError(f"{self.root}: no WFDB headers (*.hea) found")
        if folds is not None:
            self.headers = [h for h in self.headers if fold_from_key(h.stem) in folds]

    def __len__(self) -> int:
        return len(self.headers)

    def __iter__(self) -> Iterator[Record]:
        for header in self.headers:
            key = record_key(header.stem)
            codes = read_dx_codes(header)
            if not codes:
                self.fail(key, f"no_labels: no '# Dx:' line in {header}")
                continue
            labels = []
            unknown = [c for c in codes if self.catalogue.from_snomed(c) is None]
            if unknown:
                self.fail(key, f"unknown_code: SNOMED CT code(s) {unknown} have no catalogue label")
                continue
            labels = tuple(dict.fromkeys(self.catalogue.from_snomed(c).id for c in codes))
            loaded = self.read_wfdb(key, header.with_suffix(""))
            if loaded is None:
                continue
            signal, fs, leads = loaded
            yield Record(
                key=key,
                source=self.name,
                signal=signal,
                fs=fs,
                leads=leads,
                labels=labels,
                patient=key,
                fold=fold_from_key(header.stem),
                meta={"snomed": codes, "path": str(header.with_suffix(""))},
            )
