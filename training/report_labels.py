"""Japanese ECG report text (所見) -> catalogue labels, and the ``ecg-labels-from-reports`` command.

A hospital's labels live in free-text reports such as ``洞調律。完全右脚ブロック。I度房室ブロックの疑い。
ST低下なし。``. This module splits a report into phrases (at 。、，,;・ line breaks, +/＋, および, and
whitespace between non-Latin words), finds catalogue labels in each phrase by longest match, and reads
the phrase's modifiers:

- negation (``…なし``, ``…を認めない``, ``…認めず``, ``…(-)``, ``no …``): the labels are negated, never
  positive;
- uncertainty (``…の疑い``, ``…疑``, ``…の可能性``, ``…を否定できない``, ``…?``, ``possible …``): not positive
  unless ``--include-uncertain``.

Matching uses :func:`edge.interpret.catalogue.normalize` (NFKC width folding, case, hiragana -> katakana) on both
the report and the terms, so ``ＣＲＢＢＢ``, ``crbbb``, ``Ⅰ度房室ブロック`` and ``右脚ぶろっく`` all match (kana
is folded, never converted to kanji: a report written wholly in kana readings does not match). Terms are every catalogue name (id, Japanese, English, aliases) plus the
hospital wordings of the one shared vocabulary (``edge/data/vocabulary.csv``, :mod:`edge.interpret.vocabulary`:
the same words a manifest and ``ecg-edge labels`` accept; a phrase may name several labels, ``LVH;STTC``);
extend it with ``--mapping`` — a ``-`` label marks a phrase that is no finding. Latin-letter terms only match as whole words (``AF`` not inside ``LAFB``).
Every phrase that matched nothing, and every remainder of a phrase that the match left over, is listed
with its count so a person can extend the mapping file.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edge.interpret.catalogue import Catalogue, CatalogueError, load_catalogue, normalize
from edge.interpret.vocabulary import IGNORE, SHIPPED_SOURCE, VocabularyError, parse_vocabulary

from .csv_safe import safe_row
from .label_catalogue import load_training_catalogue

__all__ = ["ReportLabeler", "ReportLabels", "fold", "load_mapping", "main"]

MAX_FIELD = 4 * 2**20  # characters of one CSV field (a report text)

log = logging.getLogger(__name__)

_SPLIT = re.compile(r"[。．.、，,;；・\n\r]|(?<!\()\+(?!\))|および|及び|ならびに|並びに|\s+")
# Splitting "72/分" or "r/o" at "/" would make noise; "+" splits "CRBBB+LAH" but not "(+)".
# Modifiers, written as in reports; compared after the same normalisation as the text.
_UNCERTAIN = ["を否定できない", "は否定できない", "否定できない", "の疑い", "疑い", "疑われる", "疑う", "疑",
              "の可能性", "可能性", "示唆", "?", "possible", "probable", "suspected", "r/o", "susp"]  # fmt: skip
_NEGATION = ["を認めない", "は認めない", "認めない", "認めず", "はない", "ではない", "なし", "無し", "ない",
             "否定的", "(-)", "no", "not", "without", "absent"]  # fmt: skip
_FILLERS = ["を認める", "認めます", "を認め", "認める", "を伴う", "伴う", "あり", "有り", "(+)", "軽度", "中等度",
            "高度", "著明な", "著明", "明らかな", "所見", "パターン", "傾向", "誘導", "の", "を", "は", "が", "に",
            "で", "と", "も", "型", "性", "様"]  # fmt: skip
_LEAD_TOKENS = re.compile(r"(?<![a-z])(?:avr|avl|avf|v[1-9]|i{1,3})(?![a-z])")
_NEUTRAL = re.compile(r"[\W\d_]+")
_RANK = {"negated": 0, "uncertain": 1, "positive": 2}


def fold(text: str) -> str:
    """:func:`edge.interpret.catalogue.normalize` word by word, keeping one space between words (``no LVH``)."""
    return " ".join(filter(None, (normalize(w) for w in unicodedata.normalize("NFKC", text).split())))


def _norm_list(words: Iterable[str]) -> list[str]:
    return sorted({fold(w) for w in words}, key=len, reverse=True)


_UNCERTAIN_N, _NEGATION_N, _FILLERS_N = (_norm_list(w) for w in (_UNCERTAIN, _NEGATION, _FILLERS))


def _is_latin(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


@dataclass
class ReportLabels:
    """Labels found in one report: positive, uncertain and negated ids; unmatched text."""

    positive: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    negated: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # phrases with no label
    remainders: list[str] = field(default_factory=list)  # text left over in phrases that matched


def load_mapping(path: str | Path | None, catalogue: Catalogue) -> dict[str, str]:
    """``{folded phrase: "id", "id;id" or "-"}`` from a vocabulary CSV (``phrase,label``; ``#`` comments).

    ``None`` reads the shared vocabulary (``edge/data/vocabulary.csv``), keeping the phrases whose labels the
    catalogue has (a hospital catalogue may lack some); a file of your own must name only known labels.
    """
    shipped = path is None
    if shipped:
        text = resources.files("edge").joinpath("data", "vocabulary.csv").read_text(encoding="utf-8")
        source = SHIPPED_SOURCE
    else:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise CatalogueError(f"cannot read mapping file {path}: {exc.strerror or exc}") from None
        source = str(path)
    try:
        lines = parse_vocabulary(text, source)
    except VocabularyError as exc:
        raise CatalogueError(str(exc)) from None
    mapping: dict[str, str] = {}
    for phrase, terms in lines:
        if terms != (IGNORE,):
            try:
                ids = [catalogue.resolve(t).id for t in terms]
            except KeyError as exc:
                if shipped:
                    continue
                raise CatalogueError(f"{source}: phrase {phrase!r}: {exc}") from None
            label = ";".join(dict.fromkeys(ids))
        else:
            label = IGNORE
        mapping[fold(phrase)] = label
    return mapping


class ReportLabeler:
    """Finds catalogue labels in report texts (see the module docstring)."""

    def __init__(self, catalogue: Catalogue | None = None, mappings: Iterable[str | Path | None] = (None,)):
        self.catalogue = catalogue or load_catalogue()
        self.terms: dict[str, str] = {}
        for lab in self.catalogue:
            for name in lab.names():
                self.terms.setdefault(fold(name), lab.id)
        for path in mappings:  # later files win
            self.terms.update(load_mapping(path, self.catalogue))
        self.terms.pop("", None)
        self._max = max(map(len, self.terms))

    def _match(self, s: str) -> tuple[list[str], str]:
        """Longest matches left to right: (label ids or "-", the text not covered by any term)."""
        found, rest, i = [], [], 0
        while i < len(s):
            for length in range(min(self._max, len(s) - i), 0, -1):
                term = s[i : i + length]
                label = self.terms.get(term)
                if label is None:
                    continue
                if _is_latin(term[0]) and i > 0 and _is_latin(s[i - 1]):
                    continue
                if _is_latin(term[-1]) and i + length < len(s) and _is_latin(s[i + length]):
                    continue
                found.append(label)
                rest.append(" ")
                i += length
                break
            else:
                rest.append(s[i])
                i += 1
        return found, "".join(rest)

    def label(self, text: str) -> ReportLabels:
        """Positive, uncertain and negated labels of one report, with what did not match."""
        out = ReportLabels()
        status: dict[str, str] = {}
        for raw in _phrases(text):
            phrase = fold(raw)
            if not _NEUTRAL.sub("", phrase):  # numbers and punctuation only
                continue
            found, rest = self._match(phrase)
            rest, uncertain = _strip(rest, _UNCERTAIN_N)
            rest, negated = _strip(rest, _NEGATION_N)
            rest, _ = _strip(rest, _FILLERS_N)
            leftover = _NEUTRAL.sub(" ", _LEAD_TOKENS.sub(" ", rest)).strip()
            labels = [i for x in found if x != IGNORE for i in x.split(";")]
            if not found:
                out.unmatched.append(raw.strip())
                continue
            if len(leftover.replace(" ", "")) >= 2:
                out.remainders.append(leftover)
            kind = "negated" if negated else "uncertain" if uncertain else "positive"
            for label_id in labels:  # across phrases, positive beats uncertain beats negated
                if label_id not in status or _RANK[kind] > _RANK[status[label_id]]:
                    status[label_id] = kind
        order = {lab.id: i for i, lab in enumerate(self.catalogue)}
        for label_id in sorted(status, key=order.__getitem__):
            getattr(out, status[label_id]).append(label_id)
        return out


def _phrases(text: str) -> list[str]:
    """Split a report into phrases; whitespace splits only where it does not join two Latin words."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"(?<=[A-Za-z0-9°])\s+(?=[A-Za-z0-9(])", "\x00", text)  # keep "left atrial enlargement"
    text = re.sub(r"^\s*\d+[.)]\s*|\n\s*\d+[.)]\s*", "\n", text)  # "1. 洞調律" numbering
    return [p.replace("\x00", " ") for p in _SPLIT.split(text) if p and p.strip()]


def _strip(s: str, words: list[str]) -> tuple[str, bool]:
    """Remove every modifier of ``words`` from ``s`` (Latin words only as whole words)."""
    hit = False
    for w in words:
        pattern = rf"(?<![a-z]){re.escape(w)}(?![a-z])" if _is_latin(w[0]) else re.escape(w)
        s, n = re.subn(pattern, " ", s)
        hit = hit or n > 0
    return s, hit


_PATH_COLUMNS = ("path", "record", "file", "ファイル")
_TEXT_COLUMNS = ("report", "text", "findings", "所見", "report_text", "コメント")
_PASS_COLUMNS = ("fs", "leads", "patient_id", "split", "fold")


def _pick(fieldnames: list[str], given: str | None, candidates: tuple[str, ...], what: str, src: str) -> str:
    if given:
        if given not in fieldnames:
            raise SystemExit(f"error: {src}: no column {given!r} (columns: {', '.join(fieldnames)})")
        return given
    for name in fieldnames:
        if name.strip().lower() in candidates:
            return name
    raise SystemExit(
        f"error: {src}: no {what} column; name it with --{what}-column (columns: {', '.join(fieldnames)})"
    )


def main(argv: list[str] | None = None) -> int:
    """``ecg-labels-from-reports REPORTS.csv --out MANIFEST.csv``: report text -> manifest CSV."""
    ap = argparse.ArgumentParser(
        prog="ecg-labels-from-reports",
        description="Read a CSV of (record, Japanese report text) and write a training manifest with catalogue "
        "labels; list every phrase that matched nothing, with counts, so the mapping can be extended.",
    )
    ap.add_argument("reports", help="CSV with a record path column and a report text column (UTF-8)")
    ap.add_argument(
        "--out", required=True, help="manifest CSV to write (path, labels, uncertain, negated, ...)"
    )
    ap.add_argument(
        "--mapping", action="append", default=[], help="extra phrase,label CSV (repeatable; wins)"
    )
    ap.add_argument(
        "--catalogue", help="label catalogue JSON, as for ecg-train --catalogue (default: the shipped 98)"
    )
    ap.add_argument("--include-uncertain", action="store_true", help="count 「…の疑い」 findings as positive")
    ap.add_argument(
        "--unmatched", help="CSV of unmatched phrases and counts (default: OUT with .unmatched.csv)"
    )
    ap.add_argument("--path-column", help="record column (default: path, record or file)")
    ap.add_argument("--text-column", help="report column (default: report, text, findings or 所見)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        labeler = ReportLabeler(load_training_catalogue(args.catalogue), [None, *args.mapping])
    except CatalogueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    src = Path(args.reports)
    csv.field_size_limit(MAX_FIELD)  # long reports are fine; beyond this a field is refused in one line
    try:
        with src.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"error: cannot read {src}: {' '.join(str(exc).split())[:200]}", file=sys.stderr)
        return 1
    try:
        return _write(args, labeler, src, fields, rows)
    except OSError as exc:  # --out or --unmatched a folder, unwritable, a full disk
        print(f"error: cannot write {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def _write(args: argparse.Namespace, labeler: ReportLabeler, src: Path, fields: list[str], rows: list[dict]) -> int:
    """The manifest and the unmatched-phrase listing; cells made safe for spreadsheets (training.csv_safe)."""
    path_col = _pick(fields, args.path_column, _PATH_COLUMNS, "path", str(src))
    text_col = _pick(fields, args.text_column, _TEXT_COLUMNS, "text", str(src))
    passed = [c for c in fields if c.strip().lower() in _PASS_COLUMNS]
    unmatched: Counter[str] = Counter()
    remainders: Counter[str] = Counter()
    written, empty = 0, []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(safe_row(["path", "labels", "uncertain", "negated", *passed]))
        for row in rows:
            found = labeler.label(row.get(text_col) or "")
            unmatched.update(found.unmatched)
            remainders.update(found.remainders)
            positive = found.positive + (found.uncertain if args.include_uncertain else [])
            positive.sort(key=labeler.catalogue.index)
            if not positive:
                empty.append(row.get(path_col, ""))
                continue
            uncertain = [] if args.include_uncertain else found.uncertain
            w.writerow(safe_row([row[path_col], ";".join(positive), ";".join(uncertain), ";".join(found.negated),
                                 *(row.get(c, "") for c in passed)]))  # fmt: skip
            written += 1
    listing = Path(args.unmatched) if args.unmatched else out.with_suffix(".unmatched.csv")
    with listing.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["phrase", "count", "kind"])
        for phrase, n in unmatched.most_common():
            w.writerow(safe_row([phrase, n, "unmatched"]))
        for phrase, n in remainders.most_common():
            w.writerow(safe_row([phrase, n, "remainder"]))
    log.info(
        "%d reports: %d written to %s, %d with no positive label (left out)",
        len(rows),
        written,
        out,
        len(empty),
    )
    log.info(
        "%d distinct unmatched phrases (%d occurrences) and %d remainders listed in %s; add them to a mapping "
        "file (phrase,label) and pass it with --mapping",
        len(unmatched), sum(unmatched.values()), len(remainders), listing,
    )  # fmt: skip
    for phrase, n in unmatched.most_common(10):
        log.info("  %4d  %s", n, phrase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
