"""One rhythm statement per window (DESIGN.md contract 8.1, contract 5 v3 ``rhythm``).

The first line of an ECG interpretation is the rhythm. :func:`analyse_rhythm` decides it deterministically
from a window's measurements (contract 7 v2: the typed beats with their P waves, PR, RR pattern, the atrial
activity and the pacing spikes), the way the established interpretation programs do, and returns a
:class:`Rhythm`: exactly one primary statement (a catalogue id, or ``"undetermined"`` with its reason),
modifiers (premature beats with counts, bigeminy/trigeminy, AV block degree), and whether the model's rhythm
scores strongly disagree (要確認, both readings shown; neither silently overrules the other).

Criteria (AHA/ACCF/HRS 2007 statement list, Mason et al., "AHA-II" in ``shared/reference/ecg-criteria.md``):

- paced rhythm: pacing spikes before the QRS (ventricular) and/or the P wave (atrial) of most beats;
- atrial fibrillation: no consistent P waves, irregularly irregular RR (the RR-interval tests of
  Tateno & Glass 2001 / Lake & Moorman's coefficient of sample entropy family are summarised here by the
  normalised successive differences and the share of beats whose RR differs from the previous one by more than
  ``AF_DRR``; see :func:`rr_irregularity`), fibrillatory atrial activity (no dominant organised frequency);
- atrial flutter: regular atrial activity at 240-340/min (``atrial.rate_bpm``) with organised waves;
- supraventricular tachycardia: a regular narrow-QRS tachycardia > 100/min without sinus P waves;
- junctional rhythm: narrow QRS at 40-100/min without P waves before it (or with retrograde, PR < 120 ms);
- ventricular tachycardia: wide QRS (>= 120 ms) tachycardia > 100/min without related P waves;
- sinus rhythm / bradycardia / tachycardia / arrhythmia: P waves before the QRS of most dominant beats at
  60-100 / < 60 / > 100/min; sinus arrhythmia when the RR (P-P) of the dominant beats varies by > 8 % (AHA: 10 %) and
  > 160 ms without ectopy;
- modifiers: ``PVC`` / ``PAC`` (premature ventricular / supraventricular beats, counted), ``BIGU`` / ``TRIGU``
  (every 2nd / 3rd beat premature), ``1AVB`` (PR > 200 ms), ``2AVB`` with ``MOBITZ1`` (PR lengthening before a
  non-conducted P) or ``MOBITZ2`` (constant PR, then a non-conducted P; 2:1 is stated as ``2AVB`` with
  ``detail`` "2:1"), ``3AVB`` (P waves and QRS independent, atrial rate above the ventricular rate).

The measures of the beat sequence these criteria read (beat types and P waves, RR irregularity, bigeminy /
trigeminy, the AV-conduction analysis and the long PR) are in :mod:`edge.interpret.beat_sequence`;
:func:`rr_irregularity` is importable from here as before.

numpy and the standard library only (device code).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edge.dsp.beats import median  # np.median's values without importing numpy.ma (1.2 MiB, #23)
from edge.interpret.beat_sequence import (
    av_block,
    beats,
    long_pr,
    pattern,
    rr_irregularity,
)
from edge.interpret.catalogue import load_catalogue
from edge.interpret.criteria_check import contradictions
from edge.interpret.why import BY_RHYTHM, Why

__all__ = [
    "UNDETERMINED",
    "PRIMARY_RHYTHMS",
    "RHYTHM_MODIFIERS",
    "Rhythm",
    "analyse_rhythm",
    "consistent",
    "rr_irregularity",
]

UNDETERMINED = "undetermined"
# the catalogue ids a statement can take, and the modifiers' ids (edge/data/labels.json)
PRIMARY_RHYTHMS = ("SR", "SBRAD", "STACH", "SARRH", "AFIB", "AFLT", "SVTAC", "JR", "VT", "PACE")
RHYTHM_MODIFIERS = ("PVC", "PAC", "BIGU", "TRIGU", "1AVB", "2AVB", "MOBITZ1", "MOBITZ2", "3AVB")
SOURCE = "AHA/ACCF/HRS 2007 (Mason et al.), diagnostic statement list"

# The modifiers' own rules and the values they read (counts from ``Rhythm.counts``, the rest from ``values``).
MODIFIER_RULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "PVC": ("心室期外収縮: 幅広い早期心拍", ("beats", "V")),
    "PAC": ("心房期外収縮: 幅の狭い早期心拍", ("beats", "S")),
    "BIGU": ("二段脈: 期外収縮が1拍おき", ("beats", "V", "S")),
    "TRIGU": ("三段脈: 期外収縮が2拍おき", ("beats", "V", "S")),
    "1AVB": ("I度房室ブロック: PR > 200 ms", ("pr_ms",)),
    "2AVB": ("II度房室ブロック: 伝導されないP波", ("nonconducted_p", "atrial_rate_bpm")),
    "MOBITZ1": ("Wenckebach型: PRが延長して脱落", ("nonconducted_p", "atrial_rate_bpm")),
    "MOBITZ2": ("Mobitz II型: PR一定のまま脱落", ("nonconducted_p", "atrial_rate_bpm")),
    "3AVB": ("III度房室ブロック: 房室解離", ("nonconducted_p", "atrial_rate_bpm")),
}

MIN_BEATS = 4  # fewer beats in a window: rhythm undetermined (too few RR intervals to judge regularity)
BRADY_BPM, TACHY_BPM = 60.0, 100.0
WIDE_QRS_MS = 120.0
P_SHARE_SINUS = 0.7  # share of dominant beats with a P wave before them for a sinus (or atrial) rhythm
P_SHARE_NONE = 0.3  # at or below this share of beats with a P wave: no consistent P waves
AF_NRMSSD = 0.08  # normalised RMSSD of RR above which the RR is irregular
AF_CHANGE_SHARE = 0.5  # share of successive RR changes > AF_DRR for an irregularly irregular rhythm
# sinus arrhythmia: dominant RR varies by > 8 % and > 160 ms (AHA-II says > 10 %; PTB-XL folds 1-9: its
# cardiologists call SARRH from a median 8.6 %, and 8 % keeps 2 % of SR records: Se 0.65, false 0.02)
SARRH_CV, SARRH_MS = 0.08, 160.0
# atrial flutter: organised atrial activity at this rate (AHA-II: 240-340/min typical; up to 360 accepted, as
# atypical flutter runs faster: PTB-XL 00449's 2:1 flutter measured 354/min)
FLUTTER_BPM = (240.0, 360.0)
FLUTTER_ORGANISATION = 0.5  # organisation index (0..1) of the atrial activity for flutter
FLUTTER_ORGANISATION_IRREGULAR = 0.6  # ... when the RR is irregularly irregular
# a "P wave" this negative in II is not sinus (sinus P axis 0 to +90 deg); chosen on PTB-XL folds 1-9
# (sinus tachycardia down to -0.11 mV, 2:1 flutter -0.26 to -0.35 mV) and the record 00449 (-0.15)
P_II_INVERTED_MV = -0.14
P_II_UPRIGHT_MV = 0.05  # a sinus P wave is upright in II: at least this tall (the synthetic sinus P: 0.15)
SVT_BPM = 140.0  # a regular narrow tachycardia above this without upright P waves: SVT
# a regular wide-QRS tachycardia is VT from this rate (AHA-II: > 100); slower, with a P wave before each beat, it
# is read as a sinus rhythm with a wide QRS (PTB-XL folds 4-5: 00263 at 107/min, 00279 at 115/min, both STACH)
VT_BPM = 120.0
FLUTTER_2TO1_MAX_BPM = 356.0  # 2:1 flutter up to 178/min ventricular (faster: SVT)
FLUTTER_LOCKED_ORGANISATION = 0.3
FLUTTER_RMS_MV = 0.03
# share of the P window where the P template is active: a P wave ~0.25-0.4 of it, flutter waves >= 0.52
# (synthetic flutter, PTB-XL fold-9 flutter records 17, 18, 20, 23; sinus records 1-5, 45, 102)
FLUTTER_ACTIVE = 0.5
MODEL_MARGIN = 0.05  # the model "strongly" reads another rhythm: its cosine >= threshold + this margin

# model readings that agree with a statement (the same family, e.g. sinus rhythm and sinus arrhythmia)
_FAMILY = {
    "SR": {"SR", "SARRH", "SBRAD", "STACH", "BRADY"},
    "SARRH": {"SR", "SARRH", "SBRAD", "STACH"},
    "SBRAD": {"SR", "SARRH", "SBRAD", "BRADY"},
    "STACH": {"SR", "SARRH", "STACH", "SVTAC", "AT"},
    "AFIB": {"AFIB", "AFLT"},
    "AFLT": {"AFIB", "AFLT", "SVTAC", "AT"},
    "SVTAC": {"SVTAC", "PSVT", "AT", "STACH", "AFLT"},
    "JR": {"JR", "SBRAD", "BRADY"},
    "VT": {"VT", "VF"},
    "PACE": {"PACE"},
}
_MODEL_RHYTHMS = ("SR", "SARRH", "SBRAD", "STACH", "AFIB", "AFLT", "SVTAC", "PSVT", "AT", "JR", "VT", "PACE")


@dataclass(frozen=True)
class Rhythm:
    """A window's rhythm (contract 5 v3 ``rhythm``); :meth:`to_json` gives the line's object.

    ``statement``: one primary rhythm id of the catalogue (:data:`PRIMARY_RHYTHMS`) or ``"undetermined"``.
    ``modifiers``: ids of :data:`RHYTHM_MODIFIERS` (premature beats, bigeminy, AV block).
    ``counts``: beats by type (``N``, ``S``, ``V``, ``P``, ``Q``), ``beats``, and where found
    ``nonconducted_p`` (P waves without a QRS) and ``spikes`` (pacing spikes).
    ``reason``: in Japanese, what the statement was read from (or why none could be made).
    ``detail``: a sub-type a view shows beside the statement (``"atrial"``, ``"ventricular"``, ``"dual"``
    pacing; ``"2:1"`` AV block; ``"idioventricular"``), else ``None``.
    ``values``: the measurements the decision read (bpm, ms, ratios), for the ``why`` entry.
    ``model_disagrees``: the model's rhythm reading ``model_reading`` (a catalogue id) strongly contradicts
    the statement: views show 要確認 with both readings.
    """

    statement: str
    modifiers: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    detail: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    model_disagrees: bool = False
    model_reading: str | None = None
    rule: str = ""

    @property
    def determined(self) -> bool:
        return self.statement != UNDETERMINED

    @property
    def ids(self) -> list[str]:
        """The statement (when determined) and the modifiers: what goes into ``findings``."""
        return ([self.statement] if self.determined else []) + list(self.modifiers)

    def why(self, label: str | None = None) -> Why:
        """The contract-5 ``why`` entry (``by: "rhythm"``) of the statement, or of one modifier: a premature
        beat is stated from its beat count, an AV block from its P waves and PR, not from the sinus rule."""
        if label is None or label == self.statement or label not in MODIFIER_RULES:
            return Why(by=BY_RHYTHM, rule=self.rule or self.statement, source=SOURCE, values=dict(self.values))
        rule, keys = MODIFIER_RULES[label]
        values = {k: self.counts[k] for k in ("beats", "V", "S", "nonconducted_p") if k in keys and k in self.counts}
        values.update({k: self.values[k] for k in keys if k in self.values})
        return Why(by=BY_RHYTHM, rule=rule, source=SOURCE, values=values)

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "statement": self.statement,
            "modifiers": list(self.modifiers),
            "counts": dict(self.counts),
            "reason": self.reason,
            "model_disagrees": bool(self.model_disagrees),
        }
        if self.detail is not None:
            out["detail"] = self.detail
        if self.model_reading is not None:
            out["model_reading"] = self.model_reading
        return out


def analyse_rhythm(
    measurements: Mapping | None,
    fs: float,
    model_scores: Mapping[str, float] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> Rhythm:
    """The rhythm of one window from its measurements (:func:`edge.dsp.measure.measure`'s dict).

    ``fs``: the window's sampling rate (the beats' ``sample`` positions are at it). ``model_scores`` /
    ``thresholds``: the model's cosine and the label's threshold by catalogue id (the second opinion);
    without them ``model_disagrees`` is false.
    """
    rhythm = _decide(measurements or {}, float(fs))
    return second_opinion(rhythm, model_scores, thresholds)


def second_opinion(
    rhythm: Rhythm, model_scores: Mapping[str, float] | None, thresholds: Mapping[str, float] | None
) -> Rhythm:
    """``rhythm`` with ``model_disagrees``/``model_reading`` set where the model strongly reads another rhythm.

    Strongly: the model's best rhythm label reaches its threshold + :data:`MODEL_MARGIN`, it is not of the
    statement's family, and the statement's own score is below its threshold.
    """
    if not model_scores or not rhythm.determined:
        return rhythm
    thr = thresholds or {}
    best, best_margin = None, -np.inf
    for rid in _MODEL_RHYTHMS:
        if rid in model_scores:
            margin = float(model_scores[rid]) - float(thr.get(rid, 0.0))
            if margin > best_margin:
                best, best_margin = rid, margin
    if best is None or best_margin < MODEL_MARGIN:
        return rhythm
    own = model_scores.get(rhythm.statement)
    own_ok = own is not None and float(own) >= float(thr.get(rhythm.statement, 0.0))
    if best in _FAMILY.get(rhythm.statement, {rhythm.statement}) or own_ok:
        return rhythm
    return Rhythm(
        statement=rhythm.statement,
        modifiers=rhythm.modifiers,
        counts=rhythm.counts,
        reason=rhythm.reason,
        detail=rhythm.detail,
        values={**rhythm.values, "model_score": round(float(model_scores[best]), 4)},
        model_disagrees=True,
        model_reading=best,
        rule=rhythm.rule,
    )


def _undetermined(reason: str, counts: dict, values: dict, detail: str | None = None) -> Rhythm:
    return Rhythm(UNDETERMINED, (), counts, reason, detail, values, rule="判定保留")


def _decide(m: Mapping, fs: float) -> Rhythm:
    samples, types, ps = beats(m)
    n = samples.size
    counts: dict[str, int] = {"beats": int(n)}
    for t in ("N", "S", "V", "P", "Q"):
        counts[t] = types.count(t)
    if n < MIN_BEATS or fs <= 0:
        reason = m.get("null_reasons", {}).get("hr_bpm") if n < 2 else None
        return _undetermined(f"心拍が少ない（{n}拍）" + (f": {reason}" if reason else ""), counts, {})
    rr = np.diff(samples) / fs
    # the rate the measurements report (and the criteria and the consistency check read): one heart rate
    hr = float(m["hr_bpm"]) if m.get("hr_bpm") is not None else 60.0 / float(rr.mean())
    irr = rr_irregularity(rr)
    # wide QRS: the global QRS duration, confirmed by the dominant beats' own width where both exist (one
    # stray boundary of either must not turn a narrow tachycardia into VT)
    qrs = m.get("qrs_ms") if m.get("qrs_ms") is not None else m.get("dominant_qrs_ms")
    own = m.get("dominant_qrs_ms")
    wide = qrs is not None and qrs >= WIDE_QRS_MS and (own is None or own >= WIDE_QRS_MS - 10.0)
    known = [bool(p) for p, t in zip(ps, types, strict=True) if p is not None and t in ("N", "Q", "S")]
    if known:
        p_share = sum(known) / len(known)
    else:
        p_share = 1.0 if m.get("p_present") else 0.0 if m.get("p_present") is False else 0.5
    atrial = m.get("atrial") or {}
    a_rate, a_org = atrial.get("rate_bpm"), atrial.get("organisation")
    paced = m.get("paced") or {}
    values = {
        "hr_bpm": round(hr, 1),
        "rr_cv": round(irr.get("cv", 0.0), 3),
        "rr_change_share": round(irr.get("change_share", 0.0), 3),
        "p_share": round(p_share, 2),
        "qrs_ms": qrs,
        "pr_ms": m.get("pr_ms"),
        "atrial_rate_bpm": a_rate,
        "atrial_organisation": a_org,
    }
    values = {k: v for k, v in values.items() if v is not None}
    dom_types = ("N", "Q")
    # the rate and RR variation of the dominant rhythm: intervals between two dominant beats
    dom_rr = np.array([rr[i - 1] for i in range(1, n) if types[i] in dom_types and types[i - 1] in dom_types])
    n_ectopic = counts["S"] + counts["V"]
    statement, rule, reason, detail = None, "", "", None

    if counts["P"] >= max(2, 0.5 * n) and (paced.get("ventricular") or paced.get("atrial")):
        statement, rule = "PACE", "ペーシングスパイクが大部分の心拍に先行"
        detail = (
            "dual"
            if paced.get("atrial") and paced.get("ventricular")
            else ("atrial" if paced.get("atrial") else "ventricular")
        )
        reason = f"ペーシングスパイク {paced.get('spikes', 0)} 個、ペーシング心拍 {counts['P']}/{n}"
    irregular = irr.get("nrmssd", 0.0) > AF_NRMSSD and irr.get("change_share", 0.0) >= AF_CHANGE_SHARE
    block, bdetail, dropped, atrial_bpm = av_block(m, samples, fs)
    if statement is None and block:
        # the atria beat regularly on their own (sinus), some or all P waves not conducted
        statement = "SBRAD" if atrial_bpm < BRADY_BPM else "STACH" if atrial_bpm > TACHY_BPM else "SR"
        rule = "規則的なP波、一部が伝導されない"
        reason = f"規則的なP波 {atrial_bpm:.0f}/分、心室 {hr:.0f}/分、伝導されないP波 {dropped} 個"
        values["atrial_rate_bpm"] = round(atrial_bpm, 1)
    flutter = (
        a_rate is not None
        and FLUTTER_BPM[0] <= a_rate <= FLUTTER_BPM[1]
        # an irregularly irregular RR needs clearer organisation: flutter with variable conduction is rarer
        # than fibrillation whose spectrum happens to peak (Challenge E00005, A0003: 0.52)
        and (a_org or 0.0) >= (FLUTTER_ORGANISATION_IRREGULAR if irregular else FLUTTER_ORGANISATION)
        and a_rate >= 1.4 * hr
    )
    if statement is None and flutter and p_share < P_SHARE_SINUS:
        statement, rule = "AFLT", "組織化された心房波 240-340/分"
        reason = f"規則的な心房波 {a_rate:.0f}/分（組織化 {a_org:.2f}）、心室 {hr:.0f}/分"
        ratio = a_rate / hr
        if irr.get("cv", 0.0) < 0.08 and abs(ratio - round(ratio)) < 0.25:
            detail = f"{round(ratio)}:1"
    p_ii = atrial.get("p_ii_mv")
    if p_ii is not None:
        values["p_ii_mv"] = p_ii
    inverted = p_ii is not None and p_ii <= P_II_INVERTED_MV
    upright = p_ii is None or p_ii >= P_II_UPRIGHT_MV
    locked = a_rate is not None and a_rate >= 1.8 * hr and abs(a_rate / hr - round(a_rate / hr)) < 0.2
    if (
        statement is None
        and not irregular
        and locked
        and FLUTTER_BPM[0] <= a_rate <= FLUTTER_BPM[1]
        and (a_org or 0.0) >= FLUTTER_LOCKED_ORGANISATION
        and (atrial.get("rms_mv") or 0.0) >= FLUTTER_RMS_MV
        and (atrial.get("p_window_active") or 0.0) >= FLUTTER_ACTIVE
    ):
        # flutter waves at a fixed ratio to the QRS look like a P wave before each beat: the continuous atrial
        # activity at an integer multiple of the ventricular rate gives them away
        statement, rule, detail = (
            "AFLT",
            "心室レートの整数倍の組織化された心房波",
            f"{round(a_rate / hr)}:1",
        )
        reason = f"規則的な心房波 {a_rate:.0f}/分（組織化 {a_org:.2f}）、心室 {hr:.0f}/分"
    if statement is None and inverted and hr > TACHY_BPM and p_share > P_SHARE_NONE and not irregular:
        # the waves before each QRS are negative in II: not sinus P waves. At a ventricular rate whose double
        # is a flutter rate they are flutter waves with 2:1 conduction (the other wave hides in the QRS-T)
        if FLUTTER_BPM[0] <= 2.0 * hr <= FLUTTER_2TO1_MAX_BPM:
            statement, rule, detail = (
                "AFLT",
                "IIで陰性の心房波、心房レートは心室の2倍",
                "2:1",
            )
            reason = f"IIで陰性の心房波（{p_ii:.2f} mV）、心室 {hr:.0f}/分: 2:1伝導（心房 {2 * hr:.0f}/分）"
        else:
            statement, rule = "SVTAC", "規則的な狭いQRSの頻拍、心房波は洞性でない"
            reason = f"IIで陰性の心房波（{p_ii:.2f} mV）の頻拍 {hr:.0f}/分"
    if (
        statement is None
        and wide
        and hr > VT_BPM
        and not irregular
        and not (upright and p_share >= P_SHARE_SINUS)
    ):
        statement, rule = "VT", "洞性P波のない規則的な幅広いQRSの頻拍"
        reason = f"QRS {qrs:.0f} ms の規則的な頻拍 {hr:.0f}/分、洞性P波なし"
    # a P wave on the median beat with a measured PR outweighs a weak per-beat count (premature atrial beats
    # whose own P waves differ: Challenge Q0010); below P_SHARE_NONE the per-beat count decides alone
    sinus_median = (
        bool(m.get("p_present")) and m.get("pr_ms") is not None and m.get("pr_from") != "p_template" and upright
    )
    # ... unless the dominant beats' own RR is irregular too (fibrillation with ventricular ectopy: Q0048)
    dom_irr = dom_rr.size >= 3 and rr_irregularity(dom_rr).get("nrmssd", 0.0) > AF_NRMSSD
    no_p = p_share <= P_SHARE_NONE or (p_share <= 0.5 and (not sinus_median or dom_irr))
    # P waves before only some beats while the dominant beats' own RR is irregular too: fibrillation whose
    # f waves happen to look like a P wave before some beats (synthetic AF seed 0: 57 %)
    no_p = no_p or (p_share < P_SHARE_SINUS and dom_irr and not sinus_median)
    if statement is None and irregular and no_p and not (wide and counts["V"] > 0.5 * n):
        statement, rule = "AFIB", "一定のP波なし、RR間隔が絶対不整"
        reason = f"P波なし（{p_share:.0%}）、RR不規則（変動係数 {irr.get('cv', 0):.2f}）"
    if statement is None and p_share <= P_SHARE_NONE:
        if wide:
            if hr > TACHY_BPM:
                statement, rule = "VT", "P波のない幅広いQRSの頻拍"
                reason = f"QRS {qrs:.0f} ms の頻拍 {hr:.0f}/分、P波なし"
            else:
                return _undetermined(
                    f"幅広いQRS（{qrs:.0f} ms）の調律 {hr:.0f}/分、P波なし: 心室固有調律の疑い",
                    counts,
                    values,
                    "idioventricular",
                )
        elif hr > TACHY_BPM:
            statement, rule = "SVTAC", "洞性P波のない規則的な狭いQRSの頻拍"
            reason = f"狭いQRSの規則的な頻拍 {hr:.0f}/分、P波なし"
        else:
            statement, rule = "JR", "P波のない狭いQRS、40-100/分"
            reason = f"狭いQRS {hr:.0f}/分、P波なし"
    if statement is None and hr > SVT_BPM and not irregular and not upright and not wide:
        statement, rule = "SVTAC", "陽性P波のない規則的な狭いQRSの頻拍"
        reason = f"狭いQRSの規則的な頻拍 {hr:.0f}/分、IIで陽性のP波なし"
    if statement is None and (p_share >= P_SHARE_SINUS or (sinus_median and p_share >= P_SHARE_NONE)):
        dom_hr = 60.0 / float(median(dom_rr)) if dom_rr.size else hr
        values["sinus_rate_bpm"] = round(dom_hr, 1)
        varies = (
            dom_rr.size >= 3
            and (dom_rr.std() / dom_rr.mean() > SARRH_CV)
            and (np.ptp(dom_rr) * 1000 > SARRH_MS)
        )
        # the rate statement reads the window's heart rate (hr_bpm, every beat), as the criteria do; the
        # dominant beats' own rate is shown beside it
        if hr < BRADY_BPM:
            statement = "SBRAD"
        elif hr > TACHY_BPM:
            statement = "STACH"
        elif varies and n_ectopic == 0:
            statement = "SARRH"
        else:
            statement = "SR"
        rule = "大部分の心拍にP波が先行"
        # the spectral atrial rate is what fibrillation and flutter are read from; beside sinus P waves it is a
        # harmonic of the P-QRS-T (e.g. 258/min at a sinus rate of 64): not a value a reader should weigh
        values.pop("atrial_rate_bpm", None)
        values.pop("atrial_organisation", None)
        reason = f"P波あり（{p_share:.0%}の心拍）、心拍数 {hr:.0f}/分"
        if statement == "SARRH":
            reason += f"、RR変動 {dom_rr.std() / dom_rr.mean():.0%}"
    if statement is None:
        return _undetermined(
            f"P波が一部の心拍のみ（{p_share:.0%}）、RR {'不規則' if irregular else '規則的'}", counts, values
        )
    mods: list[str] = []
    if statement not in ("AFIB", "AFLT"):
        if counts["V"]:
            mods.append("PVC")
        if counts["S"] and statement not in ("SVTAC",):
            mods.append("PAC")
        if pattern(types, 2):
            mods.append("BIGU")
        elif pattern(types, 3):
            mods.append("TRIGU")
    if block and statement in ("SR", "SBRAD", "STACH", "SARRH"):
        if block in ("MOBITZ1", "MOBITZ2"):
            mods += ["2AVB", block]
        else:
            mods.append(block)
        counts["nonconducted_p"] = dropped
        detail = detail or bdetail
    elif statement in ("SR", "SBRAD", "STACH", "SARRH") and long_pr(m):
        mods.append("1AVB")
    if paced.get("spikes"):
        counts["spikes"] = int(paced["spikes"])
    return consistent(Rhythm(statement, tuple(mods), counts, reason, detail, values, rule=rule), m)


def consistent(r: Rhythm, m: Mapping | None) -> Rhythm:
    """The statement checked against the window's own measurements (edge.interpret.criteria_check, the
    decision's last guard): a contradicted modifier is left out, and a contradicted statement becomes
    "undetermined" naming what it would have been and what contradicts it (one statement, never silence).
    :func:`analyse_rhythm` applies it; a record's rhythm (one window's) is checked again against the record's
    combined measurements. A beat annotation alone (:func:`edge.dsp.beat_types.annotate_beats`, without the
    window's measurements ``hr_bpm`` and ``p_present``) has nothing to contradict."""
    if m is None or not {"hr_bpm", "p_present"} <= m.keys():
        return r
    bad = dict(contradictions(r.ids, m))
    if not bad:
        return r
    ja = {lb.id: lb.ja for lb in load_catalogue().labels}
    mods = tuple(x for x in r.modifiers if x not in bad)
    dropped = [x for x in r.modifiers if x in bad]
    note = "".join(f"; {ja.get(x, x)}は計測値と矛盾するため記載しない（{bad[x]}）" for x in dropped)
    if r.statement not in bad:
        return replace(r, modifiers=mods, reason=r.reason + note)
    said = ja.get(r.statement, r.statement)
    reason = f"判定不能: {r.reason}から{said}と読めるが計測値と矛盾（{bad[r.statement]}）{note}"
    values = {**r.values, "conflicting_reading": r.statement}
    return replace(
        r, statement=UNDETERMINED, modifiers=mods, reason=reason, detail=None, values=values,
        model_disagrees=False, model_reading=None, rule="判定保留: 所見が矛盾",
    )
