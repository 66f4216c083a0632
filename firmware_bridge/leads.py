"""Lead codes of wire protocol v1 (DESIGN.md, Contract 1 and 4).

The code of a lead is its index in the project-wide lead order ``I, II, III, aVR, aVL, aVF, V1..V6``:
0=I 1=II 2=III 3=aVR 4=aVL 5=aVF 6..11=V1..V6. Names are matched without regard to case ("AVR", "avr").
"""

from __future__ import annotations

__all__ = ["LEAD_NAMES", "LEADS_12", "LEADS_8", "lead_code", "lead_name"]

LEAD_NAMES: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
#: All twelve leads, in protocol order.
LEADS_12: tuple[int, ...] = tuple(range(12))
#: The usual 8-channel device: I, II, V1..V6 (III, aVR, aVL, aVF are derived on the host).
LEADS_8: tuple[int, ...] = (0, 1, 6, 7, 8, 9, 10, 11)

_BY_NAME = {name.upper(): code for code, name in enumerate(LEAD_NAMES)}


def lead_code(name: str) -> int:
    """Protocol code of a lead name in any case (``"avr"`` -> 3); ``KeyError`` for unknown names."""
    key = name.strip().upper()
    if key not in _BY_NAME:
        raise KeyError(f"unknown lead name {name!r} (expected one of {', '.join(LEAD_NAMES)})")
    return _BY_NAME[key]


def lead_name(code: int) -> str:
    """Standard name of a protocol lead code (3 -> ``"aVR"``)."""
    if not 0 <= code < len(LEAD_NAMES):
        raise KeyError(f"lead code {code} out of range 0..11")
    return LEAD_NAMES[code]
