"""Does a stated finding contradict the window's own measurements? (DESIGN.md contract 8.4)

:func:`contradictions` checks a window's stated ids against its measurements (contract 7) with the plain
definitions a clinician checks at a glance, independently of how the decision was made:

- PR-based labels need a measured PR in their range (I度房室ブロック / PR延長 > 200 ms; PR短縮 / WPW < 120 ms);
- QRS-width labels need a measured QRS of that width (complete bundle branch block, IVCD >= 110 ms with
  10 ms of measurement tolerance under the 120 ms criterion; incomplete < 130 ms; WPW measured);
- axis labels need the axis (左軸偏位 -90..-30, 右軸偏位 +90..+180, 左脚前枝ブロック <= -45, 左脚後枝ブロック >= +90);
- rate labels the rate (洞性頻脈, tachycardias > 100; 洞性徐脈, 徐脈 < 60; 洞調律 50-100; beside a second- or
  third-degree AV block the sinus statement names the atrial rate, and the ventricular rate cannot contradict it);
- P-wave labels (sinus rhythms, atrial abnormality, PR labels) a P wave; 心房細動/心房粗動 no sinus P wave
  (no P wave found, or no PR measured);
- QT延長 a measured QTc >= 450 ms (Bazett or Fridericia); 低電位 the low voltage; 正常心電図 nothing abnormal measured (rate 50-100, PR
  <= 220 ms, QRS < 120 ms, QTc < 470 ms, axis -30..+90).

A value not measured cannot contradict anything except where the label needs it (PR, QRS, axis, rate, P).
Used by the consistency test over every real record (tests/test_consistency_real.py) and the criteria
benchmark. Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

__all__ = ["AV_BLOCK", "CHECKS", "SINUS_RATE", "contradictions"]


def _num(m: Mapping, key: str) -> float | None:
    v = m.get(key)
    return None if v is None or isinstance(v, dict | list | str) else float(v)


def _need(key: str, lo: float | None = None, hi: float | None = None, what: str = "") -> Callable:
    """The label needs ``key`` measured and ``lo <= value <= hi``."""

    def check(m: Mapping) -> str | None:
        v = _num(m, key)
        if v is None:
            return f"{key} not measured"
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return f"{key} {v:g} outside {what or f'{lo}..{hi}'}"
        return None

    return check


def _p_wave(m: Mapping) -> str | None:
    p = m.get("p_present")
    return None if p else "no P wave measured"


def _atrial_p_waves(m: Mapping) -> str | None:
    """P waves: on the beats (``p_present``), or, where the atria and ventricles beat apart (AV block), as
    atrial events that outnumber the QRS complexes (``atrial.p_waves``, edge.dsp.atrial)."""
    if m.get("p_present"):
        return None
    events = (m.get("atrial") or {}).get("p_waves") or []
    beats = m.get("beats") or []
    return None if beats and len(events) > len(beats) else "no P wave measured"


def _no_sinus_p(m: Mapping) -> str | None:
    return "P wave and PR measured" if m.get("p_present") and _num(m, "pr_ms") is not None else None


def _all(*checks: Callable) -> Callable:
    def check(m: Mapping) -> str | None:
        for c in checks:
            problem = c(m)
            if problem:
                return problem
        return None

    return check


def _if_measured(key: str, lo: float | None, hi: float | None) -> Callable:
    def check(m: Mapping) -> str | None:
        return None if _num(m, key) is None else _need(key, lo, hi)(m)

    return check


def _low_voltage(m: Mapping) -> str | None:
    limb, chest = _num(m, "limb_qrs_max_mv"), _num(m, "chest_qrs_max_mv")
    if limb is None and chest is None:
        return None
    if (limb is not None and limb < 0.5) or (chest is not None and chest < 1.0):
        return None
    return f"QRS voltage not low (limb {limb}, chest {chest} mV)"


_SINUS = _all(_p_wave)
CHECKS: dict[str, Callable[[Mapping], str | None]] = {
    "1AVB": _all(_p_wave, _need("pr_ms", 200, None, "> 200 ms")),
    "LPR": _all(_p_wave, _need("pr_ms", 200, None, "> 200 ms")),
    "SPR": _all(_p_wave, _need("pr_ms", None, 120, "< 120 ms")),
    "WPW": _all(_need("pr_ms", None, 120, "< 120 ms"), _need("qrs_ms", 100, None, ">= 100 ms")),
    "CRBBB": _need("qrs_ms", 110, None, ">= 110 ms"),
    "CLBBB": _need("qrs_ms", 110, None, ">= 110 ms"),
    "IVCD": _need("qrs_ms", 110, None, ">= 110 ms"),
    "IRBBB": _need("qrs_ms", 90, 130, "90..130 ms"),
    "ILBBB": _need("qrs_ms", 90, 130, "90..130 ms"),
    "LAD": _need("axis_deg", -90, -30, "-90..-30 deg"),
    "RAD": _need("axis_deg", 90, 180, "+90..+180 deg"),
    "LAFB": _need("axis_deg", -90, -45, "-90..-45 deg"),
    "LPFB": _need("axis_deg", 90, 180, "+90..+180 deg"),
    "STACH": _all(_p_wave, _need("hr_bpm", 100, None, "> 100 bpm")),
    "SBRAD": _all(_p_wave, _need("hr_bpm", None, 60, "< 60 bpm")),
    "BRADY": _need("hr_bpm", None, 60, "< 60 bpm"),
    "SR": _all(_SINUS, _need("hr_bpm", 50, 100.5, "50..100 bpm")),
    "SARRH": _SINUS,
    "SVTAC": _need("hr_bpm", 100, None, "> 100 bpm"),
    "PSVT": _need("hr_bpm", 100, None, "> 100 bpm"),
    "AT": _need("hr_bpm", 100, None, "> 100 bpm"),
    "VT": _need("hr_bpm", 100, None, "> 100 bpm"),
    "LAE": _p_wave,
    "RAE": _p_wave,
    "AFIB": _no_sinus_p,
    "AFLT": _no_sinus_p,
    "LNGQT": lambda m: None if (_num(m, "qtcf_ms") or 0) >= 450 else _need("qtc_ms", 450, None, ">= 450 ms")(m),
    "LVOLT": _low_voltage,
    "NORM": _all(
        _if_measured("hr_bpm", 50, 100.5),
        _if_measured("pr_ms", None, 220),
        _if_measured("qrs_ms", None, 120),
        _if_measured("qtc_ms", None, 470),
        _if_measured("axis_deg", -30, 90.5),
    ),
}


# second- and third-degree AV block: the atria (the sinus node) and the ventricles beat at different rates, so
# the ventricular rate (hr_bpm) says nothing about the sinus rate the statement names; its P waves still count
# (before the beats, or as atrial events outnumbering the QRS: non-conducted and dissociated P waves)
AV_BLOCK = frozenset({"2AVB", "3AVB", "MOBITZ1", "MOBITZ2"})
SINUS_RATE = frozenset({"SR", "SBRAD", "STACH"})


def contradictions(findings: Iterable[str], measurements: Mapping | None) -> list[tuple[str, str]]:
    """``[(label id, what contradicts it)]`` for the stated ``findings`` of one window (with an AV block
    stated beside it, a sinus rate statement needs its P wave, not a ventricular rate in its range)."""
    m = measurements or {}
    findings = list(findings)
    blocked = bool(AV_BLOCK.intersection(findings))
    out = []
    for lid in findings:
        check = _atrial_p_waves if blocked and lid in SINUS_RATE else CHECKS.get(lid)
        problem = check(m) if check is not None else None
        if problem:
            out.append((lid, problem))
    return out
