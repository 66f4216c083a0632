"""The decision of one window: what the display states, and why (DESIGN.md contract 8, contract 5 v3).

:func:`decide` takes the model's cosine scores and thresholds, the window's measurements (contract 7 v2),
its rhythm analysis (:func:`edge.interpret.rhythm.analyse_rhythm`), its quality report and, where known, the
patient's sex and age, and returns a :class:`Decision`:

1. **rhythm**: the rhythm statement and its modifiers, ``why.by = "rhythm"``; the labels the rules name in
   ``rhythm_labels`` come from nowhere else while a rhythm analysis is given;
2. **criteria** (:mod:`edge.interpret.rules`, each naming its source): a label whose criterion is met is
   stated (``why.by = "criteria"`` with the rule, the source and the values read); a label whose criteria
   clearly fail is never stated; a criterion whose ``not_with`` label is present (ST in left bundle branch
   block, voltage in pre-excitation) is not read and its label is withheld with that reason;
3. **the model**: other labels at or above their threshold (``why.by = "model"``), only where no criterion
   vetoes them; never-trained labels stated by the model alone are listed apart (``zero_shot_findings``);
4. **quality**: leads the window was not read from, or that an inconsistency makes unreliable, are blanked
   (:func:`edge.interpret.criteria.mask`); a statement whose criterion needs them is withheld with the reason;
5. **consistency**: exclusive groups, normal only when nothing else, no parent beside its child
   (:class:`edge.interpret.findings.FindingRules`); last, a statement that the window's own measurements
   contradict (:func:`edge.interpret.criteria_check.contradictions`: PR, QRS, axis, rate, P wave) is withheld
   with the reason, whoever made it. The rhythm analysis's statement arrives already checked: a contradicted
   one is "undetermined" naming the contradiction (:func:`edge.interpret.rhythm.consistent`); this guard
   catches the criteria's and the model's statements (the model's rhythm labels where no rhythm is given).

Findings are ordered: the rhythm statement, then alarms (ST elevation), then the rest by score. ``alarms``
lists each alarm with its territory, leads and reciprocal change, for the views to show first.

numpy and the standard library only (device code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.interpret.criteria import Reading, Verdict, condition_leads, evaluate, mask
from edge.interpret.criteria_check import contradictions
from edge.interpret.criteria_plan import patient_free, patient_group, plan
from edge.interpret.findings import NOT_READ, FindingRules
from edge.interpret.rules import Criterion
from edge.interpret.why import BY_CRITERIA, BY_MODEL, BY_RHYTHM, Why

__all__ = ["Decision", "decide", "patient_of"]

_LEAD_ORDER = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

_TERRITORY_JA = {
    "inferior": "下壁", "lateral": "側壁", "septal": "中隔", "anterior": "前壁", "anterolateral": "前側壁",
    "limb": "肢誘導", "chest": "胸部誘導", "all": "",
}  # fmt: skip


@dataclass
class Decision:
    """What one window states (contract 5 v3): ``findings`` (validated labels, rhythm first, alarms next),
    ``why`` per stated id (``zero_shot_findings`` included), ``zero_shot_findings`` (never-trained labels
    stated by the model), ``withheld`` (id -> reason in Japanese: a statement that could not be read),
    ``removed`` (id -> the rule that removed an above-threshold label) and ``alarms``
    (``[{"id", "territory", "territory_ja", "leads", "reciprocal", "reciprocal_leads"}]``)."""

    findings: list[str] = field(default_factory=list)
    why: dict[str, Why] = field(default_factory=dict)
    zero_shot_findings: list[str] = field(default_factory=list)
    withheld: dict[str, str] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    alarms: list[dict] = field(default_factory=list)
    # each criterion's verdict (``rules.parsed.criteria`` order, ``NOT_READ`` where not evaluated or where a sex/age
    # threshold moves it) when nothing is blanked: the ranking's (``FindingRules.adjust``) without sex and age
    criteria_oks: list | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        return {
            "findings": list(self.findings),
            "zero_shot_findings": list(self.zero_shot_findings),
            "why": {k: w.to_json() for k, w in self.why.items()},
            "withheld": dict(self.withheld),
            "alarms": [dict(a) for a in self.alarms],
        }


_NOT_WITH: dict[int, tuple[tuple, dict[int, frozenset]]] = {}


def _not_with_sets(criteria: tuple) -> dict[int, frozenset]:
    """``id(criterion) -> frozenset(criterion.not_with)`` of a rules' ``criteria`` tuple, built once per tuple."""
    hit = _NOT_WITH.get(id(criteria))
    if hit is not None and hit[0] is criteria:
        return hit[1]
    sets = {id(c): frozenset(c.not_with or ()) for c in criteria}
    if len(_NOT_WITH) > 64:
        _NOT_WITH.clear()
    _NOT_WITH[id(criteria)] = (criteria, sets)
    return sets


