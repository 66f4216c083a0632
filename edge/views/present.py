"""How a result is put into words, once, for every view (the web page, the terminal view, the ``classify`` table
and the report): one Japanese/English vocabulary for measurements, signal quality and the reasons a finding was
stated, and one summary of a result (DESIGN.md contract 5 v3).

- :data:`MEASURES`: the measurements shown, in display order, with names, units and digits;
- :data:`QUALITY_WORDS`: the quality problems (every ``edge.runtime.result.QUALITY_PROBLEMS``, missing samples,
  inconsistent limb leads, no usable lead);
- :func:`why_text`: a finding's ``why`` in words - by the rhythm analysis, by a named criterion with the values
  it read, or by the model (its cosine at or above the label's threshold). Views render ``why``; none guesses;
- :func:`summarise`: one summary of a result (a :class:`edge.runtime.result.Result` or its JSON line);
- :func:`vocabulary`: all of the above as JSON, which the web page loads (``/vocabulary.json``) instead of
  keeping a second copy;
- :data:`LEGEND`: what the numbers mean, as true as the code: scores are cosines; findings are decided by the
  rhythm analysis, a criterion or the model's threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edge.interpret.why import BY_CRITERIA, BY_MODEL, BY_RHYTHM
from edge.runtime.result import Quality, Result

__all__ = [
    "MEASURES",
    "QUALITY_WORDS",
    "WHY_WORDS",
    "LEGEND",
    "LEGEND_SHORT",
    "format_measurements",
    "measurement_items",
    "describe_quality",
    "quality_words",
    "why_text",
    "summarise",
    "vocabulary",
]

LANGS = ("ja", "en")

# key, Japanese, English, unit, digits: the global measurements a clinician reads, in display order
MEASURES: tuple[tuple[str, str, str, str, int], ...] = (
    ("hr_bpm", "心拍数", "HR", "bpm", 0),
    ("rr_ms", "RR", "RR", "ms", 0),
    ("pr_ms", "PR", "PR", "ms", 0),
    ("qrs_ms", "QRS", "QRS", "ms", 0),
    ("qt_ms", "QT", "QT", "ms", 0),
    ("qtc_ms", "QTc (Bazett)", "QTc (Bazett)", "ms", 0),
    ("qtcf_ms", "QTcF", "QTcF", "ms", 0),
    ("axis_deg", "QRS 軸", "QRS axis", "°", 0),
    ("sv1_rv5_mv", "SV1+RV5", "SV1+RV5", "mV", 2),
)
# names of the other measurement keys a criterion may read (shown in why)
_OTHER_NAMES = {
    "rr_irregularity": ("RR 変動係数", "RR variation", "", 2),
    "rhythm_regular": ("RR 整", "regular RR", "", 0),
    "p_present": ("P 波", "P wave", "", 0),
    "p_dur_ms": ("P 幅", "P duration", "ms", 0),
    "p_axis_deg": ("P 軸", "P axis", "°", 0),
    "t_axis_deg": ("T 軸", "T axis", "°", 0),
    "ptf_v1": ("V1 P 終末陰性部", "P-terminal force V1", "mV·ms", 0),
    "sv1_mv": ("SV1", "SV1", "mV", 2),
    "rv5_mv": ("RV5", "RV5", "mV", 2),
    "rv6_mv": ("RV6", "RV6", "mV", 2),
    "ravl_mv": ("RaVL", "RaVL", "mV", 2),
    "sv3_mv": ("SV3", "SV3", "mV", 2),
    "limb_qrs_max_mv": ("四肢誘導 QRS 最大", "max limb-lead QRS", "mV", 2),
    "chest_qrs_max_mv": ("胸部誘導 QRS 最大", "max chest-lead QRS", "mV", 2),
    "n_beats": ("心拍数 (拍)", "beats", "", 0),
    # what the rhythm analysis reads (edge.interpret.rhythm)
    "rr_cv": ("RR 変動係数", "RR variation", "", 2),
    "rr_change_share": ("RR 急変の割合", "share of abrupt RR changes", "", 2),
    "p_share": ("P 波のある心拍の割合", "share of beats with a P wave", "", 2),
    "atrial_rate_bpm": ("心房レート", "atrial rate", "bpm", 0),
    # the rhythm modifiers' counts (edge.interpret.rhythm.MODIFIER_RULES)
    "beats": ("窓内の心拍", "beats in the window", "拍", 0),
    "V": ("心室期外収縮", "premature ventricular beats", "拍", 0),
    "S": ("心房期外収縮", "premature supraventricular beats", "拍", 0),
    "nonconducted_p": ("伝導されないP波", "non-conducted P waves", "", 0),
    "atrial_organisation": ("心房波の規則性", "atrial organisation", "", 2),
    "p_ii_mv": ("II の P 波", "P wave in II", "mV", 2),
    "sinus_rate_bpm": ("洞レート", "sinus rate", "bpm", 0),
    "model_score": ("モデルのコサイン", "model cosine", "", 3),
    # what the criteria read beside the measurements (edge.interpret.decide)
    "reciprocal_st_depression": ("対側性ST低下", "reciprocal ST depression", "", 0),
}
# per-lead measurements (contract 7 v2 ``leads``), shown as ``<lead> <name> <value>``
LEAD_NAMES = {
    "p_pos_mv": ("P 陽性", "P+", "mV", 2), "p_neg_mv": ("P 陰性", "P-", "mV", 2), "p_dur_ms": ("P 幅", "P", "ms", 0),
    "q_mv": ("Q 深さ", "Q depth", "mV", 2), "q_ms": ("Q 幅", "Q width", "ms", 0), "r_mv": ("R", "R", "mV", 2),
    "r_ms": ("R 幅", "R width", "ms", 0), "s_mv": ("S", "S", "mV", 2), "s_ms": ("S 幅", "S width", "ms", 0),
    "r2_mv": ("R'", "R'", "mV", 2), "s2_mv": ("S'", "S'", "mV", 2), "qrs_ms": ("QRS", "QRS", "ms", 0),
    "qrs_area": ("QRS 面積", "QRS area", "", 2), "st_j_mv": ("ST (J 点)", "ST at J", "mV", 2),
    "st_60_mv": ("ST (J+60 ms)", "ST at J+60 ms", "mV", 2), "rs_ratio": ("R/S 比", "R/S", "", 2),
    "qrs_pp_mv": ("QRS 振幅", "QRS peak-to-peak", "mV", 2), "t_pos_mv": ("T 陽性", "T+", "mV", 2),
    "t_neg_mv": ("T 陰性", "T-", "mV", 2), "qr_ratio": ("Q/R", "Q/R", "", 2),
}
NAMES = {key: (ja, en, unit, digits) for key, ja, en, unit, digits in MEASURES} | _OTHER_NAMES

QUALITY_WORDS = {
    "ok": ("良好", "good"),
    "lead_off": ("電極外れ", "lead off"),
    "flat": ("平坦 (電極外れ?)", "flat (lead off?)"),
    "saturated": ("飽和 (ノイズ)", "saturated (noise)"),
    "implausible": ("異常振幅 (ノイズ)", "implausible amplitude (noise)"),
    "noise": ("ノイズ", "noise"),
    "missing": ("欠損", "missing"),
    "error": ("エラー", "error"),
    "no_usable": ("使える誘導がありません：電極の装着を確認してください（判定していません）",
                  "No usable lead: check the electrodes (not classified)"),
    "inc_einthoven": ("四肢誘導の不整合（III ≠ II − I）", "limb leads inconsistent (III ≠ II − I)"),
    "inc_goldberger": ("増高肢誘導の不整合", "augmented leads inconsistent"),
    "inc_limb_reversal": ("左右の腕電極の付け違いの疑い", "arm electrodes swapped?"),
    "inc_scale": ("振幅（校正）が不自然", "implausible amplitude scale"),
    "poor": ("不良", "poor"),
    "unknown": ("理由不明", "reason unknown"),
    "samples": ("サンプル", "samples"),
}

WHY_WORDS = {
    BY_RHYTHM: ("リズム解析", "rhythm analysis"),
    BY_CRITERIA: ("基準", "criterion"),
    BY_MODEL: ("モデル", "model"),
    "withheld": ("保留", "withheld"),
    "unverified": ("未検証", "unverified"),
}

LEGEND = {
    "ja": (
        "スコア = 心電図と所見ラベル文の埋め込みのコサイン類似度 (-1〜1、高いほど近い)。候補の並びには計測値の基準も加味",
        "所見の根拠: リズム解析 / 基準 (計測値が公表基準を満たす) / モデル (コサイン ≥ ラベルごとの閾値)",
        "未検証 = 学習例のないラベル (ゼロショット、精度未検証)",
        "診断ではありません: 必ず医師が心電図を確認してください",
    ),
    "en": (
        "Score = cosine similarity of the ECG to the label's text embedding (-1 to 1, higher is closer); the "
        "candidates' order also weighs the measurement criteria",
        "Why a finding is stated: rhythm analysis / criterion (a measurement meets a published criterion) / model "
        "(cosine at or above the label's threshold)",
        "unverified = label without training examples (zero-shot, accuracy not validated)",
        "Not a diagnosis: a physician must read the ECG",
    ),
}


# The same, in short items for an 80-column terminal (edge.views.terminal).
LEGEND_SHORT = {
    "ja": (
        "凡例: スコア = コサイン類似度 (-1〜1)",
        "* = 所見",
        "根拠: リズム解析 / 基準 (計測値) / モデル (コサイン ≥ 閾値)",
        "未検証 = 学習例のないラベル (ゼロショット)",
        "診断ではありません: 必ず医師が心電図を確認してください",
    ),
    "en": (
        "Legend: score = cosine similarity (-1 to 1)",
        "* = finding",
        "why: rhythm analysis / criterion (measurements) / model (cosine ≥ threshold)",
        "unverified = label without training examples (zero-shot)",
        "Not a diagnosis: a physician must read the ECG",
    ),
}


def _i(lang: str) -> int:
    return 0 if lang == "ja" else 1


def _value(key: str, value: Any, lang: str = "ja") -> str:
    """One measurement value with its unit (— when not measured; booleans in words)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return ("あり" if value else "なし") if lang == "ja" else ("yes" if value else "no")
    _, _, unit, digits = NAMES.get(key) or LEAD_NAMES.get(key.rpartition(".")[2], (key, key, "", 2))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    text = ("∞" if number > 0 else "-∞") if number in (float("inf"), float("-inf")) else f"{number:.{digits}f}"
    return f"{text}{unit}" if unit == "°" else (f"{text} {unit}" if unit else text)


