"""Evaluating the typed criteria of :mod:`edge.interpret.rules` on one window's measurements.

A condition gives a :class:`Verdict`: ``True`` (met), ``False`` (clearly not met) or ``None`` (a value it
needs was not measured), with the values it read (``"qrs_ms"``, ``"V1.r2_mv"``; mV, ms, bpm, degrees) and the
leads where a per-lead test was met. Per-lead values come from the contract 7 v2 matrix
``measurements["leads"][lead][key]``; depths (``q_mv``, ``s_mv``, ``s2_mv``, ``p_neg_mv``, ``t_neg_mv``) are
read as magnitudes whatever their sign; three values are derived: ``qrs_pp_mv`` (peak-to-peak QRS,
max(R, R') + max(Q, S, S')), ``rs_ratio`` (R over the deepest negative deflection, Q or S, so a QS complex
counts as S-dominant; an R without either has an infinite ratio) and ``qr_ratio`` (Q / R).

Contiguity (AHA-VI, Wagner et al. 2009): leads are contiguous when neighbours in the frontal Cabrera order
aVL, I, −aVR, II, aVF, III or in V1..V6; −aVR belongs to no territory, so I and II are not contiguous.

Quality (DESIGN.md contract 5 v3): :func:`mask` blanks the leads a window was not read from and those an
inconsistency makes unreliable, so a criterion that needs them is unknown (and its statement withheld).

numpy-free: this runs on the bedside device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from edge.interpret.rules import (
    TERRITORIES,
    AllOf,
    AnyOf,
    Contiguous,
    Global,
    Not,
    PerLead,
    Range,
    Ratio,
    Sum,
    Threshold,
)

__all__ = ["Verdict", "Reading", "evaluate", "condition_leads", "mask", "CABRERA", "CHEST", "LIMB_LEADS"]

CABRERA = ("aVL", "I", "-aVR", "II", "aVF", "III")
CHEST = ("V1", "V2", "V3", "V4", "V5", "V6")
LIMB_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF")
MAGNITUDES = frozenset({"q_mv", "s_mv", "s2_mv", "p_neg_mv", "t_neg_mv"})
# global values that read the limb leads (withheld with them)
LIMB_GLOBALS = ("axis_deg", "p_axis_deg", "t_axis_deg", "limb_qrs_max_mv", "ravl_mv")
AMPLITUDE_GLOBALS = ("sv1_mv", "rv5_mv", "rv6_mv", "sv1_rv5_mv", "ravl_mv", "sv3_mv", "limb_qrs_max_mv",
                     "chest_qrs_max_mv", "ptf_v1")  # fmt: skip


@dataclass
class Verdict:
    """``ok``: True / False / None (unknown); ``values`` read; ``leads`` where a per-lead test was met."""

    ok: bool | None
    values: dict = field(default_factory=dict)
    leads: list[str] = field(default_factory=list)


def _r(v: float) -> float:
    return v if math.isinf(v) else round(float(v), 3)


class _Values(dict):
    """One window's values as the criteria read them: ``(lead, key)`` -> per-lead value, ``key`` -> global
    value (None: not measured), each read from the measurements on first use."""

    __slots__ = ("rd",)

    def __init__(self, rd: Reading) -> None:
        super().__init__()
        self.rd = rd

    def __missing__(self, k):
        v = self.rd._lead(*k) if k.__class__ is tuple else self.rd.glob(k)
        self[k] = v
        return v


class Reading:
    """One window's measurements as the criteria read them (values cached: many criteria read the same lead),
    with the patient's sex and age. :func:`evaluate` takes one, or a measurements dict."""

    def __init__(
        self, m: Mapping, sex: str | None = None, age: float | None = None, values: bool = True
    ) -> None:
        self.m, self.sex, self.age = m, sex, age
        self.collect = values  # False: verdicts only (faster); the values are read again for a met criterion
        self.leads = m.get("leads") if isinstance(m.get("leads"), Mapping) else {}
        self.v = _Values(self)  # (lead, key) or global key -> value, read once (the compiled criteria index it)

    def lead(self, lead: str, key: str) -> float | None:
        return self.v[(lead, key)]

    def glob(self, key: str) -> float | None:
        v = self.m.get(key)
        if v.__class__ is float:
            return abs(v) if key == "ptf_v1" else v
        if v is None or isinstance(v, dict | list | str):
            return None
        return abs(float(v)) if key == "ptf_v1" else float(v)  # bools (p_present) read as 0/1

    def _lead(self, lead: str, key: str) -> float | None:
        row = self.leads.get(lead)
        if row.__class__ is not dict and not isinstance(row, Mapping):
            return None
        if key == "qrs_pp_mv":
            r = [self.lead(lead, k) for k in ("r_mv", "r2_mv")]
            s = [self.lead(lead, k) for k in ("q_mv", "s_mv", "s2_mv")]
            if r[0] is None or s[1] is None:
                return None
            return max(x for x in r if x is not None) + max(x for x in s if x is not None)
        if key in ("rs_ratio", "qr_ratio"):
            r, q, s = self.lead(lead, "r_mv"), self.lead(lead, "q_mv"), self.lead(lead, "s_mv")
            if r is None or (q is None and s is None):
                return None
            if key == "qr_ratio":
                return None if q is None else (q / r if r > 1e-6 else math.inf)
            neg = max(x for x in (q, s) if x is not None)  # the deepest negative deflection (QS: the Q)
            return r / neg if neg > 1e-6 else (math.inf if r > 1e-6 else 0.0)
        v = row.get(key)
        if v.__class__ is float:  # the common case, as float(v) reads it
            return abs(v) if key in MAGNITUDES else v
        if v is None or isinstance(v, bool | dict | list | str):
            return None
        return abs(float(v)) if key in MAGNITUDES else float(v)

    def within(self, v: float | None, rng: Range, lo: Threshold | None = None) -> bool | None:
        if v is None:
            return None
        lo = rng.min if lo is None else lo
        if lo is not None and not v >= lo.at(self.sex, self.age):
            return False
        return not (rng.max is not None and not v < rng.max.at(self.sex, self.age))