def patient_of(patient: Mapping | None) -> tuple[str | None, float | None]:
    """``(sex "M"/"F"/None, age in years/None)`` from ``{"sex": ..., "age": ...}`` (M/F, male/female, 男/女)."""
    if not patient:
        return None, None
    raw = str(patient.get("sex") or "").strip().lower()
    sex = (
        "M"
        if raw in ("m", "male", "man", "男", "男性")
        else "F"
        if raw in ("f", "female", "woman", "女", "女性")
        else None
    )
    age = patient.get("age")
    try:
        age = None if age is None or isinstance(age, bool) else float(age)
    except (TypeError, ValueError):
        age = None
    return sex, age if age is None or 0 <= age <= 130 else None


def _rhythm_parts(rhythm: Any) -> tuple[list[str], Why | None, str]:
    """The rhythm analysis' stated ids, its why and its reason (a ``Rhythm`` or its JSON)."""
    if rhythm is None:
        return [], None, ""
    if isinstance(rhythm, Mapping):
        statement = rhythm.get("statement")
        ids = ([statement] if statement and statement != "undetermined" else []) + list(
            rhythm.get("modifiers") or []
        )
        reason = str(rhythm.get("reason") or "")
        return ids, Why(BY_RHYTHM, rule=reason or statement, values=dict(rhythm.get("values") or {})), reason
    why = (
        rhythm.why() if callable(getattr(rhythm, "why", None)) else Why(BY_RHYTHM, rule=str(rhythm.statement))
    )
    return list(rhythm.ids), why, str(getattr(rhythm, "reason", "") or "")


def _r6(x: float) -> float:
    """Scores in ``why`` to 6 decimals: the same window read twice gives the same ``why``."""
    return round(float(x), 6)


def _criterion_why(c: Criterion, v: Verdict, score: float, threshold: float) -> Why:
    values = v.values
    if v.leads:  # per-lead criteria: the values of the leads where it was met, and the global values read
        values = {k: x for k, x in values.items() if "." not in k or k.split(".")[0] in v.leads}
    thr = None if not np.isfinite(threshold) else threshold
    return Why(BY_CRITERIA, rule=c.name, source=c.source, values=values, score=score, threshold=thr)


