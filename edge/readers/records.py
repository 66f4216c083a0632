"""ECG files for offline classification: WFDB records, ``.npy`` arrays and CSV tables, read as millivolts.

Every reader returns a :class:`Recording`: lead-first float32 ``[C, T]`` in mV, its sampling rate and
its channel names, ready for ``edge.runtime.engine.Classifier.classify_window`` (the same path as the live
stream). Formats:

- WFDB (``.hea`` + signal file; give the path with or without an extension): lead names from the
  header in any case, physical units converted to mV, any sampling rate. ``wfdb`` is imported lazily.
- ``.npy``: a 2-D array ``[leads, samples]`` in mV (no pickle); the rate must be given; lead names
  optional (12 channels are I..V6, 8 channels are I, II, V1-V6).
- CSV: a header row of lead names, one column per lead in mV, optionally a ``time`` column in seconds
  (which gives the rate); otherwise the rate must be given. Headers such as ``Lead I``, ``V1 (mV)`` or
  ``II [uV]`` (scaled to mV) are understood; any other column is an error naming it (or give ``--leads``).
- ECG-cart files (MFER, DICOM waveform, HL7 aECG, SCP-ECG, GE MUSE / Philips XML, EDF), recognised by
  content through ``ecgdatakit`` (see ``edge.readers.cart_formats``); WFDB records also read through it when the
  ``wfdb`` package is not installed (a board installed with ``.[edge]``).
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edge.dsp.signal import SignalError, canonical_lead_name, default_lead_names
from edge.readers.patient import PatientInfo, from_wfdb_comments

__all__ = ["RecordError", "Recording", "read_recording", "check_header_fs"]

logger = logging.getLogger(__name__)

_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}
_TIME_COLUMNS = {"time", "t", "time_s", "seconds", "sec", "s", "time(s)", "time [s]", "time (s)", "時間", "時刻"}
# A CSV column header around a lead name: "Lead I", "lead_V1", "II (mV)", "V5 [uV]", "aVR_mV", "誘導 II", "I誘導"
_CSV_UNIT = re.compile(r"[\s_]*(?:[(\[]\s*([µμu]v|mv|v)\s*[)\]]|_([µμu]v|mv))\s*$", re.IGNORECASE)
_CSV_PREFIX = re.compile(r"^\s*(?:lead|ecg|ch(?:annel)?|誘導)[\s_:.-]*|\s*誘導\s*$", re.IGNORECASE)
_WFDB_SUFFIXES = (".hea", ".dat", ".mat", ".atr")


class RecordError(ValueError):
    """A file that cannot be read as an ECG recording (missing, wrong shape, unknown format...)."""


@dataclass
class Recording:
    """A whole recording: ``x_mv`` float32 ``[C, T]`` in mV at ``fs`` Hz, channel names ``leads``."""

    x_mv: np.ndarray
    fs: float
    leads: list[str]
    source: str
    patient: PatientInfo = PatientInfo()  # from the file where its format has them (edge.readers.patient)

    @property
    def n_samples(self) -> int:
        return int(self.x_mv.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs


def _check_leads(leads: list[str], n_channels: int, source: str) -> list[str]:
    if len(leads) != n_channels:
        raise RecordError(f"{source}: {len(leads)} lead names for {n_channels} channels")
    return leads


FILE_FS_RANGE = (50.0, 20000.0)  # Hz: a recording outside is a broken header or a wrong --fs, not an ECG


def _check_fs(fs: float, path: Path, what: str) -> float:
    """A sampling rate that is a finite number in FILE_FS_RANGE; a RecordError naming the file otherwise."""
    lo, hi = FILE_FS_RANGE
    try:
        ok = math.isfinite(float(fs)) and lo <= float(fs) <= hi
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise RecordError(f"{path}: {what} {fs!r} Hz is not a sampling rate of an ECG ({lo:g}..{hi:g} Hz)")
    return float(fs)


def check_header_fs(header: Path) -> None:
    """Check the rate on a WFDB header's record line itself: wfdb reads "-500" as its default, 250 Hz."""
    try:
        with header.open(encoding="latin-1") as fh:
            line = next((ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#")), "")
    except OSError as exc:
        raise RecordError(f"{header}: cannot read ({exc.strerror or exc})") from None
    fields = line.split()
    if len(fields) >= 3:  # name[/segments] n_signals fs[/counter[(base)]] ...
        text = fields[2].split("/")[0]
        try:
            fs = float(text)
        except ValueError:
            raise RecordError(f"{header}: sampling rate {text!r} in the header is not a number") from None
        _check_fs(fs, header, "header sampling rate")


def _read_wfdb(path: Path) -> Recording:
    base = path.with_suffix("") if path.suffix.lower() in _WFDB_SUFFIXES else path
    header = Path(str(base) + ".hea")
    if not header.is_file():
        raise RecordError(f"{path}: WFDB header {header.name} not found")
    check_header_fs(header)
    from edge.readers.wfdb_header import WfdbHeaderError, check_declared_size, readable_header

    try:
        check_declared_size(header)  # before any work: a header cannot make the reader allocate gigabytes
        import wfdb
    except WfdbHeaderError as exc:
        raise RecordError(str(exc)) from None
    except ImportError:  # a board installed with .[edge]: ecgdatakit's WFDB reader, given what wfdb reads
        try:
            with readable_header(header) as readable:
                try:
                    return _read_cart(readable, str(path))
                except RecordError as exc:
                    raise RecordError(str(exc).replace(str(readable), str(header))) from None
        except WfdbHeaderError as exc:
            raise RecordError(str(exc)) from None
    try:
        record = wfdb.rdrecord(str(base))
    except Exception as exc:  # wfdb raises many kinds for broken records
        raise RecordError(f"{path}: cannot read WFDB record ({exc})") from None
    if record.p_signal is None or record.p_signal.ndim != 2:
        raise RecordError(f"{path}: WFDB record has no signal")
    scales = []
    for name, unit in zip(record.sig_name, record.units or [""] * len(record.sig_name), strict=True):
        scale = _UNIT_TO_MV.get((unit or "mV").strip().lower())
        if scale is None:
            raise RecordError(f"{path}: channel {name!r} has unknown unit {unit!r}")
        scales.append(scale)
    x = (record.p_signal * np.asarray(scales)[None, :]).T.astype(np.float32)
    return Recording(x, float(record.fs), [str(n) for n in record.sig_name], str(path), _wfdb_patient(record))


def _wfdb_patient(record) -> PatientInfo:  # noqa: ANN001 - wfdb.Record
    """``# Age:``/``# Sex:`` header comments and the header's base date and time (the recorder's clock)."""
    info = from_wfdb_comments(record.comments or [])
    date, time = getattr(record, "base_date", None), getattr(record, "base_time", None)
    if date is not None and time is not None:
        info = replace(info, acquired=dt.datetime.combine(date, time), source="file")
    return info


def _read_npy(path: Path, fs: float | None, leads: list[str] | None) -> Recording:
    if fs is None:
        raise RecordError(f"{path}: a .npy array has no sampling rate; give --fs")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:  # EOFError: an empty or truncated file
        raise RecordError(f"{path}: not a numpy array file ({exc or 'empty'})") from None
    if x.ndim != 2:
        raise RecordError(f"{path}: expected a 2-D array [leads, samples], got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise RecordError(f"{path}: expected numbers, got dtype {x.dtype}")
    if leads is None and x.shape[0] not in (8, 12) and x.shape[1] in (8, 12):
        raise RecordError(
            f"{path}: shape {x.shape} looks like [samples, leads]; save it transposed as [leads, samples]"
        )
    if leads is None and x.shape[0] not in (8, 12):
        example = ",".join(["I", "II", "III", "V1", "V2", "V3", "V4", "V5", "V6", "aVR", "aVL", "aVF"][: x.shape[0]])
        raise RecordError(
            f"{path}: {x.shape[0]} channels without names; give their leads in order with --leads, e.g. "
            f"--leads {example} (12 channels are read as I..V6 and 8 as I,II,V1-V6 without --leads)"
        )
    names = leads if leads is not None else default_lead_names(x.shape[0])
    return Recording(
        x.astype(np.float32), float(fs), _check_leads(list(names), x.shape[0], str(path)), str(path)
    )


MAX_CSV_BYTES = 128 * 2**20  # about 3 h of 12 leads at 500 Hz written with 6 decimals


def _read_csv(path: Path, fs: float | None, leads: list[str] | None) -> Recording:
    import array

    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise RecordError(f"{path}: CSV of {size >> 20} MiB, more than this reader takes ({MAX_CSV_BYTES >> 20} MiB)")
    values = array.array("d")  # rows parsed as they come: about 8 bytes per value, not ~20x the file (issue 25)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise RecordError(f"{path}: empty CSV file") from None
        if len(header) > 64:
            raise RecordError(f"{path}: {len(header)} CSV columns; an ECG has at most 64 (leads and time)")
        try:
            for row in reader:
                if not row or not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise RecordError(f"{path}: rows do not all have {len(header)} columns like the header")
                values.extend(float(c) if c.strip() else np.nan for c in row)
        except ValueError as exc:
            raise RecordError(
                f"{path}: CSV values must be numbers ({exc}); the first row must be lead names"
            ) from None
        except csv.Error as exc:
            raise RecordError(f"{path}: not a readable CSV file ({exc})") from None
    if not values:
        raise RecordError(f"{path}: CSV file has a header but no samples")
    data = np.frombuffer(values, dtype=np.float64).reshape(-1, len(header))
    time_cols = [i for i, h in enumerate(header) if h.lower() in _TIME_COLUMNS]
    if time_cols:
        t = data[:, time_cols[0]]
        dt = np.diff(t)
        if t.size < 2 or not np.all(dt > 0):
            raise RecordError(f"{path}: the time column must increase")
        fs_from_time = 1.0 / float(np.median(dt))
        if fs is None:
            fs = round(fs_from_time, 6)
        elif abs(fs - fs_from_time) > 0.01 * fs:
            raise RecordError(f"{path}: --fs {fs:g} disagrees with the time column ({fs_from_time:.6g} Hz)")
    if fs is None:
        raise RecordError(f"{path}: no time column; give --fs")
    keep = [i for i in range(len(header)) if i not in time_cols]
    if not keep:
        raise RecordError(f"{path}: no lead columns besides time")
    parsed = [_csv_lead(header[i]) for i in keep]
    names = leads if leads is not None else [name for name, _ in parsed]
    if leads is None:
        unknown = [header[i] for i, (name, _) in zip(keep, parsed, strict=True) if name is None]
        if unknown:
            raise RecordError(
                f"{path}: column(s) {', '.join(repr(u) for u in unknown)} are not lead names (I, II, III, aVR, aVL, "
                f"aVF, V1-V6; 'Lead I' or 'V1 (mV)' are understood; a 'time' column gives the rate); rename them "
                f"or name every column with --leads"
            )
    x = (data[:, keep] * np.array([scale for _, scale in parsed])[None, :]).T.astype(np.float32)
    return Recording(x, float(fs), _check_leads(list(names), x.shape[0], str(path)), str(path))


def _csv_lead(header: str) -> tuple[str | None, float]:
    """(canonical lead, scale to mV) of a CSV column header (``Lead I``, ``V1 (mV)``, ``II [uV]``, ``avr``);
    the lead is ``None`` for a header that names none."""
    unit = _CSV_UNIT.search(header)
    scale = _UNIT_TO_MV[next(u for u in unit.groups() if u).lower()] if unit else 1.0
    text = header[: unit.start()] if unit else header
    for candidate in (text, _CSV_PREFIX.sub("", text)):
        try:
            return canonical_lead_name(candidate), scale
        except SignalError:
            continue
    return None, scale


def read_recording(path: str | Path, fs: float | None = None, leads: list[str] | None = None) -> Recording:
    """Read a WFDB record, ``.npy`` or CSV file as a :class:`Recording` (see the module docstring).

    ``fs`` is required for ``.npy`` and for CSV without a time column; ``leads`` overrides the
    channel names of ``.npy`` and CSV files (WFDB records always use their header's names).
    Every failure is a one-line :class:`RecordError` naming the file; the rate is checked whatever its source.
    """
    path = Path(path)
    if fs is not None:
        _check_fs(fs, path, "--fs")
    try:
        rec = _read_any(path, fs, leads)
    except (UnicodeError, EOFError, csv.Error) as exc:  # a UTF-16 or binary "CSV", a truncated file
        raise RecordError(f"{path}: not a readable {path.suffix or 'ECG'} file ({type(exc).__name__}: {exc})") from None
    _check_fs(rec.fs, path, "sampling rate")
    if rec.x_mv.ndim != 2 or 0 in rec.x_mv.shape:
        raise RecordError(f"{path}: no samples (array of shape {rec.x_mv.shape})")
    return rec


def _read_any(path: Path, fs: float | None, leads: list[str] | None) -> Recording:
    if fs is not None and fs <= 0:
        raise RecordError(f"sampling rate must be positive, got {fs}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if not path.is_file():
            raise RecordError(f"{path}: file not found")
        return _read_npy(path, fs, leads)
    if suffix == ".csv":
        if not path.is_file():
            raise RecordError(f"{path}: file not found")
        return _read_csv(path, fs, leads)
    wfdb_header = Path(str(path.with_suffix("") if suffix in _WFDB_SUFFIXES else path) + ".hea")
    if wfdb_header.is_file() or (suffix in _WFDB_SUFFIXES and not path.is_file()):
        return _read_wfdb(path)
    if not path.exists():
        raise RecordError(f"{path}: file not found")
    return _read_cart(path, str(path))  # ECG-cart formats, recognised by content


def _read_cart(path: Path, source: str) -> Recording:
    from edge.readers.cart_formats import CartFormatError, read_cart_file

    try:
        rec = read_cart_file(path)
    except CartFormatError as exc:
        raise RecordError(str(exc)) from None
    return Recording(rec.x_mv, rec.fs, rec.leads, source, rec.patient)
