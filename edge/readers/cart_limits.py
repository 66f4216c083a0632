"""ECG-cart files checked before ``ecgdatakit`` parses them (issue 25, item 10): work capped by the declared
size and the file size, values that would be misread refused, one line each.

Was: an HL7 aECG whose ``<scale>`` was ``abc``, NaN or inf was read with a gain of 1 (amplitudes 5x off, 低電位
stated); a DICOM file with 2000 waveform groups took 1.46 GB. Here, before any parsing:

- any cart file larger than :data:`MAX_CART_BYTES` is refused;
- HL7 aECG: every ``<scale value=...>`` must be a finite positive number and every ``<origin value=...>`` a
  finite number (the amplitudes depend on them);
- DICOM waveform: at most :data:`MAX_WAVEFORM_GROUPS` groups and :data:`MAX_VALUES` declared values
  (channels x samples over all groups), read from the file's structure without decoding the waveform data.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

__all__ = ["MAX_CART_BYTES", "MAX_WAVEFORM_GROUPS", "MAX_VALUES", "check_cart_file"]

MAX_CART_BYTES = 128 * 2**20
MAX_WAVEFORM_GROUPS = 16  # a 12-lead ECG stores one or two (rhythm and median beats)
MAX_VALUES = 64_000_000  # channels x samples, as for WFDB (edge.readers.wfdb_header)
_HL7_VALUE = re.compile(rb"<(?:[\w.-]+:)?(scale|origin)\b[^>]*?\bvalue\s*=\s*([\"'])(.*?)\2", re.S)


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_hl7(path: Path, data: bytes) -> None:
    for match in _HL7_VALUE.finditer(data):
        kind, text = match.group(1).decode(), match.group(3).decode("utf-8", "replace").strip()
        value = _finite(text)
        if value is None or (kind == "scale" and value <= 0):
            raise ValueError(
                f"{path}: HL7 aECG <{kind} value={text[:20]!r}> is not a "
                f"{'positive ' if kind == 'scale' else ''}number; refused (the amplitudes would be wrong)"
            )


def _check_dicom(path: Path) -> None:
    try:
        import pydicom
    except ImportError:
        return  # the reader says DICOM needs pydicom
    try:
        ds = pydicom.dcmread(str(path), defer_size=256, stop_before_pixels=True, force=True)
        groups = ds.get("WaveformSequence") or []
        n_groups = len(groups)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for a broken file
        raise ValueError(f"{path}: not a readable DICOM file ({' '.join(str(exc).split())[:120]})") from None
    if n_groups > MAX_WAVEFORM_GROUPS:
        raise ValueError(
            f"{path}: DICOM with {n_groups} waveform groups; an ECG has at most {MAX_WAVEFORM_GROUPS}"
        )
    total = 0
    for group in groups:
        try:
            total += int(group.get("NumberOfWaveformChannels", 0) or 0) * int(
                group.get("NumberOfWaveformSamples", 0) or 0
            )
        except (TypeError, ValueError):
            raise ValueError(f"{path}: DICOM waveform group with an unreadable size") from None
    if total > MAX_VALUES:
        raise ValueError(
            f"{path}: DICOM declares {total} waveform values, more than this reader takes ({MAX_VALUES})"
        )


def check_cart_file(path: Path) -> None:
    """Raise ValueError (one line, naming the file) for a cart file whose parsing would misread it or cost too
    much; return quietly otherwise (formats not checked here are left to the parser)."""
    size = path.stat().st_size
    if size > MAX_CART_BYTES:
        raise ValueError(
            f"{path}: {size >> 20} MiB, more than this reader takes ({MAX_CART_BYTES >> 20} MiB)"
        )
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head[128:132] == b"DICM":
        _check_dicom(path)
    elif b"AnnotatedECG" in head:
        _check_hl7(path, path.read_bytes())
