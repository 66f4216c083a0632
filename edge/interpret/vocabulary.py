"""One vocabulary of hospital wordings for every place a person writes a label.

Japanese ECG reports, manifests and label look-ups use more words than the catalogue's names and aliases:
``1度AVB``, ``PQ延長`` (the Japanese name of the PR interval), ``右軸変位`` (a common misspelling of 右軸偏位),
``ストレインパターン`` (left ventricular hypertrophy with its secondary ST-T change: two labels), ``心電図上異常を
認めない``. They live in one file, ``edge/data/vocabulary.csv`` (``phrase,label``; ``#`` comments; a label
column may name several labels separated by ``;``, or ``-`` for a phrase that is no finding), read here and
used by :meth:`edge.interpret.catalogue.Catalogue.lookup` (manifests, ``ecg-edge labels``) and by the report
parser (``training.report_labels``), so a word one of them accepts, the others accept too.

Only the parsing is here; resolving the label names is the catalogue's (a hospital catalogue keeps the
phrases whose labels it has).
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

__all__ = ["IGNORE", "VocabularyError", "parse_vocabulary", "shipped_vocabulary", "SHIPPED_SOURCE"]

IGNORE = "-"  # label of a phrase that is no finding (measurements, comments)
SHIPPED_SOURCE = "edge/data/vocabulary.csv"


MAX_LINE = 1000


class VocabularyError(ValueError):
    """A vocabulary file line that is not ``phrase,label``."""


def parse_vocabulary(text: str, source: str) -> list[tuple[str, tuple[str, ...]]]:
    """``[(phrase, label terms)]`` in file order; ``("-",)`` for a phrase that is no finding.

    The terms are as written (any spelling the catalogue resolves); one line ``phrase,label`` may name several
    labels separated by ``;`` (``ストレインパターン,LVH;STTC``). The header line ``phrase,label`` is optional.
    """
    lines = (line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    out: list[tuple[str, tuple[str, ...]]] = []
    for n, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE:  # a phrase is a few words (issue 25: a 200,000-character one raised csv.Error)
            raise VocabularyError(f"{source}: line {n}: longer than {MAX_LINE} characters; a phrase is a few words")
        try:
            row = next(csv.reader([line]))
        except (csv.Error, StopIteration) as exc:
            raise VocabularyError(f"{source}: line {n}: not a CSV line ({exc})") from None
        if n == 1 and [c.strip().lower() for c in row[:2]] == ["phrase", "label"]:
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise VocabularyError(f"{source}: line {n}: expected 'phrase,label', got {str(row)[:120]}")
        terms = tuple(t.strip() for t in row[1].split(";") if t.strip())
        if IGNORE in terms and len(terms) > 1:
            raise VocabularyError(f"{source}: phrase {row[0].strip()!r}: '-' cannot stand beside labels")
        out.append((row[0].strip(), terms))
    return out


@lru_cache(maxsize=1)
def shipped_vocabulary() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The shipped file's lines, read once."""
    text = (Path(__file__).resolve().parent.parent / "data" / "vocabulary.csv").read_text(encoding="utf-8")  # beside this package, not importlib.resources (tempfile, shutil, bz2, lzma: 0.5 MiB on the board, #23)
    return tuple(parse_vocabulary(text, SHIPPED_SOURCE))
