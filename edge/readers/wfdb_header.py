"""WFDB headers read as the ``wfdb`` package reads them, and their declared sizes checked before any work.

A board installed with ``.[edge]`` has no ``wfdb``; its WFDB records are read through ``ecgdatakit``, whose
header parser is stricter. The Challenge 2020 headers write ``12-May-2020 12:33:59`` where WFDB puts
``HH:MM:SS DD/MM/YYYY``: ``wfdb`` reads the leading ``12`` as a time (and no date), ``ecgdatakit`` refused the
record (``invalid base time``). Results must not depend on which optional package is installed (issue 25,
item 13): :func:`readable_header` gives ecgdatakit a copy of the header whose record line holds exactly the
fields ``wfdb`` reads from it (its own pattern, ``wfdb.io.header.rx_record``), beside links to the same signal
files.

:func:`check_declared_size` (item 10) refuses, before anything is read, a header whose declared samples need
more bytes than its signal files hold, a signal "file" that is not a regular file (``/dev/zero``), or a record
larger than :data:`MAX_RECORD_VALUES` values: a 200-byte header cannot make the reader allocate gigabytes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["WfdbHeaderError", "MAX_RECORD_VALUES", "check_declared_size", "readable_header", "record_fields"]

MAX_RECORD_VALUES = 64_000_000  # channels x samples: 1.5 h of 12 leads at 1 kHz (wfdb holds them as float64)
MAX_HEADER_BYTES = 1 << 20

# wfdb.io.header.rx_record (wfdb 4.x), the record line as wfdb reads it
RECORD_RE = re.compile(
    r"""
    [ \t]* (?P<record_name>[-\w]+)
           /?(?P<n_seg>\d*)
    [ \t]+ (?P<n_sig>\d+)
    [ \t]* (?P<fs>\d*\.?\d*)
           /*(?P<counter_freq>-?\d*\.?\d*)
           \(?(?P<base_counter>-?\d*\.?\d*)\)?
    [ \t]* (?P<sig_len>\d*)
    [ \t]* (?P<base_time>\d{,2}:?\d{,2}:?\d{,2}\.?\d{,6})
    [ \t]* (?P<base_date>\d{,2}/?\d{,2}/?\d{,4})
    """,
    re.VERBOSE,
)
# bits per stored sample of the WFDB formats (0: not stored)
FORMAT_BITS = {0: 0, 8: 8, 16: 16, 24: 24, 32: 32, 61: 16, 80: 8, 160: 16, 212: 12, 310: 32 / 3, 311: 32 / 3}


class WfdbHeaderError(ValueError):
    """A WFDB header that cannot be read, or that declares more than its files hold; one line."""


def _lines(header: Path) -> list[str]:
    try:
        if header.stat().st_size > MAX_HEADER_BYTES:
            raise WfdbHeaderError(f"{header}: header larger than {MAX_HEADER_BYTES >> 20} MiB")
        text = header.read_bytes().decode("latin-1")
    except OSError as exc:
        raise WfdbHeaderError(f"{header}: cannot read ({exc.strerror or exc})") from None
    return text.splitlines()


def _record_index(lines: list[str]) -> int:
    for i, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#"):
            return i
    return -1


def _valid_time(text: str) -> bool:
    fmt = {0: "%S", 1: "%M:%S", 2: "%H:%M:%S"}.get(text.count(":"))
    if fmt is None:
        return False
    try:
        dt.datetime.strptime(text, fmt + (".%f" if "." in text else ""))
    except ValueError:
        return False
    return True


def record_fields(header: Path) -> dict[str, str]:
    """The record line's fields as ``wfdb`` reads them (strings, ``""`` where absent or unreadable)."""
    lines = _lines(header)
    i = _record_index(lines)
    match = RECORD_RE.match(lines[i]) if i >= 0 else None
    if match is None:
        raise WfdbHeaderError(f"{header}: no WFDB record line")
    fields = match.groupdict()
    if fields["base_time"] and not _valid_time(fields["base_time"]):  # wfdb refuses these too
        raise WfdbHeaderError(f"{header}: invalid base time {fields['base_time']!r} in the record line")
    try:
        if fields["base_date"]:
            dt.datetime.strptime(fields["base_date"], "%d/%m/%Y")
    except ValueError:
        raise WfdbHeaderError(
            f"{header}: invalid base date {fields['base_date']!r} in the record line"
        ) from None
    return fields


def _record_line(f: dict[str, str]) -> str:
    """A record line holding exactly the fields of ``f`` (as wfdb read them)."""
    head = f["record_name"] + (f"/{f['n_seg']}" if f["n_seg"] else "")
    rate = f["fs"]
    if rate and f["counter_freq"]:
        rate += f"/{f['counter_freq']}" + (f"({f['base_counter']})" if f["base_counter"] else "")
    tokens = [head, f["n_sig"], rate, f["sig_len"]]
    while tokens and not tokens[-1]:
        tokens.pop()
    if f["base_time"] and f["sig_len"] and rate:
        tokens.append(f["base_time"])
        if f["base_date"]:
            tokens.append(f["base_date"])
    return " ".join(t for t in tokens if t)


def _signal_lines(lines: list[str], start: int, n_sig: int) -> list[list[str]]:
    out = []
    for line in lines[start + 1 :]:
        if len(out) == n_sig:
            break
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line.split())
    return out


def check_declared_size(header: Path) -> None:
    """Refuse a record whose header declares more samples than its signal files hold, or more than the cap."""
    lines = _lines(header)
    f = record_fields(header)
    if f["n_seg"]:
        return  # a multi-segment record: each segment's own header is checked when it is read
    n_sig = int(f["n_sig"])
    if n_sig > 64:
        raise WfdbHeaderError(f"{header}: {n_sig} signals declared; an ECG record has at most 64")
    sig_len = int(f["sig_len"]) if f["sig_len"] else 0
    if n_sig * sig_len > MAX_RECORD_VALUES:
        raise WfdbHeaderError(
            f"{header}: declares {sig_len} samples x {n_sig} signals, more than this reader takes "
            f"({MAX_RECORD_VALUES} values); cut the record first"
        )
    files: dict[str, float] = {}  # signal file -> bits per frame
    offsets: dict[str, int] = {}
    for tokens in _signal_lines(lines, _record_index(lines), n_sig):
        if len(tokens) < 2:
            continue
        m = re.match(r"(\d+)(?:x(\d+))?(?::\d+)?(?:\+(\d+))?", tokens[1])
        if not m or int(m.group(1)) not in FORMAT_BITS or int(m.group(1)) == 0 or tokens[0] == "~":
            continue
        per_frame = int(m.group(2) or 1)
        files[tokens[0]] = files.get(tokens[0], 0.0) + FORMAT_BITS[int(m.group(1))] * per_frame
        offsets.setdefault(tokens[0], int(m.group(3) or 0))
    for name, bits in files.items():
        path = header.parent / name
        try:
            st = path.stat()
        except OSError:
            continue  # the reader says it is missing
        if not stat.S_ISREG(st.st_mode):
            raise WfdbHeaderError(f"{header}: signal file {name} is not a regular file")
        frames = int((st.st_size - offsets[name]) * 8 // bits) if bits else 0
        if sig_len and frames < sig_len:
            raise WfdbHeaderError(
                f"{header}: declares {sig_len} samples per signal, {name} holds {max(frames, 0)} ({st.st_size} bytes)"
            )
        if not sig_len and frames * n_sig > MAX_RECORD_VALUES:
            raise WfdbHeaderError(
                f"{header}: {name} holds {frames} samples per signal, more than this reader takes"
            )


@contextlib.contextmanager
def readable_header(header: Path) -> Iterator[Path]:
    """``header`` itself, or (when its record line holds fields ``wfdb`` would not read) a copy whose record line
    holds exactly what ``wfdb`` reads, in a temporary folder beside links to the same signal files."""
    lines = _lines(header)
    i = _record_index(lines)
    fields = record_fields(header)
    line = _record_line(fields)
    if lines[i].split() == line.split():
        yield header
        return
    if fields["n_seg"]:
        raise WfdbHeaderError(f"{header}: multi-segment record with a record line this reader cannot take")
    tmp = Path(tempfile.mkdtemp(prefix="ecg-wfdb-"))
    try:
        copy = tmp / header.name
        copy.write_text("\n".join([*lines[:i], line, *lines[i + 1 :]]) + "\n", encoding="latin-1")
        for tokens in _signal_lines(lines, i, int(fields["n_sig"])):
            name = tokens[0] if tokens else "~"
            target = header.parent / name
            if name != "~" and Path(name).name == name and not (tmp / name).exists() and target.exists():
                os.symlink(target.resolve(), tmp / name)
        yield copy
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
