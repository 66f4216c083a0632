"""The interpretation rules as data with a schema (DESIGN.md contract 8.5): parsing gives typed rules or
a one-line error naming the field.

The rules document (``edge/data/findings_rules.json``, and a bundle manifest's ``decision.rules``) holds:

- ``version`` (``RULES_VERSION``) and ``about``;
- ``exclusive``: groups of labels of which one member is stated (``{"name", "ja", "members"}``; a member is a
  label id, meaning the label and its descendants, or a list of ids);
- ``normal``: ``{"label", "compatible", "note"}``: 正常心電図 stands only beside these;
- ``keep_parents``: parents listed even beside a more specific child;
- ``rhythm_labels``: the labels the rhythm analysis owns (contract 8.1): when a rhythm analysis is given
  they are stated only by it, never by the model or a criterion;
- ``criteria``: one entry per published criterion, ``{"label", "name", "source", "mode", "when"}`` and
  optionally ``"not_with"`` (stated labels under which the criterion is not read, e.g. voltage in left bundle
  branch block: the label is then withheld with that reason; an id stands for the label and its descendants,
  ``"LBBB"`` for 左脚ブロック, 完全左脚ブロック and 不完全左脚ブロック), ``"unmeasured": "veto"`` (a label that needs
  the measurement: not stated while it is unmeasured), ``"alarm": true``, ``"territory"``, ``"reciprocal"``
  (a condition reported beside a met criterion, e.g. reciprocal ST depression) and ``"note"``.

``mode``: ``"decide"`` (met: stated; clearly not met: never stated; unknown: the model decides), ``"veto"``
(not met: never stated; otherwise the model decides), ``"state"`` (met: stated; otherwise the model decides).

A condition (``when``) is one of

- ``{"key": K, "min": a, "max": b}``: a global measurement (contract 7), ``min <= value < max``;
- ``{"lead": L, ...}`` / ``{"leads": [L...], "count": "all" | "any" | n, ...}``: per-lead measurements
  (contract 7 v2 ``leads`` matrix), each lead tested with ``"key"/"min"/"max"`` or ``"test": {key: {"min",
  "max"}}`` (all of them on the same lead);
- ``{"territory": T, "contiguous": n, ...}``: the test met in at least ``n`` contiguous leads of the
  territory (``TERRITORIES``; contiguity as in AHA-VI: the frontal Cabrera order and V1..V6);
  ``"lead_min"`` gives lead-specific minima (the UDMI4 V2-V3 ST thresholds);
- ``{"sum": [[L, K], ...], "min", "max"}`` and ``{"ratio": [[L, K], [L, K]], "min", "max"}``;
- ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}``.

A threshold is a number or ``{"male", "male_under_40", "female", "unknown"}`` (mV, ms, bpm, degrees); the
value used when sex or age is unknown is written in the file as ``unknown``, with the choice explained.
Depths (``q_mv``, ``s_mv``, ``s2_mv``, ``p_neg_mv``, ``t_neg_mv``) are read as magnitudes.

numpy-free, standard library only: this runs on the bedside device.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "RULES_VERSION",
    "RULES_FILE",
    "GLOBAL_KEYS",
    "LEAD_KEYS",
    "TERRITORIES",
    "RulesError",
    "Threshold",
    "Range",
    "Global",
    "PerLead",
    "Contiguous",
    "Sum",
    "Ratio",
    "AllOf",
    "AnyOf",
    "Not",
    "Criterion",
    "ExclusiveGroup",
    "Rules",
    "parse_rules",
    "load_rules",
    "read_rules_doc",
    "check_manifest_rules",
]

RULES_VERSION = 2
RULES_FILE = "findings_rules.json"
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

# Global measurements (contract 7 and 7 v2) a criterion may read.
GLOBAL_KEYS = frozenset(
    {
        "hr_bpm", "rr_ms", "rr_irregularity", "rhythm_regular", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms",
        "qtcf_ms", "axis_deg", "p_present", "sv1_mv", "rv5_mv", "rv6_mv", "sv1_rv5_mv", "ravl_mv", "sv3_mv",
        "limb_qrs_max_mv", "chest_qrs_max_mv", "n_beats", "p_dur_ms", "p_axis_deg", "t_axis_deg", "ptf_v1",
        "template_pr_ms",
    }
)  # fmt: skip
# Per-lead measurements (contract 7 v2 ``leads``) and two derived from them (edge.interpret.criteria).
LEAD_KEYS = frozenset(
    {
        "p_pos_mv", "p_neg_mv", "p_dur_ms", "q_mv", "q_ms", "r_mv", "r_ms", "s_mv", "s_ms", "r2_mv", "s2_mv",
        "qrs_ms", "qrs_area", "st_j_mv", "st_60_mv", "t_pos_mv", "t_neg_mv", "qrs_pp_mv", "rs_ratio", "qr_ratio",
    }
)  # fmt: skip
# Territories (AHA-VI contiguous lead groups) and their reciprocal leads.
TERRITORIES: dict[str, tuple[str, ...]] = {
    "inferior": ("II", "III", "aVF"),
    "lateral": ("I", "aVL", "V5", "V6"),
    "septal": ("V1", "V2"),
    "anterior": ("V1", "V2", "V3", "V4"),
    "anterolateral": ("I", "aVL", "V3", "V4", "V5", "V6"),
    "limb": ("I", "II", "III", "aVL", "aVF"),
    "chest": ("V1", "V2", "V3", "V4", "V5", "V6"),
    "all": ("I", "II", "III", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"),
    "all_but_v1": ("I", "II", "III", "aVL", "aVF", "V2", "V3", "V4", "V5", "V6"),
}
SEXES = ("male", "male_under_40", "female", "unknown")
MODES = ("decide", "veto", "state")


class RulesError(ValueError):
    """A rules document that does not follow the schema; the message is one line naming the field."""


def _fail(where: str, what: str) -> RulesError:
    return RulesError(f"{where}: {what}")


@dataclass(frozen=True)
class Threshold:
    """A number, or one per sex/age group with the value used when they are unknown."""

    value: float | None = None
    male: float | None = None
    male_under_40: float | None = None
    female: float | None = None
    unknown: float | None = None

    def at(self, sex: str | None, age: float | None) -> float:
        if self.value is not None:
            return self.value
        if sex == "F" and self.female is not None:
            return self.female
        if sex == "M":
            if age is not None and age < 40 and self.male_under_40 is not None:
                return self.male_under_40
            if age is not None and self.male is not None:
                return self.male
        return float(self.unknown)  # sex or (for men) age unknown: the conservative value stated in the file


@dataclass(frozen=True)
class Range:
    """``key``: ``min <= value < max`` (either bound optional)."""

    key: str
    min: Threshold | None = None
    max: Threshold | None = None


@dataclass(frozen=True)
class Global:
    range: Range


@dataclass(frozen=True)
class PerLead:
    leads: tuple[str, ...]
    tests: tuple[Range, ...]
    count: str | int = "all"  # "all", "any" or at least n leads


@dataclass(frozen=True)
class Contiguous:
    territory: str
    tests: tuple[Range, ...]
    n: int = 2
    lead_min: tuple[tuple[str, Threshold], ...] = ()  # lead-specific minimum of the first test's key


@dataclass(frozen=True)
class Sum:
    terms: tuple[tuple[str, str], ...]
    min: Threshold | None = None
    max: Threshold | None = None


@dataclass(frozen=True)
class Ratio:
    num: tuple[str, str]
    den: tuple[str, str]
    min: Threshold | None = None
    max: Threshold | None = None


@dataclass(frozen=True)
class AllOf:
    parts: tuple


@dataclass(frozen=True)
class AnyOf:
    parts: tuple


@dataclass(frozen=True)
class Not:
    part: object


@dataclass(frozen=True)
class Criterion:
    """One published criterion for one label."""

    label: str
    name: str  # shown in ``why.rule``
    source: str  # the publication (shown in ``why.source``)
    mode: str  # "decide" | "veto" | "state"
    when: object  # a condition
    not_with: tuple[str, ...] = ()
    unmeasured_veto: bool = False
    alarm: bool = False
    territory: str | None = None
    reciprocal: object | None = None
    note: str = ""


@dataclass(frozen=True)
class ExclusiveGroup:
    name: str
    members: tuple[tuple[str, ...], ...]  # each member: one or more label ids
    ja: str = ""


@dataclass(frozen=True)
class Rules:
    """A parsed rules document (:func:`parse_rules`); ``doc`` is the JSON it came from."""

    version: int
    exclusive: tuple[ExclusiveGroup, ...]
    normal: str | None
    normal_compatible: tuple[str, ...]
    keep_parents: tuple[str, ...]
    rhythm_labels: tuple[str, ...]
    criteria: tuple[Criterion, ...]
    doc: dict = field(repr=False, compare=False, default_factory=dict)

    def criteria_for(self, label: str) -> list[Criterion]:
        return [c for c in self.criteria if c.label == label]

    @property
    def criterion_labels(self) -> list[str]:
        return list(dict.fromkeys(c.label for c in self.criteria))


# --- parsing -------------------------------------------------------------------------------------------
def _keys(obj: Mapping, allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise _fail(where, f"unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _dict(v: object, where: str) -> Mapping:
    if not isinstance(v, Mapping):
        raise _fail(where, f"expected an object, got {type(v).__name__}")
    return v


def _list(v: object, where: str, empty_ok: bool = False) -> list:
    if not isinstance(v, list):
        raise _fail(where, f"expected a list, got {type(v).__name__}")
    if not v and not empty_ok:
        raise _fail(where, "expected a non-empty list")
    return v


def _str(v: object, where: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise _fail(where, f"expected a non-empty string, got {v!r}"[:160])
    return v


def _number(v: object, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
        raise _fail(where, f"expected a number, got {v!r}"[:160])
    return float(v)


def _threshold(v: object, where: str) -> Threshold:
    if isinstance(v, Mapping):
        _keys(v, set(SEXES), where)
        if "unknown" not in v:
            raise _fail(where, "a threshold by sex/age needs the value for 'unknown' (sex or age not known)")
        return Threshold(**{k: _number(x, f"{where}.{k}") for k, x in v.items()})
    return Threshold(value=_number(v, where))


def _range(obj: Mapping, where: str, keys: frozenset) -> Range:
    key = _str(obj.get("key"), f"{where}.key")
    if key not in keys:
        kind = "per-lead" if keys is LEAD_KEYS else "global"
        raise _fail(f"{where}.key", f"unknown {kind} measurement {key!r}")
    lo = _threshold(obj["min"], f"{where}.min") if "min" in obj else None
    hi = _threshold(obj["max"], f"{where}.max") if "max" in obj else None
    if lo is None and hi is None:
        raise _fail(where, "needs 'min' or 'max'")
    return Range(key, lo, hi)


def _lead(v: object, where: str) -> str:
    if v not in LEADS:
        raise _fail(where, f"unknown lead {v!r} (leads: {', '.join(LEADS)})")
    return str(v)


def _tests(obj: Mapping, where: str) -> tuple[Range, ...]:
    if "test" in obj and "key" in obj:
        raise _fail(where, "give either 'key' or 'test', not both")
    if "test" in obj:
        test = _dict(obj["test"], f"{where}.test")
        if not test:
            raise _fail(f"{where}.test", "expected at least one measurement")
        out = []
        for k, spec in test.items():
            spec = _dict(spec, f"{where}.test.{k}")
            _keys(spec, {"min", "max"}, f"{where}.test.{k}")
            out.append(_range({"key": k, **spec}, f"{where}.test.{k}", LEAD_KEYS))
        return tuple(out)
    return (_range(obj, where, LEAD_KEYS),)


def _term(v: object, where: str) -> tuple[str, str]:
    pair = _list(v, where)
    if len(pair) != 2:
        raise _fail(where, "expected [lead, key]")
    key = _str(pair[1], f"{where}[1]")
    if key not in LEAD_KEYS:
        raise _fail(f"{where}[1]", f"unknown per-lead measurement {key!r}")
    return _lead(pair[0], f"{where}[0]"), key


_SHAPES = ("all", "any", "not", "lead", "leads", "territory", "sum", "ratio", "key")


def parse_condition(obj: object, where: str):
    """One condition from its JSON (see the module docstring)."""
    obj = _dict(obj, where)
    shapes = [s for s in _SHAPES if s in obj]
    if not shapes:
        raise _fail(where, f"a condition needs one of {', '.join(_SHAPES)}")
    shape = shapes[0]
    if shape in ("all", "any", "not"):
        if len(obj) != 1:
            other = sorted(set(obj) - {shape})[0]
            raise _fail(where, f"{shape!r} cannot be combined with {other!r}")
        if shape == "not":
            return Not(parse_condition(obj["not"], f"{where}.not"))
        parts = _list(obj[shape], f"{where}.{shape}")
        parsed = tuple(parse_condition(p, f"{where}.{shape}[{i}]") for i, p in enumerate(parts))
        return AllOf(parsed) if shape == "all" else AnyOf(parsed)
    if shape in ("lead", "leads"):
        _keys(obj, {"lead", "leads", "key", "min", "max", "test", "count"}, where)
        if "lead" in obj and "leads" in obj:
            raise _fail(where, "give either 'lead' or 'leads', not both")
        names = [obj["lead"]] if "lead" in obj else _list(obj["leads"], f"{where}.leads")
        leads = tuple(_lead(x, f"{where}.{shape}") for x in names)
        count = obj.get("count", "all")
        if count not in ("all", "any") and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise _fail(f"{where}.count", f"expected 'all', 'any' or a positive integer, got {count!r}")
        return PerLead(leads, _tests(obj, where), count)
    if shape == "territory":
        _keys(obj, {"territory", "contiguous", "key", "min", "max", "test", "lead_min"}, where)
        territory = obj["territory"]
        if territory not in TERRITORIES:
            raise _fail(f"{where}.territory", f"unknown territory {territory!r} ({', '.join(TERRITORIES)})")
        n = obj.get("contiguous", 2)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise _fail(f"{where}.contiguous", f"expected a positive integer, got {n!r}")
        lead_min = _dict(obj.get("lead_min", {}), f"{where}.lead_min")
        per = tuple(
            (_lead(k, f"{where}.lead_min"), _threshold(v, f"{where}.lead_min.{k}"))
            for k, v in lead_min.items()
        )
        return Contiguous(territory, _tests(obj, where), n, per)
    if shape == "sum":
        _keys(obj, {"sum", "min", "max"}, where)
        terms = tuple(_term(t, f"{where}.sum[{i}]") for i, t in enumerate(_list(obj["sum"], f"{where}.sum")))
        lo, hi = _bounds(obj, where)
        return Sum(terms, lo, hi)
    if shape == "ratio":
        _keys(obj, {"ratio", "min", "max"}, where)
        pair = _list(obj["ratio"], f"{where}.ratio")
        if len(pair) != 2:
            raise _fail(f"{where}.ratio", "expected [[lead, key], [lead, key]]")
        lo, hi = _bounds(obj, where)
        return Ratio(_term(pair[0], f"{where}.ratio[0]"), _term(pair[1], f"{where}.ratio[1]"), lo, hi)
    _keys(obj, {"key", "min", "max"}, where)
    return Global(_range(obj, where, GLOBAL_KEYS))


def _bounds(obj: Mapping, where: str) -> tuple[Threshold | None, Threshold | None]:
    lo = _threshold(obj["min"], f"{where}.min") if "min" in obj else None
    hi = _threshold(obj["max"], f"{where}.max") if "max" in obj else None
    if lo is None and hi is None:
        raise _fail(where, "needs 'min' or 'max'")
    return lo, hi


_CRITERION_KEYS = {
    "label", "name", "source", "mode", "when", "not_with", "unmeasured", "alarm", "territory", "reciprocal",
    "note",
}  # fmt: skip


def _criterion(obj: object, where: str) -> Criterion:
    obj = _dict(obj, where)
    _keys(obj, _CRITERION_KEYS, where)
    for required in ("label", "name", "source", "mode", "when"):
        if required not in obj:
            raise _fail(where, f"missing {required!r}")
    label = _str(obj["label"], f"{where}.label")
    mode = obj["mode"]
    if mode not in MODES:
        raise _fail(f"{where}.mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
    unmeasured = obj.get("unmeasured", "unknown")
    if unmeasured not in ("unknown", "veto"):
        raise _fail(f"{where}.unmeasured", f"expected 'unknown' or 'veto', got {unmeasured!r}")
    alarm = obj.get("alarm", False)
    if not isinstance(alarm, bool):
        raise _fail(f"{where}.alarm", f"expected true or false, got {alarm!r}")
    territory = obj.get("territory")
    if territory is not None and territory not in TERRITORIES:
        raise _fail(f"{where}.territory", f"unknown territory {territory!r}")
    not_with = tuple(
        _str(x, f"{where}.not_with") for x in _list(obj.get("not_with", []), f"{where}.not_with", True)
    )
    return Criterion(
        label=label,
        name=_str(obj["name"], f"{where}.name"),
        source=_str(obj["source"], f"{where}.source"),
        mode=mode,
        when=parse_condition(obj["when"], f"{where}.when"),
        not_with=not_with,
        unmeasured_veto=unmeasured == "veto",
        alarm=alarm,
        territory=territory,
        reciprocal=parse_condition(obj["reciprocal"], f"{where}.reciprocal") if "reciprocal" in obj else None,
        note=str(obj.get("note", "")),
    )


def _group(obj: object, where: str) -> ExclusiveGroup:
    obj = _dict(obj, where)
    _keys(obj, {"name", "ja", "members"}, where)
    members = []
    for i, m in enumerate(_list(obj.get("members"), f"{where}.members")):
        ids = [m] if isinstance(m, str) else _list(m, f"{where}.members[{i}]")
        members.append(tuple(_str(x, f"{where}.members[{i}]") for x in ids))
    return ExclusiveGroup(_str(obj.get("name"), f"{where}.name"), tuple(members), str(obj.get("ja", "")))


_TOP_KEYS = {
    "version",
    "about",
    "exclusive",
    "normal",
    "keep_parents",
    "rhythm_labels",
    "criteria",
    "criteria_about",
}


def parse_rules(doc: object, where: str = "rules") -> Rules:
    """Typed rules from a rules document, or :class:`RulesError` with a one-line message naming the field."""
    doc = _dict(doc, where)
    _keys(doc, _TOP_KEYS, where)
    version = doc.get("version")
    if version != RULES_VERSION:
        raise _fail(f"{where}.version", f"expected {RULES_VERSION}, got {version!r}")
    groups = tuple(
        _group(g, f"{where}.exclusive[{i}]")
        for i, g in enumerate(_list(doc.get("exclusive", []), f"{where}.exclusive", True))
    )
    normal = _dict(doc.get("normal", {}), f"{where}.normal")
    _keys(normal, {"label", "compatible", "note"}, f"{where}.normal")
    ids = lambda key, src, w: tuple(_str(x, w) for x in _list(src.get(key, []), w, True))  # noqa: E731
    criteria = tuple(
        _criterion(c, f"{where}.criteria[{i}]")
        for i, c in enumerate(_list(doc.get("criteria", []), f"{where}.criteria", True))
    )
    return Rules(
        version=int(version),
        exclusive=groups,
        normal=_str(normal["label"], f"{where}.normal.label") if "label" in normal else None,
        normal_compatible=ids("compatible", normal, f"{where}.normal.compatible"),
        keep_parents=ids("keep_parents", doc, f"{where}.keep_parents"),
        rhythm_labels=ids("rhythm_labels", doc, f"{where}.rhythm_labels"),
        criteria=criteria,
        doc=dict(doc),
    )


def read_rules_doc(path: str | Path | None = None) -> dict:
    """The JSON document: the shipped ``edge/data/findings_rules.json`` or the file at ``path``."""
    if path is None:
        text = (Path(__file__).resolve().parent.parent / "data" / RULES_FILE).read_text(encoding="utf-8")  # beside this package, not importlib.resources (tempfile, shutil, bz2, lzma: 0.5 MiB on the board, #23)
        source = f"edge/data/{RULES_FILE}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise RulesError(f"cannot read rules {path}: {exc.strerror or exc}") from None
        source = str(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RulesError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise RulesError(f"{source}: expected a JSON object")
    return doc


def load_rules(path: str | Path | None = None) -> Rules:
    """Parsed rules from the shipped file (or ``path``)."""
    where = "rules" if path is None else str(path)
    return parse_rules(read_rules_doc(path), where)


def check_manifest_rules(doc: object, where: str = "decision.rules") -> Rules | None:
    """A bundle manifest's rules: parsed (current version), ``None`` for an older version (the runtime then
    uses the shipped rules: a bundle exported before this schema keeps loading), or :class:`RulesError`."""
    version = doc.get("version") if isinstance(doc, Mapping) else None
    if isinstance(version, int) and not isinstance(version, bool) and version < RULES_VERSION:
        return None
    return parse_rules(doc, where)
