"""Measurements in the decision: criteria semantics, the ranking weight, its choice at export, the manifest."""

from __future__ import annotations

import json

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
            {
                **manifest,
                "decision": {"rules": {**load_rules_doc(), "criteria": [{"label": "SR", "mode": "odd"}]}},
            }
        )


def test_nested_conditions_and_the_atrial_fibrillation_veto():
    rules = FindingRules.for_labels(LABELS)
    j = rules.index["AFIB"]
    assert rules.measured({"rr_irregularity": 0.03, "p_present": False}).get(j) is False  # regular
    assert (
        rules.measured({"rr_irregularity": 0.08, "p_present": True}).get(j) is False
    )  # mild variation with P
    assert j not in rules.measured({"rr_irregularity": 0.08, "p_present": False})  # no P: the score decides
    assert j not in rules.measured(
        {"rr_irregularity": 0.25, "p_present": True}
    )  # irregular: the score decides
    with pytest.raises(RulesError, match="expected a non-empty list"):
        parse_condition({"all": [{"any": []}]}, "when")


# --- the window decision (edge.interpret.decide) on hand-made contract 7 v2 measurements -----------------
from edge.interpret.catalogue import load_catalogue  # noqa: E402
from edge.interpret.decide import decide  # noqa: E402

CAT = load_catalogue()
ALL = [{"id": lb.id, "parents": list(lb.parents)} for lb in CAT.labels]
JA = {lb.id: lb.ja for lb in CAT.labels}
LEAD_NAMES = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def _lead(**kw) -> dict:
    base = dict(p_pos_mv=0.1, p_neg_mv=0.0, p_dur_ms=100, q_mv=0.0, q_ms=0, r_mv=1.0, r_ms=40, s_mv=0.3, s_ms=30,
                r2_mv=0.0, s2_mv=0.0, qrs_ms=90, qrs_area=10, st_j_mv=0.0, st_60_mv=0.0, t_pos_mv=0.3, t_neg_mv=0.0)  # fmt: skip
    return {**base, **kw}


def meas(leads: dict | None = None, **glob) -> dict:
    """A normal 12-lead window at 72 bpm, with ``leads`` (per-lead overrides) and global overrides."""
    m = dict(hr_bpm=72, rr_ms=833, rr_irregularity=0.03, rhythm_regular=1, pr_ms=160, qrs_ms=90, qt_ms=380,
             qtc_ms=415, qtcf_ms=410, axis_deg=45, p_present=1, sv1_mv=0.8, rv5_mv=1.5, rv6_mv=1.2, sv1_rv5_mv=2.3,
             ravl_mv=0.4, sv3_mv=0.8, limb_qrs_max_mv=1.2, chest_qrs_max_mv=2.0, n_beats=12, p_dur_ms=100,
             p_axis_deg=50, t_axis_deg=40, ptf_v1=1.0)  # fmt: skip
    m.update(glob)
    rows = {n: _lead() for n in LEAD_NAMES}
    rows["V1"] = _lead(r_mv=0.3, s_mv=0.9, t_pos_mv=0.1)
    rows["V2"] = _lead(r_mv=0.6, s_mv=1.2)
    rows["aVR"] = _lead(r_mv=0.2, s_mv=0.9, t_pos_mv=0.0, t_neg_mv=0.2)
    for name, over in (leads or {}).items():
        rows[name] = {**rows[name], **over}
    m["leads"] = rows
    return m


@pytest.fixture(scope="module")
def all_rules():
    return FindingRules(ALL)


def _decide(rules, model: dict[str, float] | None = None, m: dict | None = None, **kw):
    s = np.zeros(len(ALL), np.float32)
    for lid, v in (model or {}).items():
        s[rules.index[lid]] = v
    return decide(rules, s, np.full(len(ALL), 0.5, np.float32), m, labels_ja=JA, **kw)


