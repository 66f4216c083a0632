"""The label catalogue: 98 Japanese ECG diagnostic labels, their codes and their hierarchy (Contract 2).

The catalogue is package data (``edge/data/labels.json``). Its order is the canonical row order of every
label matrix (training targets, the bundle's embedding matrix). Each label carries the PTB-XL SCP-ECG
statements (Wagner et al., Sci Data 2020) and the SNOMED CT concepts of the PhysioNet/CinC Challenge 2021
(Reyna et al.) that map to it, so dataset readers translate codes with :meth:`Catalogue.from_scp` and
:meth:`Catalogue.from_snomed` and add superset labels with :meth:`Catalogue.expand`.

Text matching (:meth:`Catalogue.resolve`, :meth:`Catalogue.lookup`, :meth:`Catalogue.search`) folds NFKC
(full/half width), case and hiragana to katakana, so ``ﾌﾞﾛｯｸ``, ``ぶろっく`` and ``ブロック`` are the same query.
Beyond names, aliases and codes it knows the hospital wordings of :mod:`edge.interpret.vocabulary`
(``1度AVB``, ``PQ延長``, ``右軸変位``...), the same ones the report parser reads.
Standard library only: this runs on the bedside device.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from edge.interpret.vocabulary import IGNORE, shipped_vocabulary

__all__ = [
    "CATEGORIES",
    "N_LABELS",
    "Catalogue",
    "CatalogueError",
    "Label",
    "UnknownLabelError",
    "load_catalogue",
    "normalize",
]

log = logging.getLogger(__name__)

CATEGORIES = ("rhythm", "conduction", "hypertrophy", "ischemia/ST-T", "infarction", "axis", "other")
N_LABELS = 98  # the shipped catalogue; hospital catalogues and extended ones may differ
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"})


class CatalogueError(ValueError):
    """The label catalogue (file or extra labels) breaks the catalogue contract."""


class UnknownLabelError(KeyError):
    """No label has this id or name; ``suggestions`` holds ids of close labels."""

    def __init__(self, message: str, suggestions: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.suggestions = tuple(suggestions)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


def normalize(text: str) -> str:
    """Fold text for matching: NFKC (width), casefold, hiragana -> katakana, dashes, no whitespace."""
    s = unicodedata.normalize("NFKC", str(text)).casefold().translate(_DASHES)
    s = "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in s)
    return "".join(s.split())


@dataclass(frozen=True)
class Label:
    """One diagnostic label. Sequences are tuples so labels are hashable and immutable."""

    id: str  # stable ASCII identifier, e.g. "CRBBB"; never renamed once shipped
    ja: str  # standard Japanese term as written in ECG reports, e.g. "完全右脚ブロック"
    en: str  # English name
    category: str = "other"  # one of CATEGORIES
    parents: tuple[str, ...] = ()  # ids of superset labels (下壁心筋梗塞 -> 心筋梗塞)
    scp: tuple[str, ...] = ()  # PTB-XL SCP-ECG statement codes mapped to this label
    snomed: tuple[str, ...] = ()  # SNOMED CT concept ids (PhysioNet Challenge 2021) mapped here
    description_ja: str = ""  # one or two sentences for offline lookup
    aliases: tuple[str, ...] = ()  # other spellings and abbreviations

    def __post_init__(self) -> None:
        for name in ("id", "ja", "en", "category", "description_ja"):
            if not isinstance(getattr(self, name), str):
                raise CatalogueError(f"label {self.id!r}: field {name!r} must be a string")
        for name in ("parents", "scp", "snomed", "aliases"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise CatalogueError(f"label {self.id!r}: field {name!r} must be a list of strings")
            object.__setattr__(self, name, tuple(str(v).strip() for v in value))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Label:
        """Build a label from a JSON object; only ``id``, ``ja`` and ``en`` are required."""
        if not isinstance(data, Mapping):
            raise CatalogueError(f"a label must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CatalogueError(f"label {data.get('id')!r}: unknown field(s) {', '.join(unknown)}")
        missing = [k for k in ("id", "ja", "en") if not data.get(k)]
        if missing:
            raise CatalogueError(f"label {data.get('id')!r}: missing field(s) {', '.join(missing)}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with lists, in the file's field order."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def names(self) -> tuple[str, ...]:
        """Every text name of the label: id, Japanese, English and aliases."""
        return (self.id, self.ja, self.en, *self.aliases)


class Catalogue:
    """An ordered, validated set of labels with code lookup, hierarchy and search.

    ``expected_count`` enforces the label count (the shipped file must have :data:`N_LABELS`).
    Construction validates everything and raises :class:`CatalogueError` with the first problem found.
    """

    def __init__(
        self, labels: Iterable[Label], *, expected_count: int | None = None, source: str = ""
    ) -> None:
        self.labels: tuple[Label, ...] = tuple(labels)
        self.source = source
        if expected_count is not None and len(self.labels) != expected_count:
            raise CatalogueError(f"{self._where}expected {expected_count} labels, found {len(self.labels)}")
        self._by_id: dict[str, Label] = {}
        self._index: dict[str, int] = {}
        self._terms: dict[str, str] = {}  # normalized name or code -> id
        self._scp: dict[str, str] = {}
        self._snomed: dict[str, str] = {}
        self._vocab: dict[str, tuple[str, ...]] | None = None  # built on first use (Catalogue.vocabulary)
        for i, label in enumerate(self.labels):
            self._add(i, label)
        self._check_parents()
        self._ancestors = {lab.id: frozenset(self._walk_up(lab.id)) for lab in self.labels}
        self._haystacks = [  # folded (names, codes, description) per label, for search
            (
                [normalize(n) for n in lab.names()],
                [normalize(c) for c in (*lab.scp, *lab.snomed)],
                normalize(lab.description_ja),
            )
            for lab in self.labels
        ]

    # -- validation ---------------------------------------------------------------------------------
    @property
    def _where(self) -> str:
        return f"{self.source}: " if self.source else ""

    def _fail(self, message: str) -> CatalogueError:
        return CatalogueError(self._where + message)

    def _add(self, i: int, label: Label) -> None:
        if not isinstance(label, Label):
            raise self._fail(f"entry {i} is not a Label")
        if not _ID_RE.match(label.id) or not label.id.isascii():
            raise self._fail(f"label id {label.id!r} must be ASCII letters, digits and _ . + -")
        if label.category not in CATEGORIES:
            raise self._fail(
                f"label {label.id}: category {label.category!r} is not one of {', '.join(CATEGORIES)}"
            )
        if not label.ja.strip() or not label.en.strip():
            raise self._fail(f"label {label.id}: empty ja or en")
        for code in label.snomed:
            if not code.isdigit():
                raise self._fail(f"label {label.id}: SNOMED CT code {code!r} is not a numeric concept id")
        if label.id in self._by_id:
            raise self._fail(f"duplicate label id {label.id!r}")
        self._by_id[label.id] = label
        self._index[label.id] = i
        # One namespace for names and codes: a term (folded) must never point at two labels.
        terms = [("name", t, None) for t in label.names()]
        terms += [("SCP code", t, self._scp) for t in label.scp]
        terms += [("SNOMED code", t, self._snomed) for t in label.snomed]
        for kind, term, table in terms:
            key = normalize(term)
            if not key:
                raise self._fail(f"label {label.id}: empty {kind}")
            owner = self._terms.get(key)
            if owner is not None and owner != label.id:
                raise self._fail(f"{kind} {term!r} of label {label.id} already names label {owner}")
            self._terms[key] = label.id
            if table is not None:
                table[key] = label.id

    def _check_parents(self) -> None:
        for label in self.labels:
            for parent in label.parents:
                if parent not in self._by_id:
                    raise self._fail(f"label {label.id}: parent {parent!r} is not in the catalogue")
                if parent == label.id:
                    raise self._fail(f"label {label.id} is its own parent")
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done

        def visit(node: str, path: list[str]) -> None:
            state[node] = 1
            for parent in self._by_id[node].parents:
                if state.get(parent) == 1:
                    cycle = path[path.index(parent) :] + [parent] if parent in path else [node, parent]
                    raise self._fail(f"parent cycle: {' -> '.join(cycle)}")
                if parent not in state:
                    visit(parent, path + [parent])
            state[node] = 2

        for label in self.labels:
            if label.id not in state:
                visit(label.id, [label.id])

    def _walk_up(self, label_id: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self._by_id[label_id].parents)
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(self._by_id[node].parents)
        return seen

    # -- container ----------------------------------------------------------------------------------
    @property
    def ids(self) -> tuple[str, ...]:
        """Label ids in canonical row order."""
        return tuple(lab.id for lab in self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[Label]:
        return iter(self.labels)

    def __contains__(self, label_id: object) -> bool:
        return label_id in self._by_id

    def __getitem__(self, label_id: str) -> Label:
        try:
            return self._by_id[label_id]
        except KeyError:
            raise self._unknown(label_id) from None

    def __repr__(self) -> str:
        return f"Catalogue({len(self)} labels{', ' + self.source if self.source else ''})"

    def index(self, label_id: str) -> int:
        """Row of ``label_id`` in every label matrix."""
        return self._index[self[label_id].id]

    def in_category(self, category: str) -> tuple[Label, ...]:
        """Labels of one category, in row order."""
        if category not in CATEGORIES:
            raise CatalogueError(f"unknown category {category!r}; choose from {', '.join(CATEGORIES)}")
        return tuple(lab for lab in self.labels if lab.category == category)

    def to_list(self) -> list[dict[str, Any]]:
        """The catalogue as JSON-ready dicts, in row order."""
        return [lab.to_dict() for lab in self.labels]

    # -- codes and names ----------------------------------------------------------------------------
    def from_scp(self, code: str) -> Label | None:
        """The label a PTB-XL SCP-ECG statement maps to, or None."""
        label_id = self._scp.get(normalize(code))
        return None if label_id is None else self._by_id[label_id]

    def from_snomed(self, code: str | int) -> Label | None:
        """The label a SNOMED CT concept id (as in Challenge 2021 headers) maps to, or None."""
        label_id = self._snomed.get(normalize(str(code)))
        return None if label_id is None else self._by_id[label_id]

    def resolve(self, term: str) -> Label:
        """The label named exactly by ``term``: id, Japanese, English, alias, SCP or SNOMED code, or a
        vocabulary phrase that names one label (``1度AVB``, ``PQ延長``).

        Raises :class:`UnknownLabelError` (a ``KeyError``) listing close labels when nothing matches.
        """
        found = self.lookup(term)
        if len(found) != 1:
            named = " + ".join(f"{lab.ja} ({lab.id})" for lab in found)
            raise UnknownLabelError(f"{term!r} names {len(found)} labels ({named}); give them one by one")
        return found[0]

    def lookup(self, term: str) -> tuple[Label, ...]:
        """The labels ``term`` names: one for a name, alias or code; one or more for a vocabulary phrase
        (``ストレインパターン`` -> 左室肥大 + ST-T変化). Raises :class:`UnknownLabelError` otherwise."""
        key = normalize(term)
        label_id = self._terms.get(key)
        if label_id is not None:
            return (self._by_id[label_id],)
        ids = self.vocabulary.get(key)
        if ids:
            return tuple(self._by_id[i] for i in ids)
        raise self._unknown(term)

    @property
    def vocabulary(self) -> dict[str, tuple[str, ...]]:
        """``{normalised phrase: label ids}`` of the shipped vocabulary (phrases that are no finding left out).

        A phrase is kept only when every label it names is in this catalogue; names of the catalogue win.
        """
        if self._vocab is None:
            vocab: dict[str, tuple[str, ...]] = {}
            for phrase, terms in shipped_vocabulary():
                key = normalize(phrase)
                if IGNORE in terms or key in self._terms:
                    continue
                ids = tuple(self._terms.get(normalize(t)) for t in terms)
                if all(ids):
                    vocab[key] = tuple(dict.fromkeys(ids))  # type: ignore[arg-type]
            self._vocab = vocab
        return self._vocab

    def _unknown(self, term: str) -> UnknownLabelError:
        suggestions = [lab.id for lab in self.search(term)[:5]] if normalize(term) else []
        if not suggestions:
            import difflib  # only for a term not found (0.2 MiB the runtime does not load)

            close = difflib.get_close_matches(normalize(term), list(self._terms), n=8, cutoff=0.7)
            suggestions = list(dict.fromkeys(self._terms[c] for c in close))[:5]
        message = f"unknown label {term!r}"
        if suggestions:
            named = ", ".join(f"{self._by_id[s].ja} ({s})" for s in suggestions)
            message += f"; did you mean: {named}?"
        return UnknownLabelError(message, suggestions)

    # -- hierarchy ----------------------------------------------------------------------------------
    def ancestors(self, label_id: str) -> set[str]:
        """Ids of all superset labels of ``label_id`` (transitive parents), without itself."""
        return set(self._ancestors[self[label_id].id])

    def expand(self, ids: Iterable[str]) -> list[str]:
        """``ids`` plus all their ancestors, sorted alphabetically (a 下壁心筋梗塞 is also a 心筋梗塞)."""
        out: set[str] = set()
        for label_id in ids:
            out.add(self[label_id].id)
            out |= self._ancestors[label_id]
        return sorted(out)

    # -- search -------------------------------------------------------------------------------------
    def search(self, query: str) -> list[Label]:
        """Labels matching ``query``, best first.

        Ranking: exact name or code, then names starting with the query, then names containing it,
        then descriptions containing it; last, every whitespace-separated word found somewhere.
        Within a rank shorter matching names come first, then row order. An empty query matches all.
        """
        q = normalize(query)
        if not q:
            return list(self.labels)
        phrase = self.vocabulary.get(q, ()) if q not in self._terms else ()
        words = [normalize(w) for w in unicodedata.normalize("NFKC", query).split()]
        ranked = []
        for i, (lab, (names, codes, desc)) in enumerate(zip(self.labels, self._haystacks, strict=True)):
            if q in names or q in codes or lab.id in phrase:
                key = (0, 0)
            elif hits := [len(n) for n in names if n.startswith(q)]:
                key = (1, min(hits))
            elif hits := [len(n) for n in names if q in n]:
                key = (2, min(hits))
            elif q in desc:
                key = (3, 0)
            elif len(words) > 1 and all(any(w in h for h in (*names, desc)) for w in words):
                key = (4, 0)
            else:
                continue
            ranked.append((key, i, lab))
        ranked.sort(key=lambda item: (item[0], item[1]))
        return [lab for _, _, lab in ranked]

    # -- user labels --------------------------------------------------------------------------------
    def _parent_ids(self, label: Label, extra: Sequence[Label]) -> tuple[str, ...]:
        """A new label's parents as ids: an id stays, any other name this catalogue resolves (``I度房室ブロック``,
        ``1度AVB``) becomes its label's id, so --extra-labels reads the words manifests and reports read."""
        known = {lab.id for lab in extra}
        out = []
        for parent in label.parents:
            if parent in self._by_id or parent in known:
                out.append(parent)
                continue
            try:
                out.append(self.resolve(parent).id)
            except UnknownLabelError:
                out.append(parent)  # left as written: the catalogue check names it
        return tuple(out)

    def extended(self, extra_labels: Iterable[Label | Mapping[str, Any]]) -> Catalogue:
        """A new catalogue with ``extra_labels`` appended (rows after the existing ones).

        Extra labels need only ``id``, ``ja`` and ``en``; ``category`` defaults to "other". Their parents
        may be existing or other extra labels. Duplicate ids or names raise :class:`CatalogueError`.
        """
        extra = [lab if isinstance(lab, Label) else Label.from_dict(lab) for lab in extra_labels]
        extra = [replace(lab, parents=self._parent_ids(lab, extra)) for lab in extra]
        log.debug("extending %r with %d label(s)", self, len(extra))
        return Catalogue((*self.labels, *extra), source=self.source)


