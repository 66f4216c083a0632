"""Missing-sample detection from ``first_sample`` (PROTOCOL.md, "Sample index and missing samples").

Sequence numbers say that frames were lost, not how many samples; ``first_sample`` (u32, the index of a
SAMPLES frame's first sample since the stream started) says exactly which samples are missing, also across
a wrap of the 16-bit seq. ``SampleTracker`` turns it into gaps ``(start, count)`` so the runtime can mark
those samples missing; it never invents samples.

Rules: the first SAMPLES seen sets the position (a receiver that joins late reports no gap for what it
never expected). A forward jump of less than 2**31 samples is a gap. A backward jump (or a larger one)
is a restart of the device's counter and moves the position without reporting a gap. A HELLO that
changes the stream format (rate, channels, leads, LSB) restarts tracking, because the device restarts
its sample counter at 0 with a new format.

A host bounds its work with two limits (DESIGN.md, contract 4; the runtime sets both to one window):
``max_gap``: a forward jump larger than this is a *jump*, a new segment, never millions of missing
samples to fill; ``max_rewind``: a frame that starts at most this far behind the expected index is a
retransmission (its samples already received are *duplicates*), not a restart. ``last`` says how the
latest block was classified: ``start``, ``contiguous``, ``gap``, ``overlap``, ``jump`` or ``restart``.
"""

from __future__ import annotations

from typing import NamedTuple

from firmware_bridge.frames import DecodedFrame, Frame, Hello, Samples

__all__ = ["Gap", "SampleTracker"]

_U32 = 1 << 32


class Gap(NamedTuple):
    """``count`` missing samples starting at sample index ``start`` (indices modulo 2**32)."""

    start: int
    count: int


class SampleTracker:
    """Follows ``first_sample`` of SAMPLES frames and reports gaps.

    ``observe(frame)`` accepts a ``DecodedFrame`` or a bare frame and returns the gaps found before it
    (usually an empty list). Totals are kept in ``missing_samples``, ``gaps`` and ``resets``.
    """

    def __init__(self, max_gap: int | None = None, max_rewind: int = 0) -> None:
        self.max_gap = max_gap  # forward jumps beyond this start a new segment (None: up to 2**31)
        self.max_rewind = max_rewind  # backward steps up to this are retransmissions, not restarts
        self.next_sample: int | None = None  # index expected in the next SAMPLES frame
        self.hello: Hello | None = None  # format of the current stream, if a HELLO was seen
        self.missing_samples = 0
        self.gaps = 0
        self.resets = 0  # the device restarted its counter (a backward step beyond max_rewind)
        self.jumps = 0  # forward jumps beyond max_gap (new segments)
        self.duplicate_samples = 0  # samples received again (retransmitted frames)
        self.samples_received = 0
        self.last = "start"  # how the latest block was classified (see the module docstring)

    def reset(self) -> None:
        """Forget the position: the next SAMPLES frame starts tracking afresh."""
        self.next_sample = None

    def observe(self, item: DecodedFrame | Frame) -> list[Gap]:
        frame = item.frame if isinstance(item, DecodedFrame) else item
        if isinstance(frame, Hello):
            if self.hello is not None and _format(frame) != _format(self.hello):
                self.reset()
            self.hello = frame
            return []
        if isinstance(frame, Samples):
            return self.update(frame.first_sample, frame.n_samples)
        return []

    def update(self, first_sample: int, n_samples: int) -> list[Gap]:
        """Record a block of ``n_samples`` starting at ``first_sample``; return the gap before it, if any."""
        expected, self.next_sample = self.next_sample, (first_sample + n_samples) % _U32
        self.samples_received += n_samples
        if expected is None or first_sample == expected:
            self.last = "start" if expected is None else "contiguous"
            return []
        skipped = (first_sample - expected) % _U32
        behind = (expected - first_sample) % _U32
        if skipped >= _U32 // 2 and behind <= self.max_rewind:
            # A retransmission: the samples up to ``expected`` were received already.
            self.last = "overlap"
            self.duplicate_samples += min(behind, n_samples)
            if behind >= n_samples:
                self.next_sample = expected  # nothing new in this frame: keep the position
            return []
        if skipped >= _U32 // 2:
            self.last = "restart"
            self.resets += 1
            return []
        if self.max_gap is not None and skipped > self.max_gap:
            self.last = "jump"
            self.jumps += 1
            return []
        self.last = "gap"
        self.gaps += 1
        self.missing_samples += skipped
        return [Gap(expected, skipped)]


def _format(hello: Hello) -> tuple:
    return (hello.fs_hz, hello.channel_leads, hello.lsb_nv)