NORMAL_MODEL = {"SR": 0.8, "NORM": 0.9}
ST = {
    "inferior": {"II": {"st_j_mv": 0.2}, "III": {"st_j_mv": 0.25}, "aVF": {"st_j_mv": 0.22}, "aVL": {"st_j_mv": -0.1}},
    "anterior": {"V2": {"st_j_mv": 0.25}, "V3": {"st_j_mv": 0.3}, "V4": {"st_j_mv": 0.2}, "III": {"st_j_mv": -0.08}},
    "lateral": {"I": {"st_j_mv": 0.15}, "aVL": {"st_j_mv": 0.18}, "V5": {"st_j_mv": 0.12}, "V6": {"st_j_mv": 0.1},
                "III": {"st_j_mv": -0.1}},
}  # fmt: skip


def test_a_normal_window_is_sinus_rhythm_and_normal(all_rules):
    d = _decide(all_rules, NORMAL_MODEL, meas())
    assert set(d.findings) == {"SR", "NORM"} and not d.withheld and not d.alarms
    assert d.why["NORM"].by == "model" and d.why["NORM"].threshold == 0.5


@pytest.mark.parametrize("territory", ["inferior", "anterior", "lateral"])
def test_st_elevation_is_stated_with_its_territory_first_and_never_normal(all_rules, territory):
    d = _decide(all_rules, NORMAL_MODEL, meas(ST[territory]))
    assert d.findings[0] == "STE" and "NORM" not in d.findings  # the model's 正常心電図 is removed
    assert d.removed["NORM"] == "normal"
    (alarm,) = d.alarms
    assert alarm["territory"] == territory and len(alarm["leads"]) >= 2 and alarm["reciprocal"] is True
    why = d.why["STE"]
    assert why.by == "criteria" and "UDMI4" in why.source and why.values["reciprocal_st_depression"] is True
    assert all(k.split(".")[0] in alarm["leads"] for k in why.values if "." in k)


def test_st_elevation_in_one_lead_or_below_threshold_is_not_stated(all_rules):
    d = _decide(
        all_rules, {**NORMAL_MODEL, "STE": 0.7}, meas({"II": {"st_j_mv": 0.3}, "aVF": {"st_j_mv": 0.05}})
    )
    assert "STE" not in d.findings and d.removed["STE"] == "measurement"  # one lead: not 2 contiguous leads
    d = _decide(all_rules, NORMAL_MODEL, meas({"I": {"st_j_mv": 0.2}, "II": {"st_j_mv": 0.2}}))
    assert "STE" not in d.findings  # I and II are not contiguous (-aVR lies between them)


def test_v2_v3_thresholds_by_sex_and_age_and_the_unknown_choice(all_rules):
    m = meas({"V2": {"st_j_mv": 0.17}, "V3": {"st_j_mv": 0.17}})
    assert "STE" in _decide(all_rules, NORMAL_MODEL, m, patient={"sex": "F", "age": 50}).findings
    assert "STE" not in _decide(all_rules, NORMAL_MODEL, m, patient={"sex": "M", "age": 50}).findings
    assert "STE" in _decide(all_rules, NORMAL_MODEL, m).findings  # unknown: 0.15 mV, the most sensitive
    m = meas({"V2": {"st_j_mv": 0.22}, "V3": {"st_j_mv": 0.22}})
    assert "STE" in _decide(all_rules, {}, m, patient={"sex": "男", "age": 45}).findings
    assert "STE" not in _decide(all_rules, {}, m, patient={"sex": "M", "age": 30}).findings  # < 40: 0.25 mV


def test_st_elevation_is_withheld_in_lbbb_and_when_its_leads_are_unusable(all_rules):
    lbbb = {
        "V1": {"r_mv": 0.1, "s_mv": 1.8},
        "I": {"s_mv": 0.0, "s_ms": 0, "r_ms": 100},
        "V6": {"s_mv": 0.0, "s_ms": 0, "r_mv": 2.0, "r_ms": 100},
    }
    d = _decide(all_rules, {"SR": 0.8}, meas({**lbbb, **ST["anterior"]}, qrs_ms=150))
    assert "CLBBB" in d.findings and "STE" not in d.findings
    assert d.withheld["STE"] == "完全左脚ブロックがあるため判定しない"
    usable = [x for x in LEAD_NAMES if x not in ("V3", "V4")]
    m = meas({"V2": {"st_j_mv": 0.25}, "V3": {"st_j_mv": 0.3}, "V4": {"st_j_mv": 0.3}})
    d = _decide(all_rules, NORMAL_MODEL, m, quality={"usable_leads": usable, "inconsistent": []})
    assert "STE" not in d.findings and "V3誘導が使えない" in d.withheld["STE"]
    d = _decide(
        all_rules,
        NORMAL_MODEL,
        meas(ST["inferior"]),
        quality={"usable_leads": list(LEAD_NAMES), "inconsistent": ["limb_reversal"]},
    )
    assert "STE" not in d.findings and "limb_reversal" in d.withheld["STE"] and "LAD" not in d.findings