def measurement_items(m: Mapping | None, lang: str = "ja") -> list[tuple[str, str]]:
    """``[(name, value with unit)]`` of the shown measurements (:data:`MEASURES`), then the RR regularity."""
    m = m or {}
    items = [(ja if lang == "ja" else en, _value(key, m.get(key), lang)) for key, ja, en, _, _ in MEASURES]
    if m.get("rhythm_regular") is not None:
        regular = m["rhythm_regular"]
        items.append(("RR", ("整" if regular else "不整") if lang == "ja" else ("regular" if regular else "irregular")))
    return items


def format_measurements(m: Mapping | None, lang: str = "ja", sep: str = "  ") -> str:
    """The measurements as one line: ``心拍数 72 bpm  PR 160 ms  QRS 94 ms ...`` (— where not measurable)."""
    if not m:
        return "計測値なし" if lang == "ja" else "no measurements"
    return sep.join(f"{name} {value}" for name, value in measurement_items(m, lang))


def quality_words(quality: Mapping | Quality | None) -> list[str]:
    """Codes of what is wrong with a window (keys of :data:`QUALITY_WORDS`), for the page's badges."""
    q = Quality.from_dict(quality)
    words = []
    if q.missing_samples:
        words.append("missing")
    if q.lead_off or q.flat:
        words.append("lead_off")
    if q.saturated or q.implausible:
        words.append("noise")
    if q.error:
        words.append("error")
    if q.usable_leads == []:
        words.append("no_usable")
    words += [f"inc_{code}" for code in q.inconsistent]
    return words


