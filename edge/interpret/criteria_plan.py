"""The typed criteria compiled once into plain-Python functions: the verdicts of a window, cheap enough for
every window at the bedside (#23 item 5).

:func:`compiled` turns a condition of :mod:`edge.interpret.rules` into a function ``Reading -> True / False /
None`` that gives exactly ``edge.interpret.criteria.evaluate(cond, reading).ok``: the leads, territories,
contiguous runs and thresholds are resolved once per condition object and patient group (sex and whether
the age is under 40, known or not: all :meth:`Threshold.at` reads), each value is read once per window
(:class:`edge.interpret.criteria.Reading` caches it) as a plain float, and no values are collected (a met
criterion is evaluated again with its values for ``why``).

numpy-free: this runs on the bedside device.
"""

from __future__ import annotations

import math

from edge.interpret.criteria import Reading, _runs
from edge.interpret.rules import (
    TERRITORIES,
    AllOf,
    AnyOf,
    Contiguous,
    Global,
    Not,
    PerLead,
    Ratio,
    Sum,
    Threshold,
)

__all__ = ["compiled", "patient_free", "patient_group", "plan", "verdict"]


def verdict(cond: object, rd: Reading) -> bool | None:
    """``evaluate(cond, rd).ok`` (True / False / None), from the condition compiled once (:func:`compiled`)."""
    return compiled(cond, rd.sex, rd.age)(rd.v)


_COMPILED: dict[tuple, tuple[object, object]] = {}


def patient_group(sex: str | None, age: float | None) -> tuple:
    """What :meth:`Threshold.at` reads of the patient: ``(sex "M"/"F"/None, None or age < 40)``."""
    return ("F" if sex == "F" else "M" if sex == "M" else None, None if age is None else age < 40)


def compiled(cond: object, sex: str | None = None, age: float | None = None):
    """``cond`` for a patient of this sex and age as a function of a :class:`Reading`'s values (``rd.v``) ->
    True / False / None; built once per condition object (kept while it lives) and patient group."""
    group = patient_group(sex, age)
    key = (id(cond), group)
    hit = _COMPILED.get(key)
    if hit is not None and hit[0] is cond:
        return hit[1]
    fn = _compile(cond, group[0], None if group[1] is None else 0.0 if group[1] else 40.0)
    if len(_COMPILED) > 8192:  # many rule sets parsed in one process (tests, redecide): start again
        _COMPILED.clear()
    _COMPILED[key] = (cond, fn)
    return fn


_PLANS: dict[tuple, tuple[object, tuple]] = {}


def plan(criteria: tuple, sex: str | None = None, age: float | None = None) -> tuple:
    """:func:`compiled` of each criterion's ``when`` (a :class:`Rules`' ``criteria`` tuple), built once per tuple
    object and patient group: one look-up per window instead of one per criterion."""
    key = (id(criteria), patient_group(sex, age))
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is criteria:
        return hit[1]
    fns = tuple(compiled(c.when, sex, age) for c in criteria)
    if len(_PLANS) > 1024:
        _PLANS.clear()
    _PLANS[key] = (criteria, fns)
    return fns


_FREE: dict[int, tuple[tuple, tuple[bool, ...]]] = {}


def _thresholds_fixed(node: object) -> bool:
    """No :class:`Threshold` in ``node`` (a condition, its ranges, tuples and dicts of them) depends on the patient."""
    if isinstance(node, Threshold):
        return node.value is not None
    if isinstance(node, tuple | list):
        return all(_thresholds_fixed(x) for x in node)
    if isinstance(node, dict):
        return all(_thresholds_fixed(x) for x in node.values())
    fields = getattr(node, "__dataclass_fields__", None)
    return fields is None or all(_thresholds_fixed(getattr(node, f)) for f in fields)


def patient_free(criteria: tuple) -> tuple[bool, ...]:
    """Per criterion of a :class:`Rules`' ``criteria`` tuple: its verdict is the same for every sex and age (every
    threshold of its ``when`` a plain number), so one reading serves every patient group; built once per tuple."""
    hit = _FREE.get(id(criteria))
    if hit is not None and hit[0] is criteria:
        return hit[1]
    flags = tuple(_thresholds_fixed(c.when) for c in criteria)
    if len(_FREE) > 64:
        _FREE.clear()
    _FREE[id(criteria)] = (criteria, flags)
    return flags