def _all(vs: Sequence[bool | None]) -> bool | None:
    return False if False in vs else (None if None in vs else True)


def _any(vs: Sequence[bool | None]) -> bool | None:
    return True if True in vs else (None if None in vs else False)


def _lead_test(rd: Reading, lead: str, tests, values: dict, lead_min: dict | None = None) -> bool | None:
    out = []
    for i, rng in enumerate(tests):
        v = rd.lead(lead, rng.key)
        if v is not None and rd.collect:
            values[f"{lead}.{rng.key}"] = _r(v)
        out.append(rd.within(v, rng, (lead_min or {}).get(lead) if i == 0 else None))
    return _all(out)


@lru_cache(maxsize=64)
def _runs(territory: str, n: int) -> tuple[tuple[str, ...], ...]:
    """Runs of ``n`` contiguous leads inside a territory."""
    members = set(TERRITORIES[territory])
    runs = []
    for seq in (CABRERA, CHEST):
        for i in range(len(seq) - n + 1):
            run = seq[i : i + n]
            if all(x in members for x in run):
                runs.append(run)
    return tuple(runs)


def evaluate(cond: object, m: Mapping | Reading, sex: str | None = None, age: float | None = None) -> Verdict:
    """The verdict of one condition on a measurements dict (``sex`` ``"M"``/``"F"``/None, ``age`` years), or on
    a :class:`Reading` (which carries them) when several conditions read the same window."""
    return _eval(cond, m if isinstance(m, Reading) else Reading(m or {}, sex, age))


