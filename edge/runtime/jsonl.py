"""The runtime's append-only JSON-lines file (DESIGN.md, contract 5): power loss and a full disk included.

- A partial last line (power lost in the middle of a write) is never glued to a new one: on open, a file
  that does not end in a newline gets one first, so the broken line stays alone and the next is whole.
- A full disk (``ENOSPC``, ``EDQUOT``, ``EFBIG``) or an I/O error never stops the monitoring: the line is
  dropped and counted, :attr:`JsonLinesFile.failing` says why, and each later write tries again. When a
  write succeeds again the file first gets an event line ``{"event": "disk_full", "lines_lost": n,
  "since": ...}`` so a reader sees the gap. A write that failed half-way is closed with a newline first.

Writes go through ``os.write`` on an ``O_APPEND`` descriptor (no Python buffer that could hold a half line).

Gaps a reader must see (issue 25, item 9): ``close(reason)`` after a clean stop ends the file with an event line
``{"event": "stopped", "reason": ...}``; opened with ``resume=True`` (``ecg-edge run``), a file whose last line is
not such a clean stop (``kill -9``, a power cut, a crash) first gets ``{"event": "resumed", "after": ...,
"last_t": ...}``: the windows between ``last_t`` and ``t`` are missing. Lines dropped during a disk failure that
lasts until exit are counted in :attr:`JsonLinesFile.lost_at_exit` and logged (a disk that takes lines again first
gets the ``disk_full`` line with the count, then the ``stopped`` line).

Log rotation: :meth:`JsonLinesFile.request_reopen` (``ecg-edge run`` calls it on SIGHUP) makes the next
write open the path afresh, so after ``mv findings.jsonl findings.jsonl.1`` + SIGHUP every line is in one of
the two files: lines before the reopen go to the renamed file, lines after it to the new one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

__all__ = ["JsonLinesFile", "DISK_ERRNOS"]

logger = logging.getLogger(__name__)

DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _ends_without_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _last_line(fd: int, tail: int = 1 << 16) -> tuple[str | None, bool]:
    """The file's last line (its last ``tail`` bytes at most) and whether it ends without a newline."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, False
    data = os.pread(fd, min(size, tail), max(0, size - tail))
    partial = not data.endswith(b"\n")
    lines = data.rstrip(b"\n").split(b"\n")
    return lines[-1].decode("utf-8", "replace"), partial


def _resume_note(fd: int) -> dict | None:
    """The ``resumed`` event for a file that did not end in a clean stop; None for a new or cleanly ended one."""
    from edge.runtime.result import RESULT_VERSION, now_iso

    last, partial = _last_line(fd)
    if last is None:
        return None
    try:
        doc = json.loads(last)
    except ValueError:
        doc = None
    if not partial and isinstance(doc, dict) and doc.get("event") == "stopped":
        return None
    note = {"version": RESULT_VERSION, "t": now_iso(), "event": "resumed",
            "after": "a partial last line (power loss)" if partial else "no clean stop (killed, crashed or power loss)",
            "note": "windows between last_t and t are missing"}  # fmt: skip
    if isinstance(doc, dict) and isinstance(doc.get("t"), str):
        note["last_t"] = doc["t"][:64]
    return note