def test_bundle_branch_blocks_by_morphology_and_width(all_rules):
    rbbb = {"V1": {"r2_mv": 0.6, "r_mv": 0.2, "s_mv": 0.3}, "I": {"s_ms": 50}, "V6": {"s_ms": 50}}
    d = _decide(all_rules, {"SR": 0.8, "CLBBB": 0.7}, meas(rbbb, qrs_ms=135))
    assert "CRBBB" in d.findings and "CLBBB" not in d.findings and d.why["CRBBB"].values["qrs_ms"] == 135
    assert "IRBBB" in _decide(all_rules, {}, meas(rbbb, qrs_ms=114)).findings
    # 右脚ブロック at QRS 52 ms (Challenge E00008): the model's reading is removed by the measurement
    d = _decide(all_rules, {"SR": 0.8, "CRBBB": 0.9}, meas(qrs_ms=52))
    assert "CRBBB" not in d.findings and d.removed["CRBBB"] == "measurement"
    # LBBB with Sokolow-Lyon voltage: no LVH (voltage is not read in LBBB)
    lbbb = {"V1": {"r_mv": 0.1, "s_mv": 2.2}, "I": {"s_mv": 0.0, "s_ms": 0, "r_ms": 100},
            "V6": {"s_mv": 0.0, "s_ms": 0, "r_mv": 2.0, "r_ms": 100, "t_neg_mv": 0.3}}  # fmt: skip
    d = _decide(all_rules, {"SR": 0.8, "LVH": 0.8, "VCLVH": 0.7}, meas(lbbb, qrs_ms=150, sv1_rv5_mv=4.0))
    assert "CLBBB" in d.findings and not {"LVH", "VCLVH"} & set(d.findings)
    assert "完全左脚ブロック" in d.withheld["LVH"]
    # nonspecific IVCD: wide QRS without either pattern
    d = _decide(all_rules, {"SR": 0.8}, meas(qrs_ms=126))
    assert "IVCD" in d.findings and not {"CRBBB", "CLBBB"} & set(d.findings)


def test_the_issue_contradictions_are_not_stated(all_rules):
    # WPW at QRS 92 ms; LAFB and LPFB together at -37 degrees; 左軸偏位 at -96 degrees; LVH at SV1+RV5 0.35 mV;
    # I度房室ブロック with PR not measured; 心房粗動 with P waves and PR 190 ms
    d = _decide(all_rules, {"SR": 0.8, "WPW": 0.9}, meas(pr_ms=100, qrs_ms=92))
    assert "WPW" not in d.findings and "SPR" in d.findings
    d = _decide(all_rules, {"SR": 0.8, "LAFB": 0.8, "LPFB": 0.8, "LAD": 0.6}, meas(axis_deg=-37))
    assert "LAD" in d.findings and not {"LAFB", "LPFB"} & set(d.findings)
    d = _decide(all_rules, {"SR": 0.8, "LAD": 0.9}, meas(axis_deg=-96))
    assert "LAD" not in d.findings and "AXIS" in d.findings
    d = _decide(
        all_rules,
        {"SR": 0.8, "LVH": 0.9, "VCLVH": 0.9},
        meas(sv1_rv5_mv=0.35, rv5_mv=0.2, rv6_mv=0.2, ravl_mv=0.1),
    )
    assert not {"LVH", "VCLVH"} & set(d.findings)
    d = _decide(all_rules, {"SR": 0.8, "1AVB": 0.9}, meas(pr_ms=None))
    assert "1AVB" not in d.findings
    d = _decide(all_rules, {"AFLT": 0.9}, meas(pr_ms=190, p_present=1))
    assert "AFLT" not in d.findings


