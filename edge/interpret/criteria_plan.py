"""The typed criteria compiled once into plain-Python functions: the verdicts of a window, cheap enough for
every window at the bedside (#23 item 5).

:func:`compiled` turns a condition of :mod:`edge.interpret.rules` into a function ``Reading -> True / False /
None`` that gives exactly ``edge.interpret.criteria.evaluate(cond, reading).ok``: the leads, territories,
contiguous runs and fixed thresholds are resolved once per condition object, each value is read once per
window (:class:`edge.interpret.criteria.Reading` caches it) as a plain float, and no values are collected
(a met criterion is evaluated again with its values for ``why``). Thresholds by sex/age are read at each call.

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

__all__ = ["compiled", "verdict"]


def verdict(cond: object, rd: Reading) -> bool | None:
    """``evaluate(cond, rd).ok`` (True / False / None), from the condition compiled once (:func:`compiled`)."""
    return compiled(cond)(rd)


_COMPILED: dict[int, tuple[object, object]] = {}


def compiled(cond: object):
    """``cond`` as a function ``Reading -> True / False / None``: leads, territories, runs and fixed thresholds
    resolved once per condition object (kept while the object lives), plain floats at each call."""
    hit = _COMPILED.get(id(cond))
    if hit is not None and hit[0] is cond:
        return hit[1]
    fn = _compile(cond)
    if len(_COMPILED) > 4096:  # many rule sets parsed in one process (tests, redecide): start again
        _COMPILED.clear()
    _COMPILED[id(cond)] = (cond, fn)
    return fn


def _test(lo_t: Threshold | None, hi_t: Threshold | None):
    """``Reading.within`` for one range: ``(value, reading) -> True / False / None``."""
    if (lo_t is None or lo_t.value is not None) and (hi_t is None or hi_t.value is not None):
        lo = None if lo_t is None else lo_t.value
        hi = None if hi_t is None else hi_t.value

        def fixed(v, rd):
            if v is None:
                return None
            if lo is not None and not v >= lo:
                return False
            return hi is None or v < hi

        return fixed

    def by_patient(v, rd):
        if v is None:
            return None
        if lo_t is not None and not v >= lo_t.at(rd.sex, rd.age):
            return False
        return hi_t is None or v < hi_t.at(rd.sex, rd.age)

    return by_patient


def _lead_fn(lead: str, tests, lead_min=None):
    """``_lead_test`` of one lead: False if a test fails, else None if one is unknown, else True."""
    items = tuple(
        ((lead, rng.key), _test(lead_min if i == 0 and lead_min is not None else rng.min, rng.max))
        for i, rng in enumerate(tests)
    )

    def one(rd):
        vals, out = rd.v, True
        for k, test in items:
            ok = test(vals[k], rd)
            if ok is False:
                return False
            if ok is None:
                out = None
        return out

    return one


def _compile(cond: object):
    if isinstance(cond, Global):
        key, test = cond.range.key, _test(cond.range.min, cond.range.max)
        return lambda rd: test(rd.v[key], rd)
    if isinstance(cond, AllOf | AnyOf):
        parts = tuple(compiled(p) for p in cond.parts)
        stop, other = (False, True) if isinstance(cond, AllOf) else (True, False)

        def combined(rd):
            out = other
            for part in parts:
                ok = part(rd)
                if ok is stop:
                    return stop
                if ok is None:
                    out = None
            return out

        return combined
    if isinstance(cond, Not):
        inner = compiled(cond.part)

        def negated(rd):
            ok = inner(rd)
            return None if ok is None else not ok

        return negated
    if isinstance(cond, PerLead):
        per = tuple(_lead_fn(lead, cond.tests) for lead in cond.leads)
        if cond.count in ("all", "any"):
            stop, other = (False, True) if cond.count == "all" else (True, False)

            def counted(rd):
                out = other
                for one in per:
                    ok = one(rd)
                    if ok is stop:
                        return stop
                    if ok is None:
                        out = None
                return out

            return counted
        n = int(cond.count)

        def at_least(rd):
            oks = [one(rd) for one in per]
            met = oks.count(True)
            return True if met >= n else (False if met + oks.count(None) < n else None)

        return at_least
    if isinstance(cond, Contiguous):
        leads = TERRITORIES[cond.territory]
        lead_min = dict(cond.lead_min)
        per = tuple(_lead_fn(lead, cond.tests, lead_min.get(lead)) for lead in leads)
        pos = {lead: i for i, lead in enumerate(leads)}
        runs = tuple(tuple(pos[x] for x in run) for run in _runs(cond.territory, cond.n)) or tuple(
            (i,) for i in range(len(leads))
        )

        def contiguous(rd):
            oks = [one(rd) for one in per]
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
        test, is_sum = _test(cond.min, cond.max), isinstance(cond, Sum)

        def combined_value(rd):
            got = [rd.v[t] for t in terms]
            if None in got:
                return None
            if is_sum:
                v = sum(got)
            else:
                v = got[0] / got[1] if got[1] > 1e-6 else (math.inf if got[0] > 1e-6 else 0.0)
            return test(v, rd)

        return combined_value
    raise TypeError(f"not a condition: {cond!r}")