def decide(
    rules: FindingRules,
    scores: np.ndarray,
    thresholds: np.ndarray,
    measurements: Mapping | None = None,
    rhythm: Any = None,
    quality: Mapping | None = None,
    patient: Mapping | None = None,
    zero_shot: Sequence[bool] | None = None,
    labels_ja: Mapping[str, str] | None = None,
) -> Decision:
    """The statements of one window (see the module docstring).

    ``rules``: the rules bound to the bundle's labels; ``scores``/``thresholds``: per label, in the bundle's
    row order; ``rhythm``: an :class:`edge.interpret.rhythm.Rhythm` (or its JSON), or None (then the rhythm
    labels are decided like the others); ``quality``: the window's report (``usable_leads``,
    ``inconsistent``); ``patient``: ``{"sex", "age"}`` if known; ``zero_shot``: per label, never trained;
    ``labels_ja``: id -> Japanese name, for the reasons.
    """
    scores = np.asarray(scores, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    ids, index = rules.ids, rules.index
    ja = labels_ja or {}
    sex, age = patient_of(patient)
    m, blanked = mask(measurements, quality)
    have_m = bool(measurements)

    rhythm_ids, rhythm_why, _ = _rhythm_parts(rhythm)
    rhythm_ids = [r for r in rhythm_ids if r in index]
    owned = {ids[i] for i in rules.rhythm_labels} if rhythm is not None else set()

    # 1. every criterion's verdict (the rhythm's own labels are not re-decided while an analysis is given)
    evals: list[tuple[Criterion, Verdict]] = []
    if have_m:
        reading = Reading(
            m, sex, age, values=False
        )  # one reading of the window: the criteria share its values
        with_values = Reading(m, sex, age)
        vals = reading.v
        oks = [NOT_READ] * len(rules.parsed.criteria)
        for k, (c, fn) in enumerate(zip(rules.parsed.criteria, plan(rules.parsed.criteria, sex, age), strict=True)):
            if c.label in index and c.label not in owned:
                ok = oks[k] = fn(vals)  # the verdict alone (compiled once); the values only for a met criterion
                evals.append((c, evaluate(c.when, with_values) if ok and c.mode != "veto" else Verdict(ok)))
        if blanked:
            shared_oks = None
        elif patient_group(sex, age) == patient_group(None, None):
            shared_oks = oks
        else:  # a known patient: the verdicts whose thresholds are the same for everyone
            free = patient_free(rules.parsed.criteria)
            shared_oks = [ok if free[k] else NOT_READ for k, ok in enumerate(oks)]
    else:
        shared_oks = None
    above = {ids[i] for i in np.flatnonzero(scores >= thresholds)}  # NaN thresholds never fire

    def vetoed(label: str, items) -> bool:
        return any(
            c.mode == "veto" and (v.ok is False or (v.ok is None and c.unmeasured_veto)) for c, v in items
        )

    by_label: dict[str, list[tuple[Criterion, Verdict]]] = {}
    for c, v in evals:
        by_label.setdefault(c.label, []).append((c, v))
    with_not_with = {c.label for c, _ in evals if c.not_with}
    not_with = _not_with_sets(rules.parsed.criteria)  # id(criterion) -> its not_with labels

    def judge(label: str, items: list, live: list, blockers: list[str], pool: set[str], out: Decision) -> tuple:
        """One label's outcome ``(why, forced, removed reason, withheld reason)`` from its criteria still read
        (``live``); a met alarm criterion adds its alarm to ``out.alarms``."""
        i = index[label]
        if vetoed(label, live):
            return None, False, "measurement" if label in above else None, None
        met = [(c, v) for c, v in live if c.mode != "veto" and v.ok]
        if met:
            return _met_why(met, out, m, sex, age, _r6(scores[i]), _r6(thresholds[i])), True, None, None
        decide_items = [(c, v) for c, v in live if c.mode == "decide"]
        if decide_items and all(v.ok is False or (v.ok is None and c.unmeasured_veto) for c, v in decide_items):
            return None, False, "measurement" if label in above else None, None
        wanted = label in above or any(c.alarm for c, _ in items)
        if blockers and wanted and not live:
            named = [x for x in sorted(pool) if x in stated_first and (x in blockers or fam(x) & set(blockers))]
            return None, False, None, "、".join(ja.get(b, b) for b in named or blockers) + "があるため判定しない"
        unknown = (
            sorted({x for c, v in live if v.ok is None for x in condition_leads(c.when) if x in blanked})
            if blanked and wanted
            else []
        )
        if unknown and wanted:
            return None, False, None, "判定に必要な誘導が使えない: " + ", ".join(blanked[x] for x in unknown)
        if label in above and label not in owned:
            return Why(BY_MODEL, score=_r6(scores[i]), threshold=_r6(thresholds[i])), False, None, None
        return None, False, None, None

    same: dict[str, tuple] = {}  # label -> (outcome, alarms) of a label no not_with touches: alike in both passes

    def run(pool: set[str]) -> tuple[Decision, dict[str, Why], list[str]]:
        """One pass: criteria (not read beside a ``not_with`` label in ``pool``), the model, the rhythm, then
        the structural rules. The first pass has an empty pool; the second uses the first pass' statements,
        so a criterion is set aside only by a label that is actually stated."""
        out = Decision()
        stated: dict[str, Why] = {}
        forced: set[str] = set()
        for label, items in by_label.items():
            if pool and label in with_not_with and any(not_with[id(c)] & pool for c, _ in items):
                blocked = [sorted(not_with[id(c)] & (pool - {label})) for c, _ in items]
                live = [(c, v) for (c, v), blk in zip(items, blocked, strict=True) if not blk]
                blockers = sorted({b for blk in blocked for b in blk})
                outcome = judge(label, items, live, blockers, pool, out)
            elif label in same:  # nothing sets these criteria aside: the first pass' outcome again
                outcome, alarms = same[label]
                out.alarms.extend(alarms)
            else:
                k = len(out.alarms)
                outcome = judge(label, items, items, [], pool, out)
                same[label] = (outcome, out.alarms[k:])
            why, is_forced, removed, withheld = outcome
            if removed is not None:
                out.removed[label] = removed
            elif withheld is not None:
                out.withheld[label] = withheld
            elif why is not None:
                stated[label] = why
                if is_forced:
                    forced.add(label)
        for label in above - set(by_label) - owned:  # the model's labels that no criterion defines
            i = index[label]
            stated[label] = Why(BY_MODEL, score=_r6(scores[i]), threshold=_r6(thresholds[i]))
        for label in rhythm_ids:
            stated[label] = rhythm.why(label) if callable(getattr(rhythm, "why", None)) else rhythm_why
            forced.add(label)
        resolved = rules.resolve({index[x] for x in stated}, scores, {index[x] for x in forced})
        for i, why in resolved.removed.items():
            out.removed.setdefault(ids[i], why)
        return out, stated, [ids[i] for i in resolved.kept]

    def fam(x: str) -> set[str]:
        return {ids[a] for a in rules.ancestors[index[x]]}

    stated_first: set[str] = set()
    _, _, first = run(set())
    stated_first = set(first)
    pool = set(first).union(*(fam(x) for x in first))  # a not_with "LBBB" is met by 完全左脚ブロック too
    out, stated, kept = run(pool)
    # ST depression only in the reciprocal leads of a stated ST elevation is part of that statement (its why)
    recip = {x for a in out.alarms if a["id"] in kept for x in a.get("reciprocal_leads") or []}
    for lid in ("STD",):
        leads = {k.split(".")[0] for k in (stated[lid].values if lid in kept else {}) if "." in k}
        if lid in kept and stated[lid].by == BY_CRITERIA and leads and leads <= recip:
            kept.remove(lid)
            out.removed[lid] = "reciprocal"
    # 5. the last guard (contract 8.4): a statement its own window's measurements contradict is withheld
    #    (e.g. the model's complete right bundle branch block where the measured QRS is < 110 ms); the rhythm
    #    analysis's statement arrives already checked: contradicted, it is "undetermined" (rhythm.consistent)
    if have_m:
        for lid, problem in contradictions(kept, measurements):
            kept.remove(lid)
            out.withheld[lid] = f"計測値と矛盾するため保留 ({problem})"
    alarm_ids = {a["id"] for a in out.alarms}
    out.alarms = [a for a in out.alarms if a["id"] in kept]
    order = {x: k for k, x in enumerate(rhythm_ids)}
    kept.sort(
        key=lambda x: (0 if x in order else 1 if x in alarm_ids else 2, order.get(x, 0), -scores[index[x]])
    )
    out.criteria_oks = shared_oks
    zs = list(zero_shot) if zero_shot is not None else [False] * len(ids)
    for x in kept:
        (out.zero_shot_findings if zs[index[x]] and stated[x].by == BY_MODEL else out.findings).append(x)
        out.why[x] = stated[x]
    return out


def _met_why(met, out: Decision, m: Mapping, sex, age, score: float, threshold: float) -> Why:
    """The ``why`` of a label whose criteria are met (several territories: one why naming them all); alarms
    go to ``out.alarms`` with their territory and reciprocal change (also reported in the why's values)."""
    c, v = met[0]
    values = dict(_criterion_why(c, v, score, threshold).values)
    for c2, v2 in met[1:]:
        values.update(_criterion_why(c2, v2, score, threshold).values)
    for c2, v2 in met:
        if c2.alarm:
            alarm = _alarm(c2, v2, m, sex, age)
            out.alarms.append(alarm)
            if alarm["reciprocal"] is not None:  # reciprocal ST depression, reported beside the rule
                values["reciprocal_st_depression"] = bool(
                    alarm["reciprocal"] or values.get("reciprocal_st_depression")
                )
    thr = threshold if np.isfinite(threshold) else None
    rule = "; ".join(c2.name for c2, _ in met)
    return Why(BY_CRITERIA, rule=rule, source=c.source, values=values, score=score, threshold=thr)


def _alarm(c: Criterion, v: Verdict, m: Mapping, sex: str | None, age: float | None) -> dict:
    recip = evaluate(c.reciprocal, m, sex, age) if c.reciprocal is not None else None
    return {
        "id": c.label,
        "territory": c.territory,
        "territory_ja": _TERRITORY_JA.get(c.territory or "", ""),
        "leads": sorted(v.leads, key=_LEAD_ORDER.index),
        "reciprocal": None if recip is None else recip.ok,
        "reciprocal_leads": [] if recip is None else sorted(recip.leads, key=_LEAD_ORDER.index),
    }