def describe_quality(quality: Mapping | Quality | None, lang: str = "ja") -> str:
    """One line: ``OK`` or what is wrong (``不良 (電極外れ: V1; 欠損 10 サンプル)``)."""
    q = Quality.from_dict(quality)
    if q.ok and not q.inconsistent:
        return "OK"
    i = _i(lang)
    parts = []
    if q.missing_samples:
        parts.append(f"{QUALITY_WORDS['missing'][i]} {q.missing_samples} {QUALITY_WORDS['samples'][i]}")
    for key, leads in q.problems().items():
        parts.append(f"{QUALITY_WORDS[key][i]}: {','.join(leads)}")
    parts += [QUALITY_WORDS.get(f"inc_{c}", (c, c))[i] for c in q.inconsistent]
    if q.error:
        parts.append(str(q.error))
    if q.ok:  # read, with something to know (e.g. inconsistent limb leads)
        return "OK (" + "; ".join(parts) + ")"
    return f"{QUALITY_WORDS['poor'][i]} (" + "; ".join(parts or [QUALITY_WORDS["unknown"][i]]) + ")"


def _name(key: str, i: int) -> str:
    """A measurement's name: global (``qtc_ms``) or per lead (``III.q_ms`` -> ``III Q 幅``)."""
    if key in NAMES:
        return NAMES[key][i]
    lead, _, sub = key.rpartition(".")
    if lead and sub in LEAD_NAMES:
        return f"{lead} {LEAD_NAMES[sub][i]}"
    return key


