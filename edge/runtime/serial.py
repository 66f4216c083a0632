"""The live runtime: a serial port in, one contract-5 JSON object per classified window out.

:class:`Runtime` opens the port (a device path, a pty, or any pyserial URL, through
``firmware_bridge.transport.open_port``), asks the device who it is (HELLO_REQUEST, then START), and
ignores samples until a HELLO has told it the rate, the channels and the LSB. Frames come out of
``firmware_bridge.stream.StreamDecoder`` (bad frames are counted and dropped there), counts become
millivolts with the HELLO's ``lsb_nv``, ``firmware_bridge.tracker.SampleTracker`` finds the samples
that never arrived, and a :class:`edge.runtime.stream.StreamClassifier` turns the stream into windows.

Faults (DESIGN.md, contract 4):

- bad frames and dropped frames: their samples are a gap in ``first_sample``, stored as missing, so
  the windows that contain them are reported with ``quality.ok = false``;
- a port that disappears (cable pulled: ``SerialException``/``OSError``, EOF on a pty): closed and
  reopened with exponential backoff (``backoff_min_s`` doubling up to ``backoff_max_s``), without
  restarting the process; every connection needs a new HELLO. If the device kept counting, the
  samples lost during the outage are missing; if it restarted its counter, the stream starts afresh;
- a HELLO with another rate, channel set or LSB reconfigures the stream;
- a silent device (no bytes for ``stall_s``) is asked again for HELLO and START;
- :meth:`Runtime.stop` (the CLI calls it on SIGINT/SIGTERM) ends the loop after the current read.

Limits a host enforces (contract 4) and the frame-by-frame work are in :mod:`edge.runtime.device_stream`
(a :class:`DeviceStream` owned by :class:`Runtime`): no byte sequence makes the work or memory unbounded. Everything a reader
of the output must know besides windows (disconnected, reconnected, device_changed, device_rejected,
segment) goes to ``on_event`` as a contract-5 event line. Per-sample work is numpy: frames of one read
are merged into one block before they reach the ring.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from edge.runtime.device_stream import DeviceStream
from edge.runtime.engine import Classifier
from edge.runtime.events import EventCoalescer
from edge.runtime.result import RESULT_VERSION, Result, now_iso
from edge.runtime.stream import StreamClassifier
from firmware_bridge.frames import (
    Hello,
    HelloRequest,
    Start,
    encode_frame,
)
from firmware_bridge.stream import StreamDecoder, StreamStats
from firmware_bridge.transport import DEFAULT_BAUD, open_port

__all__ = ["RunConfig", "RunStats", "Runtime", "PortError"]

logger = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """How the runtime talks to the device and when it stops."""

    port: str  # device path, pty path or pyserial URL (loop://, socket://host:port, rfc2217://...)
    baud: int = DEFAULT_BAUD  # ignored by ptys and sockets
    hop_s: float = 2.0  # a window every hop_s seconds of signal
    start_fs: int | None = None  # rate requested in START (None: the device's own)
    duration_s: float | None = None  # stop after this many seconds of wall time
    max_windows: int | None = None  # stop after this many windows
    read_timeout_s: float = 0.1  # one port read waits at most this long
    batch_s: float = 0.05  # after an idle wait, gather bytes this long (fewer, larger blocks)
    hello_retry_s: float = 1.0  # resend HELLO_REQUEST + START this often until a HELLO arrives
    stall_s: float = 5.0  # after a HELLO, this long without a byte: ask for HELLO + START again
    backoff_min_s: float = 0.2  # first reconnect delay
    backoff_max_s: float = 5.0  # reconnect delay cap


@dataclass
class RunStats:
    """Counters of a run, over every connection; ``as_dict()`` is the summary line's content."""

    windows: int = 0
    windows_ok: int = 0
    connects: int = 0
    reconnects: int = 0
    hellos: int = 0
    reconfigurations: int = 0
    stream_restarts: int = 0  # the device restarted its sample counter
    jumps: int = 0  # first_sample jumped ahead by more than a window: a new segment
    duplicate_samples: int = 0  # samples received twice (retransmitted frames), ignored
    rejected_hellos: int = 0  # HELLOs outside the host's limits
    samples: int = 0  # samples received and used
    samples_ignored: int = 0  # samples before a HELLO or with the wrong channel count
    missing_samples: int = 0  # samples that never arrived (gaps in first_sample)
    events: int = 0
    frames: StreamStats = field(default_factory=StreamStats)  # decoder counters, all connections
    started: float = field(default_factory=time.monotonic)
    stop_reason: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("started")
        d["frames"] = self.frames.as_dict()
        d["elapsed_s"] = round(time.monotonic() - self.started, 3)
        return d


