"""ECG-cart and ECG-management-system files, read through ``ecgdatakit`` as millivolts.

Hospital ECGs leave the cart as MFER (ISO 22077, the Japanese-led standard), DICOM waveform (General
ECG / 12-lead ECG IODs), HL7 aECG XML, SCP-ECG (EN 1064 / ISO 11073-91064), GE MUSE XML, Philips
Sierra XML, EDF or WFDB. ``ecgdatakit`` (Apache-2.0; numpy, defusedxml and xmltodict; DICOM also needs
``pydicom``) parses them all. The format is chosen by the file's content (magic numbers, XML root
elements, the MFER tag stream), never by its extension alone, so ``ecg.dat`` from a cart still reads.

What is carried over: every lead's own gain and offset (ADC counts -> physical units by the file's
stated resolution), its unit (converted to mV) and its name. Lead names are made canonical (``DI`` ->
``I``, ``MDC_ECG_LEAD_AVR`` -> ``aVR``); a Cabrera ``-aVR`` lead is inverted back to ``aVR``. Channels
that are not ECG leads (status, respiration, Frank XYZ) are kept with their names and dropped later by
lead name, as for WFDB. A 12-lead record and an 8-channel one (I, II, V1-V6) both work.

Refused with one line: leads stored as raw counts without a stated resolution, leads in a non-voltage
unit, and leads sampled at different rates.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edge.dsp.signal import SignalError, canonical_lead_name
from edge.readers.patient import PatientError, PatientInfo, parse_sex

__all__ = ["CartFormatError", "CartRecord", "detect_format", "read_cart_file"]

logger = logging.getLogger(__name__)

_INSTALL_HINT = "ECG-cart files need ecgdatakit: pip install 'ecg-clip-ja[edge]'"
_MDC_PREFIX = "MDC_ECG_LEAD_"
_KNOWN = "a WFDB record, .npy, .csv, MFER, DICOM waveform, HL7 aECG, SCP-ECG, MUSE/Philips XML or EDF"


class CartFormatError(ValueError):
    """A file that ecgdatakit cannot read as an ECG recording, or whose leads cannot be made mV."""


@dataclass
class CartRecord:
    """Leads in mV ``[C, T]`` float32 at ``fs`` Hz, canonical names where known, and the format."""

    x_mv: np.ndarray
    fs: float
    leads: list[str]
    format: str
    patient: PatientInfo = PatientInfo()  # patient ID, sex, age, birth date, acquisition time, cart


def _library():
    try:
        import ecgdatakit
    except ImportError:
        raise CartFormatError(_INSTALL_HINT) from None
    return ecgdatakit


def detect_format(path: str | Path) -> str | None:
    """The name of the format ecgdatakit recognises in the file's content (``"MFER"``, ``"DICOM
    Waveform"``, ``"HL7 aECG"``...), or ``None`` when no parser claims it. Needs ecgdatakit."""
    path = Path(path)
    if not path.is_file():
        return None
    found = _library().FileParser.detect_format(path)
    return None if found is None else str(found["name"])


def _lead_name(label: str) -> tuple[str, float]:
    """Canonical name and sign for a file's lead label; unknown labels are kept as they are."""
    text = label.strip()
    if text.upper().startswith(_MDC_PREFIX):
        text = text[len(_MDC_PREFIX) :]
    sign = 1.0
    if text.startswith("-"):
        sign, text = -1.0, text[1:]
    try:
        return canonical_lead_name(text), sign
    except SignalError:
        return label.strip(), 1.0


