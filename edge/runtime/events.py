"""Bounded output from a hostile or broken device (issue 25, item 7): repeated event lines coalesced, device ids
cleaned.

A device alternating two HELLO formats wrote 48 MB of ``device_changed`` lines in 10 s, one restarting its sample
counter 15 MB of ``segment`` lines, and a 65 KB device id was copied into every window line (control characters
and ANSI escapes reached the terminal view raw). Here:

- :class:`EventCoalescer` passes at most ``burst`` lines of one event name per ``period_s``; further ones are
  counted, and one line ``{"event": <name>, "coalesced": n, "since": <t of the first one held back>, ...the last
  one's fields}`` reports them when the period ends (at the next event) or at :meth:`EventCoalescer.flush`
  (the end of the run). A reader still sees every kind of gap and how many there were; the output stays bounded
  (``burst + 1`` lines per name and period).
- :func:`clean_device_id` keeps a device id printable and short: escape sequences removed, control, format
  (bidirectional overrides) and unassigned characters replaced by ``?``, at most :data:`MAX_DEVICE_ID` characters.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable

__all__ = ["EventCoalescer", "clean_device_id", "MAX_DEVICE_ID"]

MAX_DEVICE_ID = 64
_ESCAPES = re.compile(
    r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])|\x9b[0-?]*[ -/]*[@-~]"
)


def clean_device_id(text: str) -> str:
    """A device id fit for a terminal, a web page and every JSON line."""
    text = _ESCAPES.sub("", text[: MAX_DEVICE_ID * 16])
    out = []
    for ch in text:
        if ch in " \t\n\r":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append("?")
        else:
            out.append(ch)
    cleaned = " ".join("".join(out).split())
    return cleaned if len(cleaned) <= MAX_DEVICE_ID else cleaned[: MAX_DEVICE_ID - 1] + "…"


class EventCoalescer:
    """Pass event lines to ``emit``, at most ``burst`` per event name and ``period_s``; count and report the rest."""

    def __init__(
        self,
        emit: Callable[[dict], object],
        burst: int = 5,
        period_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.emit = emit
        self.burst = burst
        self.period_s = period_s
        self.clock = clock
        self._window: dict[str, tuple[float, int]] = {}  # name -> (period start, lines passed in it)
        self._held: dict[
            str, tuple[int, str, dict]
        ] = {}  # name -> (count held back, t of the first, last line)

    def __call__(self, line: dict) -> None:
        name = str(line.get("event"))
        now = self.clock()
        self._expire(now)
        start, passed = self._window.get(name, (now, 0))
        if passed < self.burst:
            self._window[name] = (start, passed + 1)
            self.emit(line)
            return
        count, first_t, _ = self._held.get(name, (0, line.get("t"), line))
        self._held[name] = (count + 1, first_t, line)

    def _expire(self, now: float) -> None:
        for name, (start, _) in list(self._window.items()):
            if now - start >= self.period_s:
                del self._window[name]
                self._report(name)

    def _report(self, name: str) -> None:
        held = self._held.pop(name, None)
        if held is not None:
            count, first_t, last = held
            self.emit({**last, "coalesced": count, "since": first_t})

    def tick(self) -> None:
        """Report the counts of periods that ended (call now and then, e.g. after every read)."""
        self._expire(self.clock())

    def flush(self) -> None:
        """Report every count still held back (call at the end of a run)."""
        for name in list(self._held):
            self._report(name)
        self._window.clear()