def test_hypertrophy_atrial_abnormality_q_waves_and_t_inversion(all_rules):
    strain = {"V5": {"st_j_mv": -0.1, "st_60_mv": -0.15, "t_neg_mv": 0.2}, "V6": {"t_neg_mv": 0.2}}
    d = _decide(all_rules, {"SR": 0.8}, meas(strain, sv1_rv5_mv=4.2))
    assert "LVH" in d.findings and "VCLVH" not in d.findings and d.removed["VCLVH"] == "lvh"
    assert "VCLVH" in _decide(all_rules, {"SR": 0.8}, meas(sv1_rv5_mv=4.2)).findings
    assert "LAE" in _decide(all_rules, {"SR": 0.8}, meas({"II": {"p_dur_ms": 130}}, ptf_v1=5.0)).findings
    assert "LAE" in _decide(all_rules, {"SR": 0.8}, meas({"II": {"p_dur_ms": 130}}, ptf_v1=-5.0)).findings  # sign
    assert "LAE" not in _decide(all_rules, {"SR": 0.8, "LAE": 0.9}, meas(ptf_v1=5.0)).findings  # both needed
    assert "RAE" in _decide(all_rules, {"SR": 0.8}, meas({"II": {"p_pos_mv": 0.3}})).findings
    q = {x: {"q_ms": 40, "q_mv": 0.3} for x in ("II", "III", "aVF")}
    d = _decide(all_rules, {"SR": 0.8, "NORM": 0.9}, meas(q))
    assert {"QWAVE", "IMI"} <= set(d.findings) and "NORM" not in d.findings
    d = _decide(
        all_rules, {"SR": 0.8}, meas({x: {"t_neg_mv": 0.3, "t_pos_mv": 0.0} for x in ("V4", "V5", "V6")})
    )
    assert "INVT" in d.findings and d.why["INVT"].source.startswith("UDMI4")
    assert "LNGQT" in _decide(all_rules, {"SR": 0.8}, meas(qtc_ms=490, qtcf_ms=480)).findings
    assert "LNGQT" not in _decide(all_rules, {"SR": 0.8}, meas(qtcf_ms=480, qrs_ms=150)).findings
    assert "LNGQT" not in _decide(all_rules, {"SR": 0.8, "LNGQT": 0.9}, meas(qtc_ms=470, qtcf_ms=440)).findings


def test_the_rhythm_analysis_owns_the_rhythm_labels(all_rules):
    rhythm = {"statement": "AFIB", "modifiers": ["PVC"], "reason": "不規則なRR、P波なし"}
    d = _decide(all_rules, {"SR": 0.9, "NORM": 0.9, "1AVB": 0.8, "LVOLT": 0.7}, meas(p_present=0, pr_ms=None,
                                                                                   rr_irregularity=0.3),
                rhythm=rhythm)  # fmt: skip
    assert d.findings[:2] == ["AFIB", "PVC"] and d.why["AFIB"].by == "rhythm"
    assert not {"SR", "NORM", "1AVB"} & set(d.findings)
    d = _decide(all_rules, {"SR": 0.9}, meas(), rhythm={"statement": "undetermined", "modifiers": []})
    assert "SR" not in d.findings  # an undetermined rhythm is not replaced by the model's


def test_zero_shot_labels_are_listed_apart_and_every_finding_has_a_why(all_rules):
    zs = [lb["id"] == "PRWP" for lb in ALL]
    d = _decide(all_rules, {"SR": 0.8, "PRWP": 0.9}, meas(), zero_shot=zs)
    assert d.zero_shot_findings == ["PRWP"] and "PRWP" not in d.findings
    assert set(d.why) == set(d.findings) | set(d.zero_shot_findings)
    assert json.loads(json.dumps(d.to_json(), ensure_ascii=False))["why"]["PRWP"]["by"] == "model"


# --- the synthetic ECGs through the default bundle, as `ecg-edge classify` reads them -------------------
SYNTHETIC = [
    *[("st_elevation", {"st_territory": t, "st_mv": v}, {"STE"}, set()) for t in ("inferior", "lateral") for v in (0.1, 0.2, 0.3)],
    *[("st_elevation", {"st_territory": "anterior", "st_mv": v}, {"STE"}, set()) for v in (0.2, 0.3)],
    ("sinus", {}, {"SR", "NORM"}, {"STE", "STD"}),
    ("afib", {}, {"AFIB"}, {"SR", "NORM"}),
    ("pvc", {}, {"PVC"}, {"NORM"}),
    ("rbbb", {}, {"CRBBB"}, {"CLBBB", "NORM", "QWAVE", "LMI"}),
    ("lbbb", {}, {"CLBBB"}, {"LVH", "VCLVH", "VH", "HVOLT", "STE", "NORM"}),
]  # fmt: skip


