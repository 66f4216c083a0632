"""Consistent findings (edge/findings.py): exclusive groups, normal, parents, criteria; the rules file."""

from __future__ import annotations

import numpy as np
import pytest

from edge.interpret.catalogue import load_catalogue
from edge.interpret.findings import FindingRules, load_rules_doc

CAT = load_catalogue()


def _scores(values: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    s = np.zeros(len(CAT), dtype=np.float32)
    for lid, v in values.items():
        s[CAT.index(lid)] = v
    return s, np.full(len(CAT), 0.5, dtype=np.float32)


@pytest.fixture(scope="module")
def rules():
    return FindingRules.for_labels(CAT.to_list())


def _ids(rules, kept):
    return [rules.ids[i] for i in kept]


def test_the_reported_lbbb_contradictions_are_resolved(rules):
    # The record: complete AND incomplete right AND left BBB, three AV-block degrees, pacing, flutter.
    s, th = _scores(
        {
            "CLBBB": 0.9,
            "ILBBB": 0.8,
            "CRBBB": 0.7,
            "IRBBB": 0.6,
            "LBBB": 0.85,
            "BBB": 0.9,
            "CD": 0.9,
            "1AVB": 0.6,
            "2AVB": 0.7,
            "3AVB": 0.55,
            "AVB": 0.6,
            "PACE": 0.6,
            "AFLT": 0.65,
            "SR": 0.8,
            "NORM": 0.95,
            "LVOLT": 0.6,
            "HVOLT": 0.7,
            "VCLVH": 0.52,
        }
    )
    d = rules.decide_explained(s, th)
    kept = _ids(rules, d.kept)
    assert set(kept) == {"CLBBB", "SR", "2AVB", "VCLVH"}  # VCLVH implies HVOLT, which is then not listed
    assert kept == sorted(kept, key=lambda lid: -s[CAT.index(lid)])  # best score first
    reasons = {rules.ids[i]: r for i, r in d.removed.items()}
    assert reasons["ILBBB"] == "lbbb_degree" and reasons["CRBBB"] == "bundle_side"
    assert reasons["PACE"] == reasons["AFLT"] == "primary_rhythm" and reasons["LVOLT"] == "voltage"
    assert reasons["NORM"] == "normal" and reasons["LBBB"] == reasons["BBB"] == reasons["CD"] == "parent"
    above = [rules.ids[i] for i in np.flatnonzero(s >= th)]
    assert len(rules.contradictions(above)) > 10 and rules.contradictions(kept) == []


def test_the_highest_scoring_member_wins(rules):
    s, th = _scores({"LAD": 0.6, "RAD": 0.7, "AFIB": 0.9, "SR": 0.8, "SBRAD": 0.85})
    kept = _ids(rules, rules.decide(s, th))
    assert "RAD" in kept and "LAD" not in kept
    assert "AFIB" in kept and not {"SR", "SBRAD"} & set(kept)  # the sinus family loses as a whole
    s, th = _scores({"STACH": 0.7, "SBRAD": 0.6, "SR": 0.65})
    assert set(_ids(rules, rules.decide(s, th))) == {"STACH", "SR"}


def test_normal_only_beside_compatible_labels(rules):
    s, th = _scores({"NORM": 0.9, "SR": 0.8})
    assert set(_ids(rules, rules.decide(s, th))) == {"NORM", "SR"}
    s, th = _scores({"NORM": 0.9, "SR": 0.8, "CLBBB": 0.55})
    assert "NORM" not in _ids(rules, rules.decide(s, th))
    s, th = _scores({"NORM": 0.9, "SBRAD": 0.8})  # sinus bradycardia, otherwise normal (as PTB-XL writes it)
    assert set(_ids(rules, rules.decide(s, th))) == {"NORM", "SBRAD"}


def test_nan_thresholds_never_fire_and_nothing_above_gives_nothing(rules):
    s, th = _scores({"AFIB": 0.9})
    th[:] = np.nan
    assert rules.decide(s, th) == []
    assert rules.decide(np.zeros(len(CAT)), np.full(len(CAT), 0.5)) == []


def test_measurement_criteria_decide_or_veto(rules):
    doc = load_rules_doc()
    doc["criteria"] = [
        {"label": "STACH", "name": "t", "source": "s", "mode": "decide", "when": {"key": "hr_bpm", "min": 100}},
        {"label": "LVOLT", "name": "t", "source": "s", "mode": "veto", "when": {"key": "limb_qrs_max_mv", "max": 0.5}},
    ]
    r = FindingRules(CAT.to_list(), doc)
    s, th = _scores({"SBRAD": 0.8, "SR": 0.7, "STACH": 0.3, "LVOLT": 0.9})
    kept = _ids(r, r.decide(s, th, {"hr_bpm": 120.0, "limb_qrs_max_mv": 1.2}))
    assert "STACH" in kept and "SBRAD" not in kept  # the measured label wins its group over a higher score
    assert "LVOLT" not in kept  # vetoed: the limb voltage is normal
    kept = _ids(r, r.decide(s, th, {"hr_bpm": None, "limb_qrs_max_mv": 0.3}))
    assert "SBRAD" in kept and "LVOLT" in kept and "STACH" not in kept  # None: the score decides
    assert _ids(r, r.decide(s, th)) == _ids(r, r.decide(s, th, {}))
    r2 = FindingRules(
        CAT.to_list(), load_rules_doc(), criteria={"AFIB": lambda m: m.get("rr_irregularity", 0) > 0.15}
    )
    kept = _ids(r2, r2.decide(*_scores({"SR": 0.8, "AFIB": 0.1}), {"rr_irregularity": 0.3}))
    assert kept == ["AFIB"]


def test_rules_file_names_only_catalogue_labels_and_covers_every_rhythm():
    doc = load_rules_doc()
    named = set()
    for group in doc["exclusive"]:
        for m in group["members"]:
            named |= {m} if isinstance(m, str) else set(m)
    named |= set(doc["rhythm_labels"]) | {doc["normal"]["label"], *doc["normal"]["compatible"]}
    named |= {c["label"] for c in doc["criteria"]}
    assert named <= set(CAT.ids)
    # Every rhythm label is a primary rhythm (or below one) or a modifier (ectopy, generic terms):
    # a rhythm label added to the catalogue must be placed here, never forgotten.
    covered = set()
    primary = next(g for g in doc["exclusive"] if g["name"] == "primary_rhythm")
    for spec in [*primary["members"], *doc["rhythm_labels"]]:
        for lid in [spec] if isinstance(spec, str) else spec:
            covered |= {lid} | {lb.id for lb in CAT.labels if lid in CAT.ancestors(lb.id)}
    assert {lb.id for lb in CAT.in_category("rhythm")} <= covered


def test_labels_outside_the_catalogue_and_missing_rule_labels_are_tolerated():
    labels = [{"id": "SR"}, {"id": "AFIB"}, {"id": "X_NEW", "parents": ["SR"]}]
    r = FindingRules.for_labels(labels)
    s = np.array([0.9, 0.8, 0.85])
    assert _ids(r, r.decide(s, np.full(3, 0.5))) == ["X_NEW"]  # AFIB loses to the sinus family; SR is implied
    assert r.most_specific(["SR", "X_NEW"]) == ["X_NEW"]


def test_bad_rules_file_is_one_line_error(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text("{nope", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_rules_doc(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_rules_doc(tmp_path / "missing.json")


def test_findings_that_need_p_waves_do_not_stand_beside_atrial_fibrillation():
    from edge.interpret.catalogue import load_catalogue
    from edge.interpret.findings import FindingRules

    labels = [{"id": lb.id, "parents": list(lb.parents)} for lb in load_catalogue().labels]
    rules = FindingRules.for_labels(labels)
    assert rules.contradictions(["AFIB", "PAC"]) and rules.contradictions(["AFLT", "1AVB"])
    assert rules.contradictions(["WPW", "1AVB"])  # pre-excitation shortens the PR
    assert not rules.contradictions(["AFIB", "WPW"])  # pre-excited atrial fibrillation exists
    scores = np.zeros(len(labels), np.float32)
    for lid, s in (("AFIB", 0.9), ("PAC", 0.8), ("1AVB", 0.7)):
        scores[rules.index[lid]] = s
    kept = [rules.ids[i] for i in rules.decide(scores, np.full(len(labels), 0.5, np.float32))]
    assert kept == ["AFIB"]
