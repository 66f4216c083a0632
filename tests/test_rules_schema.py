"""The rules schema (edge.interpret.rules): the shipped rules parse, every criterion names its source, and a bad
document is refused with one line naming the field."""

from __future__ import annotations

import copy
import json

import pytest

from edge.interpret.catalogue import load_catalogue
from edge.interpret.rules import (
    RULES_VERSION,
    Contiguous,
    RulesError,
    Threshold,
    check_manifest_rules,
    load_rules,
    parse_rules,
    read_rules_doc,
)

DOC = read_rules_doc()


def _with_criterion(crit: dict) -> dict:
    doc = copy.deepcopy(DOC)
    doc["criteria"] = [crit]
    return doc


def _crit(**over) -> dict:
    base = {
        "label": "STACH",
        "name": "n",
        "source": "AHA-II",
        "mode": "decide",
        "when": {"key": "hr_bpm", "min": 100},
    }
    base.update(over)
    return base


def test_shipped_rules_parse_and_every_criterion_names_its_source():
    rules = load_rules()
    assert rules.version == RULES_VERSION and len(rules.criteria) > 40
    ids = set(load_catalogue().ids)
    for c in rules.criteria:
        assert c.source.strip() and c.name.strip(), c.label
        assert c.label in ids, c.label
        assert set(c.not_with) <= ids, c.label
    for g in rules.exclusive:
        assert {x for m in g.members for x in m} <= ids, g.name
    assert set(rules.rhythm_labels) <= ids and rules.normal in ids
    # ST elevation: one criterion per territory, alarms, with reciprocal change and the UDMI4 V2-V3 thresholds
    ste = rules.criteria_for("STE")
    assert {c.territory for c in ste} == {"inferior", "anterior", "lateral"}
    assert all(c.alarm and c.reciprocal is not None and "UDMI4" in c.source for c in ste)
    anterior = next(c for c in ste if c.territory == "anterior")
    at_j = anterior.when  # V1-V4 at the J point only (the other territories: J, or J+60 ms with J raised)
    assert isinstance(at_j, Contiguous) and dict(at_j.lead_min)["V2"].at("M", 30) == 0.25


@pytest.mark.parametrize(
    "crit, message",
    [
        (
            _crit(when={"key": "heart_rate", "min": 100}),
            r"criteria\[0\]\.when\.key: unknown global measurement 'heart_rate'",
        ),
        (
            _crit(when={"key": "hr_bpm", "min": "100"}),
            r"criteria\[0\]\.when\.min: expected a number, got '100'",
        ),
        (
            _crit(when={"key": "hr_bpm", "all": [{"key": "hr_bpm", "min": 1}]}),
            r"criteria\[0\]\.when: 'all' cannot be combined with 'key'",
        ),
        (
            _crit(when={"lead": "V7", "key": "r_mv", "min": 1}),
            r"criteria\[0\]\.when\.lead: unknown lead 'V7'",
        ),
        (
            _crit(when={"lead": "V1", "key": "hr_bpm", "min": 1}),
            r"criteria\[0\]\.when\.key: unknown per-lead measurement 'hr_bpm'",
        ),
        (_crit(when={"leads": ["V1"], "key": "r_mv", "min": 1, "count": 0}), r"criteria\[0\]\.when\.count"),
        (
            _crit(when={"territory": "posterior", "key": "st_j_mv", "min": 0.1}),
            r"when\.territory: unknown territory 'posterior'",
        ),
        (
            _crit(when={"key": "qtc_ms", "min": {"male": 450, "female": 460}}),
            r"when\.min: a threshold by sex/age needs the value for 'unknown'",
        ),
        (_crit(when={"key": "hr_bpm"}), r"criteria\[0\]\.when: needs 'min' or 'max'"),
        (_crit(mode="maybe"), r"criteria\[0\]\.mode: expected one of decide, veto, state, got 'maybe'"),
        (_crit(source=""), r"criteria\[0\]\.source: expected a non-empty string"),
        (_crit(colour="red"), r"criteria\[0\]: unknown key 'colour'"),
        ({k: v for k, v in _crit().items() if k != "source"}, r"criteria\[0\]: missing 'source'"),
        (_crit(alarm="yes"), r"criteria\[0\]\.alarm: expected true or false"),
    ],
)
def test_a_bad_criterion_is_one_line_naming_the_field(crit, message):
    with pytest.raises(RulesError, match=message) as info:
        parse_rules(_with_criterion(crit))
    assert "\n" not in str(info.value)


def test_bad_documents_are_refused_with_the_field():
    doc = copy.deepcopy(DOC)
    doc["rhythm_modifiers"] = ["PRC"]  # read by nothing before: now an unknown key
    with pytest.raises(RulesError, match=r"rules: unknown key 'rhythm_modifiers'"):
        parse_rules(doc)
    with pytest.raises(RulesError, match=r"rules\.version: expected 2, got 3"):
        parse_rules({**DOC, "version": 3})
    with pytest.raises(RulesError, match=r"rules\.exclusive\[0\]\.members\[1\]"):
        parse_rules({**DOC, "exclusive": [{"name": "g", "members": ["SR", 5]}]})
    with pytest.raises(RulesError, match=r"rules: expected an object"):
        parse_rules([1, 2])


def test_older_rules_in_a_manifest_give_way_to_the_shipped_ones(tmp_path):
    assert check_manifest_rules({"version": 1, "exclusive": []}) is None
    assert check_manifest_rules(DOC).version == RULES_VERSION
    with pytest.raises(RulesError, match="decision.rules.criteria"):
        check_manifest_rules({**DOC, "criteria": [{"label": "SR"}]})
    bad = tmp_path / "r.json"
    bad.write_text(
        json.dumps({**DOC, "criteria": [_crit(when={"key": "hr_bpm", "max": True})]}), encoding="utf-8"
    )
    with pytest.raises(RulesError, match=r"r\.json\.criteria\[0\]\.when\.max: expected a number, got True"):
        load_rules(bad)


def test_thresholds_by_sex_and_age_use_the_stated_value_when_unknown():
    t = Threshold(male=0.2, male_under_40=0.25, female=0.15, unknown=0.15)
    assert t.at("M", 55) == 0.2 and t.at("M", 30) == 0.25 and t.at("F", 30) == 0.15
    assert t.at(None, None) == 0.15 and t.at("M", None) == 0.15  # a man of unknown age: the stated value
    assert Threshold(value=0.1).at("F", 20) == 0.1