class JsonLinesFile:
    """An append-only JSON-lines file, written line by line (optionally fsynced), that survives a full disk.

    ``write(text)`` returns True when the line reached the file. ``on_event(line)`` (if given) is told
    about the disk becoming full and writable again, so the caller can show it elsewhere (stdout, a view).
    """

    def __init__(self, path: Path, fsync: bool = False, on_event=None, resume: bool = False) -> None:  # noqa: ANN001
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.fsync = fsync
        self.on_event = on_event or (lambda line: None)
        self.failing: str | None = None  # why the last write failed; None while writing works
        self.lines_lost = 0  # lines dropped during the current failure
        self._since: str | None = None
        self._reopen = False  # set by request_reopen (SIGHUP): reopen before the next write
        self.lost_at_exit = 0  # lines dropped by a disk failure that lasted until close()
        reader = os.open(self.path, os.O_RDONLY)
        try:
            self._needs_newline = _ends_without_newline(reader)
            resumed = _resume_note(reader) if resume else None
        finally:
            os.close(reader)
        if self._needs_newline:
            logger.warning("%s ends in a partial line (power loss?); it is kept on a line of its own", path)
        self.resumed: dict | None = None  # the resumed event written at open (the caller shows it elsewhere too)
        if resumed is not None:
            logger.warning("%s: the last run did not stop cleanly (%s); windows are missing", path, resumed["after"])
            if self.write(json.dumps(resumed, ensure_ascii=False)):
                self.resumed = resumed

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            if n > 0:
                self._needs_newline = not bytes(view[:n]).endswith(b"\n")
            view = view[n:]
        if self.fsync:
            os.fsync(self.fd)

    def write(self, text: str) -> bool:
        """Append one line; False (and counted) when the disk refused it."""
        from edge.runtime.result import RESULT_VERSION, now_iso

        data = text.encode("utf-8") + b"\n"
        if self._reopen:
            self._reopen_now()
        try:
            if self._needs_newline:
                self._write_all(b"\n")
            if self.failing is not None:
                note = {"version": RESULT_VERSION, "t": now_iso(), "event": "disk_full", "since": self._since,
                        "lines_lost": self.lines_lost, "reason": self.failing}  # fmt: skip
                self._write_all(json.dumps(note, ensure_ascii=False).encode("utf-8") + b"\n")
                logger.warning("%s: writing again (%d lines lost)", self.path, self.lines_lost)
                self.on_event({**note, "event": "disk_writable"})
                self.failing, self.lines_lost, self._since = None, 0, None
            self._write_all(data)
            return True
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS:
                raise
            self.lines_lost += 1
            if self.failing is None:
                self.failing = f"{self.path}: {os.strerror(exc.errno)}"
                self._since = now_iso()
                logger.error("cannot write %s (%s); classifying goes on", self.path, os.strerror(exc.errno))
                self.on_event({"version": RESULT_VERSION, "t": self._since, "event": "disk_full", "reason": self.failing})
            return False

    def request_reopen(self) -> None:
        """Reopen the path before the next line (after log rotation); safe to call from a signal handler."""
        self._reopen = True

    def _reopen_now(self) -> None:
        self._reopen = False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            logger.error(
                "cannot reopen %s (%s); still writing to the old file", self.path, exc.strerror or exc
            )
            return
        old, self.fd = self.fd, fd
        if old >= 0:
            os.close(old)
        reader = os.open(self.path, os.O_RDONLY)
        try:
            self._needs_newline = _ends_without_newline(reader)
        finally:
            os.close(reader)
        logger.info("reopened %s", self.path)

    def close(self, reason: str | None = None) -> None:
        """Close; ``reason`` (a clean stop) ends the file with a ``stopped`` event line. Lines lost to a disk
        failure that still lasts are counted in :attr:`lost_at_exit` and logged."""
        if self.fd < 0:
            return
        if reason is not None or self.failing is not None:
            from edge.runtime.result import RESULT_VERSION, now_iso

            note = {"version": RESULT_VERSION, "t": now_iso(), "event": "stopped", "reason": reason or "closed"}
            self.on_event(note)  # the same line where the other event lines go (stdout of ecg-edge run)
            if not self.write(json.dumps(note, ensure_ascii=False)):  # a recovered disk first gets its disk_full note
                self.lost_at_exit = self.lines_lost - 1  # not counting the stopped line itself
                logger.error(
                    "%s: %d line(s) lost since %s; the disk still refused them at exit (%s)",
                    self.path, self.lost_at_exit, self._since, self.failing,
                )  # fmt: skip
        os.close(self.fd)
        self.fd = -1
