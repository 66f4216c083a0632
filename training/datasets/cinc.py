"""PhysioNet/Computing in Cardiology Challenge 2021 WFDB records (Reyna et al. 2021).

Each ``.hea`` header (signal in a MATLAB v4 ``.mat``, WFDB format ``16x1+24``, read by ``wfdb``) carries
``# Dx: <SNOMED CT codes>``; they map to catalogue labels through the catalogue's ``snomed`` field. The
Challenge has no official folds: a stable fold 1-10 is derived from the record name (patients are not
identified across records in the released headers).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from edge.interpret.catalogue import Catalogue, load_catalogue

from .base import DatasetError, Reader, Record, fold_from_key
from .known import SCORED_2020, known_labels, snomed_vocabulary

__all__ = ["CinC2021Reader", "Challenge2020Reader", "read_dx_codes", "record_key"]


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
    ignore_unmapped = False  # a SNOMED code without a catalogue label: fail (cinc2021) or only record it

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
        self.full_vocabulary = snomed_vocabulary(self.catalogue)
        self.scored_vocabulary = snomed_vocabulary(self.catalogue, SCORED_2020)

    def __len__(self) -> int:
        return len(self.headers)

    def record_key(self, stem: str) -> str:
        return record_key(stem)

    def stated(self, codes: list[str]) -> frozenset[str]:
        """Labels the header states (present or absent): the 2021 Challenge released full diagnoses."""
        return self.full_vocabulary

    def __iter__(self) -> Iterator[Record]:
        for header in self.headers:
            key = self.record_key(header.stem)
            codes = read_dx_codes(header)
            if not codes:
                self.fail(key, f"no_labels: no '# Dx:' line in {header}")
                continue
            unknown = [c for c in codes if self.catalogue.from_snomed(c) is None]
            if unknown and not self.ignore_unmapped:
                self.fail(key, f"unknown_code: SNOMED CT code(s) {unknown} have no catalogue label")
                continue
            labels = tuple(dict.fromkeys(self.catalogue.from_snomed(c).id for c in codes if c not in unknown))
            if not labels:
                self.fail(key, f"unknown_code: none of the SNOMED CT codes {codes} has a catalogue label")
                continue
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
                meta={"snomed": codes, "path": str(header.with_suffix("")), "unmapped": unknown},
                known=known_labels(self.catalogue, self.stated(codes), labels),
                fold_derived=True,
            )


class Challenge2020Reader(CinC2021Reader):
    """PhysioNet/CinC Challenge 2020 records from other hospitals (CPSC 2018 and CPSC-Extra, China: ``A*``,
    ``Q*``; Georgia, USA: ``E*``), same header format as 2021.

    Some of these records carry only the Challenge's 27 scored classes. A record whose every code is a
    scored class cannot be told apart from such a record, so it is read as one: only the scored classes
    are known for it, every other label is unknown. A record with an unscored code carries its full
    diagnoses. Codes without a catalogue label (e.g. 251259000) are kept in ``meta["unmapped"]``; the
    record keeps its other labels.
    """

    name = "challenge2020"
    ignore_unmapped = True

    def record_key(self, stem: str) -> str:
        return f"challenge2020:{stem}"

    def stated(self, codes: list[str]) -> frozenset[str]:
        return self.scored_vocabulary if all(c in SCORED_2020 for c in codes) else self.full_vocabulary
