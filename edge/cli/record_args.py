"""``classify``'s options about the record itself: patient and acquisition data, and the report's scales.

The patient options (``--patient-id``, ``--sex``, ``--age`` or ``--birth-date``, ``--acquired``) give or
override what the file carries (:mod:`edge.readers.patient`); the report options choose the paper speed
(25 or 50 mm/s) and the gain (5, 10 or 20 mm/mV, i.e. half, standard and double). Parsing errors are one
line (``argparse`` exit 2); :func:`patient_override` turns the parsed values into a ``PatientInfo``.
"""

from __future__ import annotations

import argparse

from edge.readers.patient import PatientError, PatientInfo, parse_date, parse_datetime, parse_sex

__all__ = ["add_patient_args", "add_report_scale_args", "patient_override", "REPORT_SPEEDS", "REPORT_GAINS"]

REPORT_SPEEDS = (25.0, 50.0)  # mm/s
REPORT_GAINS = (5.0, 10.0, 20.0)  # mm/mV: half, standard, double


def _argtype(parse):  # noqa: ANN001, ANN202 - a parser raising PatientError -> an argparse type
    def convert(text: str):  # noqa: ANN202
        try:
            return parse(text)
        except PatientError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _age(text: str) -> int:
    if not text.strip().isdigit() or not 0 <= int(text) <= 130:
        raise argparse.ArgumentTypeError(f"age {text!r} is not a whole number of years 0..130")
    return int(text)


def _sex(text: str) -> str:
    value = _argtype(parse_sex)(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"sex {text!r}: give M, F or O (leave the option out when unknown)")
    return value


def add_patient_args(p: argparse.ArgumentParser, acquired: bool = True) -> None:
    """The patient options; ``acquired=False`` for a live stream, whose every line has its own time."""
    g = p.add_argument_group(
        "patient and acquisition (in the JSON lines, and on the report; they override the file's values)"
    )
    g.add_argument("--patient-id", metavar="ID", help="patient ID (患者ID) as in the hospital's chart")
    g.add_argument("--sex", type=_sex, metavar="M|F|O", help="sex: M (男性), F (女性) or O (その他)")
    ages = g.add_mutually_exclusive_group()
    ages.add_argument("--age", type=_age, metavar="YEARS", help="age in years at the recording")
    ages.add_argument(
        "--birth-date",
        type=_argtype(parse_date),
        metavar="YYYY-MM-DD",
        help="birth date (the age is computed)",
    )
    if not acquired:
        return
    g.add_argument(
        "--acquired",
        type=_argtype(parse_datetime),
        metavar="ISO",
        help="acquisition time of the recording, e.g. 2013-01-25T10:59:19+09:00 (without a zone: the "
        "cart's clock, shown as such)",
    )


def add_report_scale_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--report-speed",
        type=float,
        choices=REPORT_SPEEDS,
        default=25.0,
        metavar="MM_S",
        help="paper speed of --report in mm/s: 25 (standard) or 50 (spreads fast rhythms; 5 s per strip)",
    )
    p.add_argument(
        "--report-gain",
        type=float,
        choices=REPORT_GAINS,
        default=10.0,
        metavar="MM_MV",
        help="gain of --report in mm/mV: 10 (standard), 5 (half: tall QRS such as LVH or LBBB) or 20 (double)",
    )


def patient_override(args: argparse.Namespace) -> PatientInfo:
    """The patient values given on the command line (all ``None`` when none was given)."""
    return PatientInfo(
        patient_id=(getattr(args, "patient_id", None) or "").strip() or None,
        sex=getattr(args, "sex", None),
        age=getattr(args, "age", None),
        birth_date=getattr(args, "birth_date", None),
        acquired=getattr(args, "acquired", None),
    )