def _add_stats(total: StreamStats, part: StreamStats) -> None:
    for key, value in part.as_dict().items():
        setattr(total, key, getattr(total, key) + value)


class PortError(ValueError):
    """A port that can never work as given (a malformed URL or setting); not retried."""


class PortLost(ConnectionError):
    """The port stopped working (unplugged, closed by the other end)."""


class Runtime:
    """Read one serial stream, classify its windows, hand each result to ``on_result``.

    ``on_result(result, line)`` gets the :class:`Result` and its contract-5 dict (with ``device`` and
    ``segment`` added); ``on_event(line)`` gets every event line (``{"t", "event", "source", ...}``);
    ``on_status(runtime)`` is called after every read (for a live view).
    """

    def __init__(
        self,
        classifier: Classifier,
        config: RunConfig,
        on_result: Callable[[Result, dict], None] | None = None,
        on_status: Callable[[Runtime], None] | None = None,
        on_event: Callable[[dict], None] | None = None,
    ) -> None:
        self.classifier = classifier
        self.config = config
        self.on_result = on_result or (lambda result, line: None)
        self.on_status = on_status or (lambda runtime: None)
        self.on_event = on_event or (lambda line: None)
        # a flood of one event (a device alternating formats, restarting its counter) is coalesced and counted
        self.events = EventCoalescer(lambda line: self.on_event(line))
        self.stats = RunStats()
        self.device = DeviceStream(classifier, config.hop_s, self.stats, self.event, self._report)
        self.connected = False
        self.last_result: Result | None = None
        self._decoder: StreamDecoder | None = None
        self._tx_seq = 0
        self._deadline: float | None = None
        self._stop = threading.Event()

    # --- the device link (edge.runtime.device_stream) ---------------------------------------------
    @property
    def hello(self) -> Hello | None:
        """The HELLO of the current connection (None before one arrived)."""
        return self.device.hello

    @property
    def stream(self) -> StreamClassifier | None:
        """The windows of the current stream format (None until samples of an accepted HELLO arrive)."""
        return self.device.stream

    @property
    def segment(self) -> int:
        """+1 each time the stream starts afresh (new format or counter restart)."""
        return self.device.segment

    def _report(self, result: Result) -> None:
        if self.config.max_windows is not None and self.stats.windows >= self.config.max_windows:
            return  # the rest of a block that completed more windows than asked for
        self.stats.windows += 1
        self.stats.windows_ok += int(not result.skipped)
        self.last_result = result
        extra = {"device": self.hello.device_id if self.hello else None, "segment": self.segment}
        self.on_result(result, result.to_json(self.config.port, **extra))
        if self.config.max_windows is not None and self.stats.windows >= self.config.max_windows:
            self.stop("windows")

    # --- control ----------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped") -> None:
        """Ask :meth:`run` to return (thread- and signal-handler-safe)."""
        if not self.stats.stop_reason:
            self.stats.stop_reason = reason
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> RunStats:
        """Connect, classify, reconnect on faults, until stopped, ``duration_s`` or ``max_windows``."""
        cfg = self.config
        deadline = None if cfg.duration_s is None else time.monotonic() + cfg.duration_s
        backoff = cfg.backoff_min_s
        self._deadline = deadline
        while not self.stopping:
            if deadline is not None and time.monotonic() >= deadline:
                self.stop("duration")
                break
            try:
                port = open_port(cfg.port, baud=cfg.baud, timeout=cfg.read_timeout_s)
            except ValueError as exc:  # a malformed URL or setting: retrying cannot help
                raise PortError(f"cannot open {cfg.port}: {exc}") from None
            except OSError as exc:  # SerialException: not there (yet), busy, unplugged
                # Warn once per outage; the retries after it are logged at INFO level.
                level = logging.WARNING if backoff == cfg.backoff_min_s else logging.INFO
                logger.log(level, "cannot open %s (%s); retrying in %.1f s", cfg.port, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, cfg.backoff_max_s)
                continue
            self.stats.connects += 1
            self.stats.reconnects = self.stats.connects - 1
            if self.stats.reconnects:
                self.event("reconnected", connects=self.stats.connects)
            try:
                if self._session(port):
                    backoff = cfg.backoff_min_s  # the link worked: start the backoff over
            except PortLost as exc:
                logger.warning("port %s lost (%s); reconnecting", cfg.port, exc)
                self.event("disconnected", reason=str(exc))
            finally:
                self.connected = False
                with contextlib.suppress(Exception):  # closing a dead port may fail in any way
                    port.close()
            if not self.stopping:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, cfg.backoff_max_s)
        self.events.flush()  # counts of coalesced events still held back
        self.on_status(self)
        return self.stats

    def event(self, name: str, **fields) -> dict:
        """Emit a contract-5 event line (``{"t", "event", "source", "segment", ...}``) to ``on_event``."""
        line = {"version": RESULT_VERSION, "t": now_iso(), "event": name, "source": self.config.port,
                "segment": self.segment, **fields}
        self.events(line)
        return line

    # --- one connection ---------------------------------------------------------------------------
    def _send(self, port, frame) -> None:  # noqa: ANN001
        try:
            port.write(encode_frame(frame, self._tx_seq))
        except (OSError, ValueError) as exc:
            raise PortLost(f"write failed: {exc}") from None
        self._tx_seq = (self._tx_seq + 1) & 0xFFFF

    def _ask(self, port) -> None:  # noqa: ANN001
        self._send(port, HelloRequest())
        self._send(port, Start(self.config.start_fs))

    def _session(self, port) -> bool:  # noqa: ANN001 - serial.SerialBase
        """Serve one open port until stopped or lost; True when a HELLO was received on it."""
        cfg = self.config
        self._decoder = decoder = StreamDecoder()
        self.device.connected()
        self.connected = True
        got_hello = False
        try:
            self._ask(port)
            last_rx = last_ask = time.monotonic()
            while not self.stopping:
                now = time.monotonic()
                if self._deadline is not None and now >= self._deadline:
                    self.stop("duration")
                    break
                chunk, lost = self._read(port)
                now = time.monotonic()
                if chunk:
                    last_rx = now
                    self.process_bytes(chunk)
                    got_hello = got_hello or self.hello is not None
                if lost is not None:
                    raise PortLost(str(lost))
                elif self.hello is None and now - last_ask >= cfg.hello_retry_s:
                    self._ask(port)
                    last_ask = now
                elif (
                    self.hello is not None and now - last_rx >= cfg.stall_s and now - last_ask >= cfg.stall_s
                ):
                    logger.warning(
                        "no data for %.1f s; asking the device for HELLO and START again", now - last_rx
                    )
                    self._ask(port)
                    last_ask = now
                self.events.tick()
                self.on_status(self)
        finally:
            decoder.close()
            _add_stats(self.stats.frames, decoder.stats)
            self._decoder = None
        return got_hello

    def _read(self, port) -> tuple[bytes, Exception | None]:  # noqa: ANN001
        """What the port has (waiting at most ``read_timeout_s``), and the error that ended it, if any.

        Reads only what is waiting, because pyserial drops the bytes of a ``read(n)`` that fails half-way
        (the last frames before a disconnect would be lost). After an idle wait the first byte is followed
        by a short pause, so a real-time stream is handled a few frames at a time, not frame by frame.
        """
        chunk = b""
        try:
            waiting = port.in_waiting
            if waiting:
                return port.read(waiting), None
            chunk = port.read(1)  # blocks until data or the timeout; raises when the device is gone
            if chunk:
                self._stop.wait(self.config.batch_s)
                chunk += port.read(port.in_waiting)
            return chunk, None
        except (OSError, ValueError, TypeError) as exc:  # SerialException, EIO on a pty, a closed fd
            return chunk, exc

    def process_bytes(self, data: bytes) -> None:
        """Handle bytes as read from the port: decode frames, feed samples, report finished windows.

        The port loop calls this for every read; tests and benchmarks call it directly to replay a
        capture (``ecg-device record``) without a port.
        """
        if self._decoder is None:
            self._decoder = StreamDecoder()
        self.device.handle(self._decoder.feed(data))

    def frame_stats(self) -> dict:
        """Decoder counters over all connections, including the current one."""
        total = StreamStats(**self.stats.frames.as_dict())
        if self._decoder is not None:
            _add_stats(total, self._decoder.stats)
        return total.as_dict()
