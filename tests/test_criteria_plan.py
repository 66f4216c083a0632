"""The compiled criteria (edge.interpret.criteria_plan) give exactly evaluate()'s verdict, on the shipped rules
and on every condition shape, over random windows that straddle the thresholds."""

from __future__ import annotations

import math
import random

import pytest

from edge.interpret.criteria import Reading, evaluate
from edge.interpret.criteria_plan import compiled, verdict
from edge.interpret.findings import FindingRules, label_verdicts
from edge.interpret.rules import GLOBAL_KEYS, LEAD_KEYS, LEADS, load_rules, parse_condition

DERIVED = {"qrs_pp_mv", "rs_ratio", "qr_ratio"}
PATIENTS = [(None, None), ("M", 35.0), ("M", 70.0), ("M", None), ("F", 60.0), ("F", None)]


def _value(rng: random.Random, key: str):
    roll = rng.random()
    if roll < 0.08:
        return None
    if roll < 0.10:
        return rng.choice([True, False, "n/a", [1.0], {"x": 1}, math.nan, 0.0, -0.0])
    if key == "p_present":
        return rng.random() < 0.7
    if key.startswith("st_"):
        return rng.uniform(-0.4, 0.5)
    if key.endswith("_deg"):
        return rng.uniform(-180.0, 180.0)
    if key == "hr_bpm":
        return rng.uniform(30.0, 200.0)
    if key.endswith("_ms"):
        return rng.uniform(0.0, 560.0)
    if key.endswith("_mv") or key == "ptf_v1":
        return rng.uniform(-3.0, 4.0) if rng.random() < 0.2 else rng.uniform(0.0, 2.5)
    return rng.uniform(0.0, 3.0)


def _window(rng: random.Random) -> dict:
    m = {k: _value(rng, k) for k in sorted(GLOBAL_KEYS) if rng.random() < 0.9}
    leads = {}
    for lead in LEADS:
        roll = rng.random()
        if roll < 0.05:
            continue  # lead not measured
        if roll < 0.07:
            leads[lead] = None  # not a row
            continue
        leads[lead] = {k: _value(rng, k) for k in sorted(LEAD_KEYS - DERIVED) if rng.random() < 0.95}
    if rng.random() < 0.97:
        m["leads"] = leads
    return m


EXTRA = [
    {"leads": ["V1", "V2", "V3"], "count": 2, "key": "r_mv", "min": 0.5},
    {"leads": ["I", "aVL"], "count": "any", "test": {"q_mv": {"min": 0.1}, "qr_ratio": {"min": 0.25}}},
    {"not": {"lead": "V1", "key": "rs_ratio", "min": 1.0}},
    {"ratio": [["V1", "r_mv"], ["V1", "s_mv"]], "min": 1.0},
    {"sum": [["V1", "s_mv"], ["V5", "r_mv"], ["V6", "r_mv"]], "min": {"male": 3.5, "male_under_40": 4.0,
                                                                    "female": 3.0, "unknown": 3.5}},
    {"territory": "anterior", "contiguous": 2, "key": "st_j_mv", "min": 0.1,
     "lead_min": {"V2": {"male": 0.2, "male_under_40": 0.25, "female": 0.15, "unknown": 0.15}}},
    {"territory": "septal", "contiguous": 3, "key": "qrs_pp_mv", "max": 1.0},
    {"any": [{"key": "qtc_ms", "min": {"male": 450, "female": 460, "unknown": 460}}, {"key": "p_present", "max": 0.5}]},
]  # fmt: skip


def _conditions():
    out = []
    for c in load_rules().criteria:
        out.append((f"{c.label}:{c.name}", c.when))
        if c.reciprocal is not None:
            out.append((f"{c.label}:reciprocal", c.reciprocal))
    out += [(f"extra{i}", parse_condition(x, f"extra{i}")) for i, x in enumerate(EXTRA)]
    return out


def test_compiled_verdicts_equal_evaluate_on_random_windows():
    rng = random.Random(0)
    conds = _conditions()
    seen = {True: 0, False: 0, None: 0}
    met_by = set()
    for _ in range(400):
        m = _window(rng)
        sex, age = rng.choice(PATIENTS)
        reading = Reading(m, sex, age, values=False)
        for name, cond in conds:
            want = evaluate(cond, m, sex, age).ok
            got = verdict(cond, reading)
            assert got is want, f"{name}: compiled {got!r}, evaluate {want!r}"
            seen[want] += 1
            if want:
                met_by.add(name)
    # the windows do reach every verdict, and most criteria are met somewhere (the comparison is not vacuous)
    assert min(seen.values()) > 500
    assert len(met_by) >= 0.7 * len(conds), sorted({n for n, _ in conds} - met_by)


def test_compiled_once_per_condition_object():
    cond = parse_condition({"key": "hr_bpm", "min": 100}, "when")
    assert compiled(cond) is compiled(cond)
    twin = parse_condition({"key": "hr_bpm", "min": 100}, "when")
    assert twin == cond and compiled(twin) is not compiled(cond)  # per object, never by value
    assert verdict(twin, Reading({"hr_bpm": 120.0})) is True
    with pytest.raises(TypeError, match="not a condition"):
        compiled(object())


def test_label_verdicts_equal_the_per_criterion_reading():
    rules = load_rules()
    labels = [{"id": c.label} for c in rules.criteria]
    fr = FindingRules(list({x["id"]: x for x in labels}.values()), rules)
    rng = random.Random(1)
    for _ in range(100):
        m = _window(rng)
        want: dict[str, bool] = {}
        per: dict[str, list] = {}
        for c in rules.criteria:
            per.setdefault(c.label, []).append((c, evaluate(c.when, m).ok))
        for label, items in per.items():
            if any(
                c.mode == "veto" and (ok is False or (ok is None and c.unmeasured_veto)) for c, ok in items
            ):
                want[label] = False
            elif any(c.mode in ("decide", "state") and ok for c, ok in items):
                want[label] = True
            else:
                dec = [(c, ok) for c, ok in items if c.mode == "decide"]
                if dec and all(ok is False or (ok is None and c.unmeasured_veto) for c, ok in dec):
                    want[label] = False
        assert label_verdicts(rules, m) == want
        assert fr.measured(m) == {fr.index[k]: v for k, v in want.items()}


def test_patient_free_criteria_read_alike_for_every_patient() -> None:
    """A criterion patient_free marks gives one verdict for every sex and age (the decision shares it with the
    ranking); those it does not mark are the ones with a sex/age threshold, and some window tells them apart."""
    from edge.interpret.criteria_plan import patient_free

    rules = load_rules()
    free = patient_free(rules.criteria)
    assert patient_free(rules.criteria) is free and 0 < sum(free) < len(free)
    rng = random.Random(7)
    windows = [_window(rng) for _ in range(300)]
    for c, is_free in zip(rules.criteria, free, strict=True):
        per_group = [[compiled(c.when, s, a)(Reading(w, s, a).v) for w in windows] for s, a in PATIENTS]
        alike = all(p == per_group[0] for p in per_group)
        if is_free:
            assert alike, c.name
    assert {c.label for c, f in zip(rules.criteria, free, strict=True) if not f} >= {"LNGQT", "STE"}