def why_text(why: Any, lang: str = "ja", values: bool = True) -> str:
    """A finding's ``why`` (:class:`edge.interpret.why.Why` or its JSON) in words:
    ``リズム解析: <rule>`` / ``基準 <rule>: QTc 478 ms`` / ``モデル 0.412 ≥ 0.318``."""
    if why is None:
        return ""
    w = why.to_json() if hasattr(why, "to_json") else dict(why)
    by = w.get("by")
    i = _i(lang)
    head = WHY_WORDS.get(by, (str(by), str(by)))[i]
    if by == BY_MODEL:
        score, threshold = w.get("score"), w.get("threshold")
        if score is None:
            return head
        return f"{head} {score:.3f} ≥ {threshold:.3f}" if threshold is not None else f"{head} {score:.3f}"
    read = (w.get("values") or {}) if values else {}  # values=False: the short form (a narrow terminal)
    shown = ("、" if lang == "ja" else ", ").join(
        f"{_name(k, i)} {_value(k, v, lang)}" for k, v in read.items() if not isinstance(v, dict)
    )
    rule = w.get("rule")
    text = f"{head} {rule}" if rule else head
    return f"{text}: {shown}" if shown else text


def alarm_text(alarms: Sequence[Mapping], fid: str) -> str:
    """Where an alarm was read, in Japanese: ``下壁 II, III, aVF（対側性ST低下 I, aVL）`` per territory."""
    parts = []
    for a in alarms:
        if a.get("id") != fid:
            continue
        text = f"{a.get('territory_ja') or a.get('territory') or ''} {', '.join(a.get('leads') or [])}".strip()
        if a.get("reciprocal"):
            text += f"（対側性ST低下 {', '.join(a.get('reciprocal_leads') or [])}）"
        parts.append(text)
    return "; ".join(parts)


def summarise(result: Result | Mapping, labels: Sequence[Mapping] = (), lang: str = "ja") -> dict:
    """One summary of a result for any view: measurements and quality in words, the stated findings with their
    names, zero-shot flag and why (JSON and words), the top labels with their cosines, what was withheld."""
    line = result.to_json() if isinstance(result, Result) else dict(result)
    by_id = {lb["id"]: lb for lb in labels}
    top = {t.get("id"): t for t in line.get("top") or []}
    why = line.get("why") or {}
    stated_ids = list(line.get("findings") or [])
    stated_ids += [z for z in line.get("zero_shot_findings") or [] if z not in stated_ids]
    zero_shot_ids = set(line.get("zero_shot_findings") or [])
    alarms = {a.get("id"): a for a in line.get("alarms") or [] if isinstance(a, Mapping)}
    stated_ids.sort(key=lambda fid: fid not in alarms)  # alarms (ST elevation) first, in the alarm colour
    findings = []
    for fid in stated_ids:
        label, item = by_id.get(fid, {}), top.get(fid, {})
        findings.append({
            "id": fid,
            "ja": item.get("ja") or label.get("ja") or fid,
            "en": item.get("en") or label.get("en") or fid,
            "zero_shot": bool(fid in zero_shot_ids or ((item.get("zero_shot") or label.get("zero_shot"))
                                                       and (why.get(fid) or {}).get("by", "model") == "model")),
            "why": why.get(fid),
            "why_text": {lg: why_text(why.get(fid), lg) for lg in LANGS},
            "alarm": fid in alarms,
            "alarm_text": alarm_text(line.get("alarms") or [], fid) if fid in alarms else "",
        })
    quality = line.get("quality") or {}
    return {
        "skipped": bool(line.get("skipped")),
        "measurements": line.get("measurements") or {},
        "measurements_text": format_measurements(line.get("measurements"), lang) if not line.get("skipped") else "",
        "quality_ok": bool(quality.get("ok")),
        "quality_text": describe_quality(quality, lang),
        "quality_words": quality_words(quality),
        "findings": findings,
        "top": [{"id": t.get("id"), "ja": t.get("ja"), "en": t.get("en"), "score": t.get("score"),
                 "zero_shot": bool(t.get("zero_shot")), "finding": t.get("id") in stated_ids}
                for t in line.get("top") or []],
        "withheld": dict(line.get("withheld") or {}),
        "withheld_names": {lid: {"ja": (by_id.get(lid) or {}).get("ja") or lid, "en": (by_id.get(lid) or {}).get("en") or lid}
                           for lid in line.get("withheld") or {}},
        "rhythm": line.get("rhythm"),
    }


def vocabulary() -> dict:
    """Every word above, per language, as the web page loads it (``/vocabulary.json``)."""
    out: dict = {}
    for i, lang in enumerate(LANGS):
        words = {key: pair[i] for key, pair in QUALITY_WORDS.items()}
        words |= {f"why_{key}": pair[i] for key, pair in WHY_WORDS.items()}
        words |= {f"m_{key}": names[i] for key, names in NAMES.items()}
        words |= {f"lead_{key}": names[i] for key, names in LEAD_NAMES.items()}
        words["legend"] = " ".join(LEGEND[lang])
        out[lang] = words
    out["measures"] = [{"key": k, "unit": u, "digits": d} for k, _, _, u, d in MEASURES]
    return out
