"""Measurements in the decision: criteria semantics, the ranking weight, its choice at export, the manifest."""

from __future__ import annotations

import numpy as np
import pytest

from edge.bundle.manifest import ManifestError, validate_manifest
from edge.interpret.criteria import evaluate
from edge.interpret.findings import FindingRules, load_rules_doc
from edge.interpret.rules import RulesError, parse_condition
from export.decision import choose_decision

LABELS = [
    {"id": "SR", "parents": []},
    {"id": "STACH", "parents": []},
    {"id": "AFIB", "parents": []},
    {"id": "LAD", "parents": ["AXIS"]},
    {"id": "AXIS", "parents": []},
    {"id": "NORM", "parents": []},
    {"id": "CLBBB", "parents": []},
]


def _ok(cond: dict, m: dict):
    return evaluate(parse_condition(cond, "when"), m).ok


def test_all_any_and_unknown_semantics():
    all_ = {"all": [{"key": "hr_bpm", "min": 100}, {"key": "p_present", "min": 0.5}]}
    assert _ok(all_, {"hr_bpm": 120, "p_present": True}) is True
    assert _ok(all_, {"hr_bpm": 80, "p_present": True}) is False
    assert _ok(all_, {"hr_bpm": 120, "p_present": None}) is None
    assert _ok(all_, {"hr_bpm": 80, "p_present": None}) is False  # one failed condition decides
    any_ = {"any": [{"key": "limb_qrs_max_mv", "max": 0.5}, {"key": "chest_qrs_max_mv", "max": 1.0}]}
    assert _ok(any_, {"limb_qrs_max_mv": 0.4, "chest_qrs_max_mv": 2.0}) is True
    assert _ok(any_, {"limb_qrs_max_mv": 0.9, "chest_qrs_max_mv": 2.0}) is False
    assert _ok(any_, {"limb_qrs_max_mv": None, "chest_qrs_max_mv": 2.0}) is None
    assert _ok({"not": {"key": "qrs_ms", "min": 120}}, {"qrs_ms": 100}) is True
    with pytest.raises(RulesError, match=r"when.all\[0\]: a condition needs one of"):
        parse_condition({"all": [{"min": 3}]}, "when")


def test_shipped_criteria_decide_measurement_labels():
    rules = FindingRules.for_labels(LABELS)
    scores = np.array([0.6, 0.1, 0.5, 0.1, 0.1, 0.55, 0.58], dtype=np.float32)
    thresholds = np.full(len(LABELS), 0.5, dtype=np.float32)
    m = {
        "hr_bpm": 125.0,
        "p_present": True,
        "rr_irregularity": 0.03,
        "axis_deg": -50.0,
        "qrs_ms": 88.0,
        "pr_ms": 150.0,
        "qtc_ms": 420.0,
    }
    ids = [rules.ids[i] for i in rules.decide(scores, thresholds, m)]
    assert "STACH" in ids and "LAD" in ids  # decided by the measurements although their scores are low
    assert "AFIB" not in ids  # regular RR vetoes atrial fibrillation
    assert "CLBBB" not in ids  # QRS 88 ms vetoes a complete bundle branch block
    assert "NORM" not in ids  # a rate of 125 and an axis of -50 are not a normal ECG
    assert not rules.contradictions(ids)
    # nothing measured: the scores decide as before
    ids = [rules.ids[i] for i in rules.decide(scores, thresholds, None)]
    assert "CLBBB" in ids and "STACH" not in ids


def test_adjust_moves_only_measurement_labels():
    rules = FindingRules.for_labels(LABELS)
    scores = np.linspace(0.1, 0.7, len(LABELS)).astype(np.float32)
    m = {"hr_bpm": 125.0, "p_present": True, "rr_irregularity": 0.03, "axis_deg": 10.0, "qrs_ms": 90.0}
    adj = rules.adjust(scores, m, 0.05)
    idx = rules.index
    assert adj[idx["STACH"]] == pytest.approx(scores[idx["STACH"]] + 0.05)  # met
    assert adj[idx["LAD"]] == pytest.approx(scores[idx["LAD"]] - 0.05)  # contradicted
    assert adj[idx["SR"]] == pytest.approx(scores[idx["SR"]] - 0.05)  # 洞調律 vetoed at 125 bpm
    assert adj[idx["AXIS"]] == scores[idx["AXIS"]]  # no criterion
    np.testing.assert_array_equal(rules.adjust(scores, m, 0.0), scores)
    np.testing.assert_array_equal(rules.adjust(scores, None, 0.05), scores)


def test_choose_decision_picks_a_weight_that_helps_on_validation():
    rng = np.random.default_rng(0)
    n, L = 200, len(LABELS)
    rules = FindingRules.for_labels(LABELS)
    j = rules.index["STACH"]
    scores = rng.normal(0.5, 0.02, (n, L)).astype(np.float32)
    targets = np.zeros((n, L), np.float32)
    targets[:, rules.index["SR"]] = 1
    tach = rng.random(n) < 0.3
    targets[tach, j] = 1
    scores[:, j] -= 0.03  # the model ranks sinus tachycardia low ...
    meas = [
        {"hr_bpm": 120.0 if t else 75.0, "p_present": True, "rr_irregularity": 0.02} for t in tach
    ]  # ... but the heart rate says it
    d = choose_decision(scores, targets, None, meas, LABELS)
    assert d["criteria_weight"] > 0 and "STACH" in d["criteria_labels"]
    zero = next(r for r in d["validation"] if r["weight"] == 0.0)
    best = next(r for r in d["validation"] if r["weight"] == d["criteria_weight"])
    assert best["criteria_labels_top5_recall"] >= zero["criteria_labels_top5_recall"]
    assert d["rules"] == load_rules_doc()
    # without measurements the weight stays 0
    assert choose_decision(scores, targets, None, None, LABELS)["criteria_weight"] == 0.0


def test_manifest_decision_block_is_validated(tiny_bundle):
    import json

    manifest = json.loads((tiny_bundle / "manifest.json").read_text(encoding="utf-8"))
    ok = {**manifest, "decision": {"criteria_weight": 0.05, "rules": load_rules_doc()}}
    assert validate_manifest(ok)["decision"]["criteria_weight"] == 0.05
    with pytest.raises(ManifestError, match="decision.criteria_weight"):
        validate_manifest({**manifest, "decision": {"criteria_weight": 7}})
    with pytest.raises(ManifestError, match="decision.rules"):
        validate_manifest(
            {**manifest, "decision": {"rules": {**load_rules_doc(), "criteria": [{"label": "SR", "mode": "odd"}]}}}
        )


def test_nested_conditions_and_the_atrial_fibrillation_veto():
    rules = FindingRules.for_labels(LABELS)
    j = rules.index["AFIB"]
    assert rules.measured({"rr_irregularity": 0.03, "p_present": False}).get(j) is False  # regular
    assert rules.measured({"rr_irregularity": 0.08, "p_present": True}).get(j) is False  # mild variation with P
    assert j not in rules.measured({"rr_irregularity": 0.08, "p_present": False})  # no P: the score decides
    assert j not in rules.measured({"rr_irregularity": 0.25, "p_present": True})  # irregular: the score decides
    with pytest.raises(RulesError, match="expected a non-empty list"):
        parse_condition({"all": [{"any": []}]}, "when")