def _eval(cond: object, rd: Reading) -> Verdict:
    if isinstance(cond, Global):
        v = rd.glob(cond.range.key)
        return Verdict(
            rd.within(v, cond.range), {} if v is None or not rd.collect else {cond.range.key: _r(v)}
        )
    if isinstance(cond, AllOf | AnyOf):
        parts = [_eval(p, rd) for p in cond.parts]
        ok = (_all if isinstance(cond, AllOf) else _any)([p.ok for p in parts])
        values, leads = {}, []
        for p in parts:
            values.update(p.values)
            leads += [x for x in p.leads if x not in leads]
        return Verdict(ok, values, leads)
    if isinstance(cond, Not):
        inner = _eval(cond.part, rd)
        return Verdict(None if inner.ok is None else not inner.ok, inner.values, [])
    if isinstance(cond, PerLead):
        values: dict = {}
        per = {lead: _lead_test(rd, lead, cond.tests, values) for lead in cond.leads}
        met = [lead for lead, ok in per.items() if ok]
        vs = list(per.values())
        if cond.count == "all":
            ok = _all(vs)
        elif cond.count == "any":
            ok = _any(vs)
        else:
            n = int(cond.count)
            ok = True if len(met) >= n else (False if len(met) + vs.count(None) < n else None)
        return Verdict(ok, values, met)
    if isinstance(cond, Contiguous):
        values = {}
        lead_min = dict(cond.lead_min)
        per = {
            lead: _lead_test(rd, lead, cond.tests, values, lead_min) for lead in TERRITORIES[cond.territory]
        }
        runs = _runs(cond.territory, cond.n) or tuple((lead,) for lead in per)
        verdicts = [_all([per[x] for x in run]) for run in runs]
        met = [x for run, ok in zip(runs, verdicts, strict=True) if ok for x in run]
        return Verdict(_any(verdicts), values, list(dict.fromkeys(met)))
    if isinstance(cond, Sum | Ratio):
        terms = cond.terms if isinstance(cond, Sum) else (cond.num, cond.den)
        got = [rd.lead(lead, key) for lead, key in terms]
        values = {f"{lead}.{key}": _r(v) for (lead, key), v in zip(terms, got, strict=True) if v is not None}
        if None in got:
            return Verdict(None, values)
        if isinstance(cond, Sum):
            v = sum(got)
        else:
            v = got[0] / got[1] if got[1] > 1e-6 else (math.inf if got[0] > 1e-6 else 0.0)
        name = "+".join(f"{lead}.{key}" for lead, key in terms) if isinstance(cond, Sum) else "/".join(values)
        values[name] = _r(v)
        return Verdict(rd.within(v, Range("", cond.min, cond.max)), values)
    raise TypeError(f"not a condition: {cond!r}")


def condition_leads(cond: object) -> set[str]:
    """The leads a condition reads (global values: the leads they are measured from, where known)."""
    if isinstance(cond, Global):
        return set(LIMB_LEADS) if cond.range.key in LIMB_GLOBALS else set()
    if isinstance(cond, AllOf | AnyOf):
        return set().union(*(condition_leads(p) for p in cond.parts))
    if isinstance(cond, Not):
        return condition_leads(cond.part)
    if isinstance(cond, PerLead):
        return set(cond.leads)
    if isinstance(cond, Contiguous):
        return set(TERRITORIES[cond.territory])
    if isinstance(cond, Sum):
        return {lead for lead, _ in cond.terms}
    if isinstance(cond, Ratio):
        return {cond.num[0], cond.den[0]}
    return set()


# inconsistency code (edge.dsp.quality) -> leads it makes unreliable
_INCONSISTENT = {
    "einthoven": LIMB_LEADS,
    "goldberger": LIMB_LEADS,
    "limb_reversal": LIMB_LEADS,
}


def mask(measurements: Mapping | None, quality: Mapping | None) -> tuple[dict, dict[str, str]]:
    """``(measurements, blanked)``: the leads not usable or made unreliable by an inconsistency are blanked
    (their per-lead values and the global values read from them); ``blanked`` maps lead -> reason (Japanese).
    A ``scale`` inconsistency blanks every amplitude (voltage and ST criteria cannot be read)."""
    m = dict(measurements or {})
    if not quality:
        return m, {}
    blanked: dict[str, str] = {}
    usable = quality.get("usable_leads")
    if isinstance(usable, list | tuple):
        for lead in LIMB_LEADS + CHEST:
            if lead not in usable:
                blanked[lead] = f"{lead}誘導が使えない"
    codes = [str(c) for c in (quality.get("inconsistent") or [])]
    for code in codes:
        for lead in _INCONSISTENT.get(code, ()):
            blanked.setdefault(lead, f"{lead}誘導の整合性なし({code})")
    leads = m.get("leads") if isinstance(m.get("leads"), Mapping) else None
    if leads is not None and blanked:
        m["leads"] = {k: v for k, v in leads.items() if k not in blanked}
    if any(x in blanked for x in LIMB_LEADS):
        for key in LIMB_GLOBALS:
            m[key] = None
    if "scale" in codes:
        for key in AMPLITUDE_GLOBALS:
            m[key] = None
        if isinstance(m.get("leads"), Mapping):
            m["leads"] = {}
        for lead in LIMB_LEADS + CHEST:
            blanked.setdefault(lead, "振幅の整合性なし(scale)")
    return m, blanked
