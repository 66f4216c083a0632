"""Which leads a statement needs, and which statements a window with missing or inconsistent leads withholds
(DESIGN.md contract 5 v3: "statements that need a missing or inconsistent lead are withheld, the rest go on").

A statement about a territory (inferior infarction, lateral ischaemia) needs that territory's leads; a
bundle-branch block needs the leads its definition reads (V1 for the right, I/V5/V6 for the left); the
frontal axis needs the limb leads; "normal ECG" and "low voltage" are statements about every lead. Rhythm
statements need any one lead and are never withheld here. With ``scale`` among the inconsistencies the
amplitudes cannot be trusted: voltage statements (hypertrophy, low/high voltage) are withheld as well.

:func:`withhold` returns the kept ids and, per withheld id, a Japanese reason that names the leads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["LEAD_NEEDS", "AMPLITUDE_LABELS", "withhold"]

_LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")
_CHEST = ("V1", "V2", "V3", "V4", "V5", "V6")
_ALL = _LIMB + _CHEST
_INFERIOR = ("II", "III", "aVF")
_LATERAL = ("I", "aVL", "V5", "V6")
_ANTEROSEPTAL = ("V1", "V2", "V3", "V4")
_ANTEROLATERAL = ("V3", "V4", "V5", "V6", "I", "aVL")

# label id -> leads its statement reads (all must be usable). Labels not listed need any one lead.
LEAD_NEEDS: dict[str, tuple[str, ...]] = {
    "NORM": _ALL,
    "LVOLT": _ALL,
    "HVOLT": _ALL,
    "AXIS": ("I", "II", "aVF"),
    "LAD": ("I", "II", "aVF"),
    "RAD": ("I", "II", "aVF"),
    "LAFB": ("I", "II", "III", "aVL", "aVF"),
    "LPFB": ("I", "II", "III", "aVL", "aVF"),
    "RBBB": ("I", "V1", "V6"),
    "CRBBB": ("I", "V1", "V6"),
    "IRBBB": ("V1", "V2"),
    "LBBB": ("I", "aVL", "V1", "V5", "V6"),
    "CLBBB": ("I", "aVL", "V1", "V5", "V6"),
    "ILBBB": ("I", "aVL", "V5", "V6"),
    "BRU": ("V1", "V2"),
    "PRWP": ("V1", "V2", "V3", "V4"),
    "LVH": ("I", "aVL", "V1", "V2", "V3", "V5", "V6"),
    "VCLVH": ("aVL", "V1", "V3", "V5", "V6"),
    "RVH": ("I", "aVR", "V1", "V5", "V6"),
    "SEHYP": ("V1", "V2", "V3"),
    "LAE": ("II", "V1"),
    "RAE": ("II", "V1"),
    "IMI": _INFERIOR,
    "INJIN": _INFERIOR,
    "ISCIN": _INFERIOR,
    "ILMI": _INFERIOR + _LATERAL,
    "INJIL": _INFERIOR + _LATERAL,
    "ISCIL": _INFERIOR + _LATERAL,
    "IPMI": _INFERIOR + ("V1", "V2", "V3"),
    "IPLMI": _INFERIOR + _LATERAL + ("V1", "V2", "V3"),
    "PMI": ("V1", "V2", "V3"),
    "LMI": _LATERAL,
    "INJLA": _LATERAL,
    "ISCLA": _LATERAL,
    "ASMI": _ANTEROSEPTAL,
    "INJAS": _ANTEROSEPTAL,
    "ISCAS": _ANTEROSEPTAL,
    "AMI": ("V2", "V3", "V4"),
    "ISCAN": ("V2", "V3", "V4"),
    "ALMI": _ANTEROLATERAL,
    "INJAL": _ANTEROLATERAL,
    "ISCAL": _ANTEROLATERAL,
    "ER": _INFERIOR + _LATERAL,
}

# Statements decided on amplitudes (mV): withheld when the window's scale is implausible.
AMPLITUDE_LABELS = frozenset(
    {"LVOLT", "HVOLT", "LVH", "VCLVH", "RVH", "SEHYP", "LAE", "RAE", "AH", "HYP", "VH", "NORM"}
)

_CODE_JA = {
    "einthoven": "四肢誘導がアイントーベンの法則（III = II − I）に合わない",
    "goldberger": "増高単極肢誘導がゴールドバーガーの定義に合わない",
    "limb_reversal": "左右の腕の電極が入れ替わっている疑い",
    "scale": "誘導の振幅（校正）が不自然",
}


def withhold(
    findings: Sequence[str], usable_leads: Iterable[str] | None, inconsistent: Iterable[str] = ()
) -> tuple[list[str], dict[str, str]]:
    """``(kept, withheld)``: the ids of ``findings`` whose leads are all usable, and a reason per withheld id.

    ``usable_leads`` ``None`` means the quality check did not say (an older report): nothing is withheld.
    """
    if usable_leads is None:
        return list(findings), {}
    usable = set(usable_leads)
    codes = [c for c in inconsistent if c in _CODE_JA]
    kept: list[str] = []
    withheld: dict[str, str] = {}
    for lid in findings:
        need = LEAD_NEEDS.get(lid, ())
        missing = [lead for lead in need if lead not in usable]
        if "scale" in codes and lid in AMPLITUDE_LABELS:
            withheld[lid] = f"保留: {_CODE_JA['scale']}"
        elif missing:
            why = "、".join(_CODE_JA[c] for c in codes if c != "scale") if set(missing) & set(_LIMB) else ""
            leads = ",".join(missing)
            withheld[lid] = f"保留: 誘導 {leads} が使えない" + (f"（{why}）" if why else "")
        else:
            kept.append(lid)
    return kept, withheld