@pytest.fixture(scope="module")
def default_classifier():
    from edge.runtime.engine import Classifier

    with Classifier.from_bundle() as clf:
        yield clf


@pytest.mark.parametrize(
    "rhythm, kw, must, never", SYNTHETIC, ids=lambda v: str(v) if isinstance(v, str) else None
)
def test_synthetic_ecgs_are_read_right(default_classifier, rhythm, kw, must, never):
    from firmware_bridge.synthetic import synthesize

    for seed in (1, 2):
        x = synthesize(rhythm=rhythm, fs=500, seed=seed, duration_s=10.0, **kw)
        r = default_classifier.classify_window(x, 500)
        stated = set(r.findings) | set(r.zero_shot_findings)
        assert must <= stated and not never & stated, (rhythm, kw, seed, r.findings, r.withheld)
        if rhythm == "st_elevation":  # never normal; first after the rhythm; its territory named
            assert "NORM" not in stated and r.findings.index("STE") == 1
            territories = {a["territory"] for a in default_classifier.last_decision.alarms}
            assert kw["st_territory"] in territories, territories


def test_anterior_st_elevation_below_the_udmi4_v2_v3_threshold_is_not_normal(default_classifier):
    """0.1 mV over V1-V4 stays under UDMI4's lowest V2-V3 threshold (0.15 mV): no ST-elevation statement, but
    never 正常心電図 (0.1 mV at J+60 ms in two contiguous leads vetoes it)."""
    from firmware_bridge.synthetic import synthesize

    x = synthesize(rhythm="st_elevation", st_territory="anterior", st_mv=0.1, fs=500, seed=1, duration_s=10.0)
    r = default_classifier.classify_window(x, 500)
    assert "NORM" not in r.findings and "STE" not in r.findings


def test_reciprocal_st_depression_is_part_of_the_st_elevation_statement(all_rules):
    m = meas({**ST["inferior"], "I": {"st_j_mv": -0.1, "st_60_mv": -0.12}, "aVL": {"st_j_mv": -0.15, "st_60_mv": -0.2}})
    d = _decide(all_rules, {"SR": 0.8}, m)
    assert "STE" in d.findings and "STD" not in d.findings and d.removed["STD"] == "reciprocal"
    assert d.alarms[0]["reciprocal_leads"] == ["I", "aVL"]
    m = meas({"V4": {"st_j_mv": -0.1, "st_60_mv": -0.12}, "V5": {"st_j_mv": -0.15, "st_60_mv": -0.2}})
    assert "STD" in _decide(all_rules, {"SR": 0.8}, m).findings  # no ST elevation: the depression is stated


def test_views_show_st_elevation_first_in_the_alarm_colour(default_classifier):
    from pathlib import Path

    from edge.views.present import summarise
    from edge.views.report import findings_text
    from firmware_bridge.synthetic import synthesize

    x = synthesize(rhythm="st_elevation", st_territory="inferior", st_mv=0.25, fs=500, seed=1, duration_s=10.0)
    r = default_classifier.classify_window(x, 500)
    assert [a["territory"] for a in r.to_json("x")["alarms"]] == ["inferior"]
    first = summarise(r, default_classifier.labels)["findings"][0]
    assert first["id"] == "STE" and first["alarm"] and first["alarm_text"].startswith("下壁 II, III, aVF")
    assert not first["zero_shot"]  # stated by a criterion: not the model's unverified guess
    assert findings_text(r, default_classifier.labels)[0].startswith("【警報】ST上昇")
    web = Path(__file__).resolve().parents[1] / "edge" / "views" / "web"
    assert '" alarm"' in (web / "app.js").read_text(encoding="utf-8")
    assert ".finding.alarm .name" in (web / "style.css").read_text(encoding="utf-8")