def _parse(doc: Any, source: str) -> list[Label]:
    entries = doc.get("labels") if isinstance(doc, Mapping) else doc
    if not isinstance(entries, list):
        raise CatalogueError(f"{source}: expected a list of labels or an object with a 'labels' list")
    try:
        return [Label.from_dict(entry) for entry in entries]
    except TypeError as exc:  # a field of the wrong type reached the dataclass
        raise CatalogueError(f"{source}: {exc}") from None
    except CatalogueError as exc:
        raise CatalogueError(f"{source}: {exc}") from None


def _read(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"{source}: not valid JSON ({exc})") from None


@lru_cache(maxsize=1)
def _shipped() -> Catalogue:
    source = "edge/data/labels.json"
    text = (Path(__file__).resolve().parent.parent / "data" / "labels.json").read_text(encoding="utf-8")  # beside this package, not importlib.resources (tempfile, shutil, bz2, lzma: 0.5 MiB on the board, #23)
    catalogue = Catalogue(_parse(_read(text, source), source), expected_count=N_LABELS, source=source)
    log.debug("loaded %r", catalogue)
    return catalogue


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """The shipped catalogue (loaded once and cached), or the one in the JSON file at ``path``.

    A hospital catalogue uses the same format (an object with a ``labels`` list, or the bare list) and
    may have any number of labels.
    """
    if path is None:
        return _shipped()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"cannot read label catalogue {path}: {exc.strerror or exc}") from None
    return Catalogue(_parse(_read(text, str(path)), str(path)), source=str(path))
