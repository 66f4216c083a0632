"""One presentation layer (edge.views.present): the words every view uses, and why a finding was stated."""

from __future__ import annotations

import re
from importlib import resources

from edge.interpret.why import Why
from edge.runtime.result import QUALITY_PROBLEMS, Quality, Result
from edge.views.present import (
    LEGEND,
    QUALITY_WORDS,
    describe_quality,
    format_measurements,
    quality_words,
    summarise,
    vocabulary,
    why_text,
)


def test_why_in_words_for_each_way_a_finding_is_stated():
    assert why_text(Why("model", score=0.4123, threshold=0.318)) == "モデル 0.412 ≥ 0.318"
    assert why_text({"by": "model", "score": 0.4123, "threshold": 0.318}, "en") == "model 0.412 ≥ 0.318"
    crit = Why("criteria", rule="QT延長: QTc ≥ 460 ms", values={"qtc_ms": 478.2, "qrs_ms": 96.0})
    assert why_text(crit) == "基準 QT延長: QTc ≥ 460 ms: QTc (Bazett) 478 ms、QRS 96 ms"
    assert why_text(Why("rhythm", rule="洞調律: P 波あり, 整, 72 bpm")) == "リズム解析 洞調律: P 波あり, 整, 72 bpm"
    assert why_text(Why("criteria", values={"p_present": True})) == "基準: P 波 あり"
    assert why_text(None) == ""
    # per-lead values and the rhythm analysis's own in words, never as raw keys
    q = Why("criteria", rule="異常Q波", values={"III.q_ms": 98.0, "III.qr_ratio": float("inf"), "rr_cv": 0.02})
    assert why_text(q) == "基準 異常Q波: III Q 幅 98 ms、III Q/R ∞、RR 変動係数 0.02"
    assert why_text(q, "en") == "criterion 異常Q波: III Q width 98 ms, III Q/R ∞, RR variation 0.02"


def test_quality_and_measurements_in_one_vocabulary():
    assert set(QUALITY_PROBLEMS) <= set(QUALITY_WORDS)
    q = {"ok": False, "missing_samples": 80, "lead_off": ["V2"], "saturated": ["V5"]}
    assert describe_quality(q) == "不良 (欠損 80 サンプル; 電極外れ: V2; 飽和 (ノイズ): V5)"
    assert describe_quality(q, "en") == "poor (missing 80 samples; lead off: V2; saturated (noise): V5)"
    assert describe_quality(Quality(ok=True)) == "OK"
    assert describe_quality({"ok": True, "inconsistent": ["limb_reversal"]}).startswith("OK (左右の腕電極")
    assert quality_words(q) == ["missing", "lead_off", "noise"]
    assert quality_words({"ok": False, "usable_leads": []}) == ["no_usable"]
    line = format_measurements({"hr_bpm": 72.4, "pr_ms": None, "axis_deg": 45, "rhythm_regular": False})
    assert line.startswith("心拍数 72 bpm") and "PR —" in line and "QRS 軸 45°" in line and line.endswith("RR 不整")
    assert format_measurements(None, "en") == "no measurements"


def test_summary_of_a_result_carries_why_and_never_guesses():
    r = Result(quality=Quality(ok=True), top=[{"id": "SR", "ja": "洞調律", "en": "sinus rhythm", "score": 0.61}],
               findings=["SR", "LNGQT"], why={"SR": Why("model", score=0.61, threshold=0.52),
                                             "LNGQT": Why("criteria", rule="QTc", values={"qtc_ms": 480.0})},
               scores=__import__("numpy").zeros(2), measurements={"hr_bpm": 70.0})
    s = summarise(r, [{"id": "LNGQT", "ja": "QT延長", "en": "long QT"}])
    assert [f["id"] for f in s["findings"]] == ["SR", "LNGQT"]
    assert s["findings"][1]["ja"] == "QT延長" and s["findings"][1]["why"]["by"] == "criteria"
    assert s["findings"][1]["why_text"]["ja"] == "基準 QTc: QTc (Bazett) 480 ms"
    assert s["top"][0]["finding"] and s["quality_text"] == "OK" and s["measurements_text"].startswith("心拍数 70")
    assert "by_rule" not in s["findings"][0]  # no view infers a rule from a score below its threshold


def test_legends_say_scores_are_cosines_and_findings_have_reasons():
    for lang, words in (("ja", ("コサイン", "リズム解析", "基準", "モデル")), ("en", ("cosine", "rhythm", "criterion"))):
        text = " ".join(LEGEND[lang])
        assert all(w in text for w in words), (lang, text)
        assert "類似度" not in text or "コサイン" in text


def test_the_page_has_no_second_copy_of_the_vocabulary():
    web = resources.files("edge.views").joinpath("web")
    i18n = web.joinpath("i18n.js").read_text(encoding="utf-8")
    app = web.joinpath("app.js").read_text(encoding="utf-8")
    vocab = vocabulary()
    page_keys = set(re.findall(r"^\s+(\w+):", i18n, re.M)) | set(re.findall(r"(\w+): \"", i18n))
    # measurement, quality and why words live only in Python
    assert not ({"lead_off", "missing", "legend", "by_rule", "qtc", "inc_scale"} & page_keys)
    used = set(re.findall(r"\bt\(\"(\w+)\"\)", app)) | set(re.findall(r"\[\"(m_\w+)\",", app))
    used |= set(re.findall(r'data-i18n="(\w+)"', web.joinpath("index.html").read_text(encoding="utf-8")))
    missing = {k for k in used if k not in vocab["ja"] and k not in page_keys}
    assert not missing, missing
    assert "/vocabulary.json" in app
