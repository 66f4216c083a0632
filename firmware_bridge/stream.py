"""Stateful reassembly of wire-protocol frames from an arbitrary byte stream (PROTOCOL.md, "Receiver rules").

``StreamDecoder.feed(chunk)`` takes whatever a serial read returned (part of a frame, many frames, garbage)
and returns the frames that passed every check. It never raises on wire bytes: a bad frame is counted in
``stats`` by the class of its error, dropped, and the decoder resynchronises at the next 0x00 delimiter
(COBS guarantees 0x00 never occurs inside a frame: Cheshire & Baker 1999). Buffered bytes are capped, so a
stream without delimiters cannot grow memory. Sequence numbers are checked per stream (one decoder per
direction), wrapping at 65536. Missing *samples* are the job of ``firmware_bridge.tracker.SampleTracker``.

The design follows pyserial's ``serial.threaded.Packetizer`` (split on a delimiter, the port outside) and
pymavlink's robust parsing (count receive errors, do not raise).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from firmware_bridge.errors import CobsError, CrcError, FrameFormatError, LengthError, ProtocolError
from firmware_bridge.frames import MAX_ENCODED_FRAME_SIZE, DecodedFrame, FrameType, decode_frame

__all__ = ["StreamStats", "SeqTracker", "StreamDecoder"]

log = logging.getLogger(__name__)


@dataclass
class StreamStats:
    """Counters of one receive stream; ``as_dict()`` is what ``ecg-device dump`` prints."""

    frames_ok: int = 0  # frames that passed every check and were returned
    cobs_errors: int = 0  # segments that were not valid COBS
    length_errors: int = 0  # too short, or payload_len disagreeing with the frame's length
    crc_errors: int = 0
    format_errors: int = 0  # wrong version, unknown type, bad payload fields
    seq_gaps: int = 0  # times a frame's seq skipped ahead of the expected one
    frames_lost: int = 0  # frames missing according to seq (sum of the skips)
    seq_resets: int = 0  # seq went backwards or jumped >= 32768: counted as a restart, not as loss
    bytes_discarded: int = 0  # bytes of dropped segments, overflowing segments, and a leading partial one
    overflow: int = 0  # segments longer than max_frame_bytes without a delimiter

    @property
    def errors(self) -> int:
        """Frames dropped for any reason (not counting seq gaps)."""
        return self.cobs_errors + self.length_errors + self.crc_errors + self.format_errors + self.overflow

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class SeqTracker:
    """Follows the 16-bit ``seq`` of one direction and reports how many frames went missing.

    A forward skip of less than 32768 counts as lost frames. A backward step or a larger skip counts as a
    restart (the sender reset its counter, e.g. a rebooted device), and tracking restarts from there.
    """

    def __init__(self) -> None:
        self.expected: int | None = None

    def reset(self) -> None:
        self.expected = None

    def update(self, seq: int) -> tuple[int, bool]:
        """Record ``seq``; returns (frames lost before it, whether this looked like a restart)."""
        expected, self.expected = self.expected, (seq + 1) & 0xFFFF
        if expected is None or seq == expected:
            return 0, False
        skipped = (seq - expected) & 0xFFFF
        if skipped < 0x8000:
            return skipped, False
        return 0, True


_ERROR_FIELD = {
    CobsError: "cobs_errors",
    LengthError: "length_errors",
    CrcError: "crc_errors",
    FrameFormatError: "format_errors",
}


class StreamDecoder:
    """Turns byte chunks into checked frames; never raises on bad wire bytes.

    ``max_frame_bytes`` caps the bytes buffered while waiting for a delimiter (default: the largest legal
    encoded v1 frame, about 64 KiB); past it the segment is counted as ``overflow`` and discarded up to
    the next 0x00. The bytes before the first delimiter may be the tail of a frame sent before we started
    listening: if they do not decode they are only counted in ``bytes_discarded``, not as an error.
    Empty segments (0x00 0x00) are ignored, so a sender may emit extra delimiters to flush.
    """

    def __init__(self, max_frame_bytes: int = MAX_ENCODED_FRAME_SIZE) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be positive")
        self.max_frame_bytes = max_frame_bytes
        self.stats = StreamStats()
        self.seq = SeqTracker()
        self._buf = bytearray()
        self._discarding = False  # inside an overflowing segment, dropping until the next delimiter
        self._first_segment = True

    @property
    def pending(self) -> int:
        """Bytes buffered for a frame whose delimiter has not arrived yet."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[DecodedFrame]:
        """Add received bytes; return the frames they completed, in order."""
        out: list[DecodedFrame] = []
        data = bytes(data)
        start = 0
        while start < len(data):
            end = data.find(0, start)
            if end < 0:
                self._append(data[start:])
                break
            self._append(data[start:end])
            self._end_segment(out)
            start = end + 1
        return out

    def iter_frames(self, chunks: Iterable[bytes]) -> Iterator[DecodedFrame]:
        """Decode an iterable of chunks lazily (e.g. ``iter(lambda: port.read(4096), b"")``)."""
        for chunk in chunks:
            yield from self.feed(chunk)

    def close(self) -> int:
        """End of stream: drop an unfinished frame (counted in ``bytes_discarded``); return its length."""
        n = len(self._buf)
        self.stats.bytes_discarded += n
        self._buf.clear()
        self._discarding = False
        return n

    def _append(self, part: bytes) -> None:
        if not part:
            return
        if self._discarding:
            self.stats.bytes_discarded += len(part)
            return
        if len(self._buf) + len(part) > self.max_frame_bytes:
            self.stats.overflow += 1
            self.stats.bytes_discarded += len(self._buf) + len(part)
            log.debug("segment exceeded %d bytes without a delimiter; discarding", self.max_frame_bytes)
            self._buf.clear()
            self._discarding = True
            self._first_segment = False
            return
        self._buf += part

    def _end_segment(self, out: list[DecodedFrame]) -> None:
        first, self._first_segment = self._first_segment, False
        if self._discarding:
            self._discarding = False
            return
        if not self._buf:
            return
        raw = bytes(self._buf)
        self._buf.clear()
        try:
            decoded = decode_frame(raw)
        except ProtocolError as exc:
            self.stats.bytes_discarded += len(raw)
            if first:
                log.debug("discarded %d bytes before the first delimiter", len(raw))
                return
            field = next(name for cls, name in _ERROR_FIELD.items() if isinstance(exc, cls))
            setattr(self.stats, field, getattr(self.stats, field) + 1)
            log.debug("dropped frame: %s", exc)
            return
        self._count_seq(decoded)
        self.stats.frames_ok += 1
        out.append(decoded)

    def _count_seq(self, decoded: DecodedFrame) -> None:
        if decoded.type == FrameType.HELLO and decoded.seq == 0:
            # A device (re)starting its counter announces itself with HELLO seq 0: not a loss.
            if self.seq.expected not in (None, 0):
                self.stats.seq_resets += 1
            self.seq.reset()
        lost, restarted = self.seq.update(decoded.seq)
        if lost:
            self.stats.seq_gaps += 1
            self.stats.frames_lost += lost
        if restarted:
            self.stats.seq_resets += 1