def _at(t: Threshold | None, sex: str | None, age: float | None) -> float | None:
    return None if t is None else float(t.at(sex, age))


def _lead_items(lead: str, tests, sex, age, lead_min: Threshold | None = None) -> tuple:
    """One lead's tests: ``((lead, key), min, max)``, the first test's minimum the lead's own where given."""
    return tuple(
        (
            (lead, rng.key),
            _at(lead_min if i == 0 and lead_min is not None else rng.min, sex, age),
            _at(rng.max, sex, age),
        )
        for i, rng in enumerate(tests)
    )


def _lead_oks(per: tuple, vals) -> list:
    """Per lead: False if a test fails, else None if a value is unknown, else True (``_lead_test``)."""
    oks = []
    for items in per:
        ok = True
        for k, lo, hi in items:
            v = vals[k]
            if v is None:
                ok = None
            elif not ((lo is None or v >= lo) and (hi is None or v < hi)):
                ok = False
                break
        oks.append(ok)
    return oks


def _compile(cond: object, sex: str | None, age: float | None):
    if isinstance(cond, Global):
        key, lo, hi = cond.range.key, _at(cond.range.min, sex, age), _at(cond.range.max, sex, age)

        def one_global(vals):
            v = vals[key]
            return None if v is None else (lo is None or v >= lo) and (hi is None or v < hi)

        return one_global
    if isinstance(cond, AllOf | AnyOf):
        parts = tuple(_compile(p, sex, age) for p in cond.parts)
        stop, other = (False, True) if isinstance(cond, AllOf) else (True, False)

        def combined(vals):
            out = other
            for part in parts:
                ok = part(vals)
                if ok is stop:
                    return stop
                if ok is None:
                    out = None
            return out

        return combined
    if isinstance(cond, Not):
        inner = _compile(cond.part, sex, age)

        def negated(vals):
            ok = inner(vals)
            return None if ok is None else not ok

        return negated
    if isinstance(cond, PerLead):
        per = tuple(_lead_items(lead, cond.tests, sex, age) for lead in cond.leads)
        if cond.count in ("all", "any"):
            stop, other = (False, True) if cond.count == "all" else (True, False)

            def counted(vals):
                out = other
                for ok in _lead_oks(per, vals):
                    if ok is stop:
                        return stop
                    if ok is None:
                        out = None
                return out

            return counted
        n = int(cond.count)

        def at_least(vals):
            oks = _lead_oks(per, vals)
            met = oks.count(True)
            return True if met >= n else (False if met + oks.count(None) < n else None)

        return at_least
    if isinstance(cond, Contiguous):
        leads = TERRITORIES[cond.territory]
        lead_min = dict(cond.lead_min)
        per = tuple(_lead_items(lead, cond.tests, sex, age, lead_min.get(lead)) for lead in leads)
        pos = {lead: i for i, lead in enumerate(leads)}
        runs = tuple(tuple(pos[x] for x in run) for run in _runs(cond.territory, cond.n)) or tuple(
            (i,) for i in range(len(leads))
        )

        def contiguous(vals):
            oks = _lead_oks(per, vals)
            out = False
            for run in runs:  # _any over the runs of _all over their leads
                run_ok = True
                for i in run:
                    if oks[i] is False:
                        run_ok = False
                        break
                    if oks[i] is None:
                        run_ok = None
                if run_ok is True:
                    return True
                if run_ok is None:
                    out = None
            return out

        return contiguous
    if isinstance(cond, Sum | Ratio):
        terms = cond.terms if isinstance(cond, Sum) else (cond.num, cond.den)
        lo, hi, is_sum = _at(cond.min, sex, age), _at(cond.max, sex, age), isinstance(cond, Sum)

        def combined_value(vals):
            got = [vals[t] for t in terms]
            if None in got:
                return None
            if is_sum:
                v = sum(got)
            else:
                v = got[0] / got[1] if got[1] > 1e-6 else (math.inf if got[0] > 1e-6 else 0.0)
            return (lo is None or v >= lo) and (hi is None or v < hi)

        return combined_value
    raise TypeError(f"not a condition: {cond!r}")