def read_cart_file(path: str | Path) -> CartRecord:
    """Read an ECG-cart file (any format ecgdatakit recognises by content) as a :class:`CartRecord`.

    Raises :class:`CartFormatError` with one line naming the file for anything unreadable.
    """
    path = Path(path)
    if path.is_dir():
        raise CartFormatError(f"{path}: a folder, not an ECG file (a WFDB record is given as its .hea)")
    if not path.is_file():
        raise CartFormatError(f"{path}: file not found")
    try:
        lib = _library()
    except CartFormatError:
        raise CartFormatError(f"{path}: unknown format (expected {_KNOWN}; {_INSTALL_HINT})") from None
    from edge.readers.cart_limits import check_cart_file

    try:
        check_cart_file(path)  # sizes and HL7 scales, before any parsing (issue 25, item 10)
    except (OSError, ValueError) as exc:
        raise CartFormatError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            record = lib.FileParser.parse(path, auto_scale=True, units="mV")
        except lib.UnsupportedFormatError:
            raise CartFormatError(f"{path}: unknown format (expected {_KNOWN})") from None
        except lib.ECGDataKitError as exc:
            raise CartFormatError(f"{path}: cannot read ({_one_line(exc)})") from None
        except ImportError as exc:  # pydicom for DICOM waveform files
            if exc.name == "pydicom" or "pydicom" in str(exc):
                raise CartFormatError(
                    f"{path}: DICOM needs pydicom: pip install 'ecg-clip-ja[dicom]'"
                ) from None
            raise CartFormatError(f"{path}: this format needs {exc.name or 'an extra package'}") from None
        except (OSError, ValueError) as exc:
            raise CartFormatError(f"{path}: cannot read ({_one_line(exc)})") from None
    for w in caught:
        logger.info("%s: %s", path, w.message)
    name = str(record.file_format.name or "unknown format")
    leads = [lead for lead in record.leads if len(lead.samples)]
    if not leads:
        raise CartFormatError(f"{path}: {name} file holds no waveform leads")
    raw = [lead.label for lead in leads if lead.is_raw]
    if raw:
        raise CartFormatError(f"{path}: {name} leads {raw} have no stated gain (raw ADC counts)")
    other = [f"{lead.label} ({lead.units})" for lead in leads if lead.units.strip().lower() != "mv"]
    if other:
        raise CartFormatError(f"{path}: {name} leads {other} are not in a voltage unit")
    rates = sorted({float(lead.sampling_rate) for lead in leads})
    if len(rates) != 1 or rates[0] <= 0:
        raise CartFormatError(f"{path}: {name} leads have different sampling rates {rates}; not supported")
    n = min(len(lead.samples) for lead in leads)
    if any(len(lead.samples) != n for lead in leads):
        logger.info("%s: leads of unequal length; all cut to the shortest (%d samples)", path, n)
    names, rows = [], []
    for lead in leads:
        canonical, sign = _lead_name(lead.label)
        names.append(canonical)
        rows.append(sign * np.asarray(lead.samples[:n], dtype=np.float64))
    x = np.stack(rows).astype(np.float32)
    return CartRecord(x, rates[0], names, name, _patient(record, path))


def _patient(record, path: Path) -> PatientInfo:  # noqa: ANN001 - ecgdatakit.models.ECGRecord
    """The file's patient and acquisition data (names are never carried: the chart needs the ID only)."""
    pat = getattr(record, "patient", None)
    rec = getattr(record, "recording", None)
    device = getattr(rec, "device", None)

    def text(obj, name: str) -> str | None:  # noqa: ANN001
        value = getattr(obj, name, None) if obj is not None else None
        value = str(value).strip() if value is not None else ""
        return value or None

    try:
        sex = parse_sex(text(pat, "sex"))
    except PatientError:
        logger.info("%s: sex %r not understood; left out", path, text(pat, "sex"))
        sex = None
    born = getattr(pat, "birth_date", None)
    age = getattr(pat, "age", None)
    if not isinstance(age, int) or not 0 <= age <= 130:
        age = None
    acquired = getattr(rec, "date", None)
    cart = " ".join(dict.fromkeys(v for v in (text(device, "manufacturer"), text(device, "model")) if v))
    info = PatientInfo(
        patient_id=text(pat, "patient_id"),
        sex=sex,
        age=age,
        birth_date=born.date() if hasattr(born, "date") else None,
        acquired=acquired if hasattr(acquired, "isoformat") and hasattr(acquired, "hour") else None,
        device=cart or None,
    )
    return info if info.empty else replace(info, source="file")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
