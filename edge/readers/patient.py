"""Who and when: the patient and acquisition data that a chart needs beside an ECG.

A report filed in a chart must name the patient and the time the ECG was taken. Cart formats carry them
(DICOM PatientID / PatientSex / PatientBirthDate / AcquisitionDateTime, HL7 aECG, MFER, SCP-ECG and EDF
headers, read through ``ecgdatakit``), PhysioNet Challenge WFDB headers carry ``# Age:`` and ``# Sex:``
comments, and the command line can give or override each (``--patient-id``, ``--sex``, ``--age`` or
``--birth-date``, ``--acquired``). Nothing is invented: a value the file and the command line do not give
stays ``None`` and is shown as not recorded.

Times: a time with a zone (``--acquired 2013-01-25T10:59:19+09:00``, a DICOM TimezoneOffsetFromUTC) is
aware and shown in the viewer's local zone with its offset; a time without one (most cart files) is the
cart's own wall-clock time in an unknown zone, kept naive and shown as recorded, marked so.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

__all__ = [
    "PatientInfo",
    "PatientError",
    "parse_sex",
    "parse_date",
    "parse_datetime",
    "from_wfdb_comments",
    "acquired_text",
    "sex_text",
]

_SEX = {
    "m": "M", "male": "M", "man": "M", "男": "M", "男性": "M", "1": "M",
    "f": "F", "female": "F", "woman": "F", "女": "F", "女性": "F", "2": "F",
}  # fmt: skip
_UNKNOWN = {"", "u", "unknown", "nan", "none", "null", "0", "9", "不明", "?"}
_AGE_RANGE = (0, 130)


class PatientError(ValueError):
    """A patient or acquisition value that cannot be read (``--sex X``, ``--acquired yesterday``)."""


def parse_sex(text: object) -> str | None:
    """``"M"``, ``"F"``, ``"O"`` (other, as recorded) or ``None`` when not recorded; raises on nonsense."""
    if text is None:
        return None
    s = str(text).strip()
    key = s.casefold()
    if key in _UNKNOWN:
        return None
    if key in _SEX:
        return _SEX[key]
    if key in ("o", "other", "その他"):
        return "O"
    raise PatientError(f"sex {s[:20]!r} is not M, F, O (other) or U (unknown)")


def parse_date(text: str) -> _dt.date:
    """An ISO date (``1971-01-23``) or a DICOM/compact one (``19710123``)."""
    s = str(text).strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"):
        try:
            return _dt.datetime.strptime(s, fmt).date()
        except ValueError:
            continue
    raise PatientError(f"date {s[:30]!r} is not YYYY-MM-DD")


def parse_datetime(text: str) -> _dt.datetime:
    """An ISO date-time, with or without a zone (``2013-01-25T10:59``, ``2013-01-25 10:59:19+09:00``)."""
    s = str(text).strip()
    try:
        return _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise PatientError(
            f"time {s[:40]!r} is not an ISO date-time such as 2013-01-25T10:59+09:00"
        ) from None


def _check_age(age: int | None) -> int | None:
    if age is not None and not _AGE_RANGE[0] <= age <= _AGE_RANGE[1]:
        raise PatientError(f"age {age} is outside {_AGE_RANGE[0]}..{_AGE_RANGE[1]} years")
    return age


def _years_between(born: _dt.date, on: _dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


@dataclass(frozen=True)
class PatientInfo:
    """Patient and acquisition data of one recording; every field ``None`` when not recorded."""

    patient_id: str | None = None
    sex: str | None = None  # "M", "F", "O"
    age: int | None = None  # years, as recorded or given (else computed from birth date and acquisition)
    birth_date: _dt.date | None = None
    acquired: _dt.datetime | None = None  # start of the recording; naive = the cart's clock, zone unknown
    device: str | None = None  # manufacturer and model of the cart, as recorded
    source: str = ""  # where the values came from: "file", "command line", "file + command line"

    def __post_init__(self) -> None:
        _check_age(self.age)

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) in (None, "") for f in fields(self) if f.name != "source")

    @property
    def age_years(self) -> int | None:
        """The recorded age, else the age at acquisition from the birth date (never from today's date)."""
        if self.age is not None:
            return self.age
        if self.birth_date is not None and self.acquired is not None:
            return _years_between(self.birth_date, self.acquired.date())
        return None

    def merged(self, override: PatientInfo) -> PatientInfo:
        """This record's values with every value ``override`` gives replacing it (command line over file)."""
        given = {f.name: getattr(override, f.name) for f in fields(override) if f.name != "source"}
        given = {k: v for k, v in given.items() if v not in (None, "")}
        if not given:
            return self
        if "birth_date" in given and "age" not in given:
            given["age"] = None  # a birth date given now wins over the file's age field
        source = "command line" if self.empty else f"{self.source or 'file'} + command line"
        return replace(self, **given, source=source)

    def to_json(self) -> dict:
        """The contract-5 ``patient`` block: only the values recorded (``{}`` when none)."""
        out: dict = {}
        if self.patient_id:
            out["id"] = self.patient_id
        if self.sex:
            out["sex"] = self.sex
        if self.age_years is not None:
            out["age"] = self.age_years
        if self.birth_date is not None:
            out["birth_date"] = self.birth_date.isoformat()
        return out

    def acquired_iso(self, offset_s: float = 0.0) -> str | None:
        """The acquisition time (plus ``offset_s``) as ISO 8601; no zone suffix when the zone is unknown."""
        if self.acquired is None:
            return None
        return (self.acquired + _dt.timedelta(seconds=offset_s)).isoformat(timespec="seconds")

    def json_fields(self, offset_s: float = 0.0) -> dict:
        """``{"patient": {...}, "acquired": ISO, "cart": text}`` for a JSON line, each only when recorded
        (``cart``: the recording device as the file names it; not the serial device of a live stream)."""
        out: dict = {}
        block = self.to_json()
        if block:
            out["patient"] = block
        when = self.acquired_iso(offset_s)
        if when is not None:
            out["acquired"] = when
        if self.device:
            out["cart"] = self.device
        return out


def acquired_text(when: _dt.datetime | None) -> str:
    """The acquisition time for a person: local time with its zone, or as recorded when the zone is unknown."""
    if when is None:
        return "記録なし"
    if when.tzinfo is None:
        return f"{when:%Y-%m-%d %H:%M:%S} (記録機器の時刻・時差不明)"
    local = when.astimezone()
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''} (UTC{local:%z})".replace("  ", " ")


_SEX_JA = {"M": "男性", "F": "女性", "O": "その他"}


def sex_text(sex: str | None) -> str:
    return _SEX_JA.get(sex or "", "記録なし")


_COMMENT = re.compile(r"^\s*#?\s*([A-Za-z_ ]+?)\s*:\s*(.*?)\s*$")


def from_wfdb_comments(comments: Iterable[str]) -> PatientInfo:
    """``# Age: 53`` / ``# Sex: Male`` lines of a PhysioNet Challenge header (other comments ignored)."""
    age, sex = None, None
    for line in comments:
        m = _COMMENT.match(str(line))
        if not m:
            continue
        key, value = m.group(1).strip().lower(), m.group(2)
        try:
            if key == "age" and value.strip().isdigit():
                age = _check_age(int(value.strip()))
            elif key == "sex":
                sex = parse_sex(value)
        except PatientError:
            continue  # a header's odd value is left out, never guessed
    return PatientInfo(age=age, sex=sex, source="file" if age is not None or sex else "")
