"""A simulated ECG acquisition device speaking wire protocol v1 (PROTOCOL.md) over any transport.

``DeviceSimulator(source, transport, config)`` sends a 0x00 (so the host's decoder is in sync), a HELLO,
then SAMPLES frames paced by the wall clock at ``config.speed`` times real time (0: as fast as the
transport takes them). It answers host frames: START (optionally with a new rate: a synthetic source is
regenerated, the sample counter restarts at 0 and a new HELLO is sent; a record refuses with an EVENT
DEVICE_ERROR), STOP (pause; the sample counter pauses too) and HELLO_REQUEST. With ``wait_start`` it sends
only the HELLO until a START arrives; by default it streams at once, so a reader that never writes works.

Faults (``FaultConfig``), for testing receivers; they touch SAMPLES frames only, never HELLO or EVENT:
dropped frames (their seq and samples are used up, so the host sees the gap), one flipped bit in a frame,
bursts of random bytes followed by a 0x00 before a frame, lead-off intervals (bit set, channel flat, EVENT
LEAD_OFF with the new mask when it changes), and a disconnect (the transport is closed) after a number of
seconds of signal. Everything the simulator did is logged in ``self.log`` (frames sent, dropped, corrupted)
so tests can compare what the host detected with what really happened.

Use ``run()`` in the calling thread, ``start_thread()`` in the background, or ``begin()`` + ``step()``.
"""

from __future__ import annotations

import logging
import random
import struct
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.frames import (
    Event,
    EventCode,
    Frame,
    Hello,
    HelloRequest,
    Samples,
    Start,
    Stop,
    encode_frame,
)
from firmware_bridge.leads import lead_code
from firmware_bridge.sources import SignalSource
from firmware_bridge.stream import StreamDecoder
from firmware_bridge.tracker import Gap
from firmware_bridge.transport import Transport, TransportClosed, drain

__all__ = ["LeadOffInterval", "FaultConfig", "SimulatorConfig", "SimulatorLog", "DeviceSimulator"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeadOffInterval:
    """Channel ``channel`` (index in the stream) has its electrode off from ``start_s`` to ``end_s``."""

    channel: int
    start_s: float  # seconds of signal since the simulator began
    end_s: float

    @classmethod
    def parse(cls, text: str, channel_leads: tuple[int, ...]) -> LeadOffInterval:
        """``CH@T0-T1``: CH is a lead name (``V2``, ``avr``) or a channel index; times in seconds."""
        try:
            ch_text, span = text.split("@")
            t0_text, t1_text = span.split("-")
            t0, t1 = float(t0_text), float(t1_text)
        except ValueError:
            raise ValueError(f"lead-off {text!r} is not CH@T0-T1 (e.g. V2@1.5-3)") from None
        if ch_text.strip().isdigit():
            channel = int(ch_text)
        else:
            code = lead_code(ch_text)
            if code not in channel_leads:
                raise ValueError(f"lead-off {text!r}: lead {ch_text} is not one of the device's channels")
            channel = channel_leads.index(code)
        if not 0 <= channel < len(channel_leads):
            raise ValueError(f"lead-off {text!r}: channel {channel} out of range 0..{len(channel_leads) - 1}")
        if not 0 <= t0 < t1:
            raise ValueError(f"lead-off {text!r}: need 0 <= T0 < T1")
        return cls(channel, t0, t1)


@dataclass
class FaultConfig:
    """Faults to inject into the SAMPLES stream; rates are probabilities per frame."""

    drop_rate: float = 0.0  # frame not written at all (seq and samples still used up)
    flip_rate: float = 0.0  # one random bit of the encoded frame flipped
    garbage_rate: float = 0.0  # 1..64 random bytes plus a 0x00 written before the frame
    lead_off: tuple[LeadOffInterval, ...] = ()
    disconnect_after: float | None = None  # close the transport after this many seconds of signal
    seed: int | None = None  # for the fault random generator; None: nondeterministic


@dataclass
class SimulatorConfig:
    """How the simulated device presents itself and paces its stream."""

    lsb_nv: int = 1000  # nanovolts per count (1 µV), announced in HELLO
    frame_samples: int = 10  # samples per SAMPLES frame, 1..255
    device_id: str = "ecg-sim"
    fw_major: int = 1
    fw_minor: int = 0
    speed: float = 1.0  # times real time; 0 = as fast as the transport accepts
    duration: float | None = None  # stop after this many seconds of signal; None: until the source ends
    wait_start: bool = False  # send nothing but HELLO until a START arrives
    faults: FaultConfig = field(default_factory=FaultConfig)


@dataclass
class SimulatorLog:
    """What the simulator really did, for comparison with what a receiver saw."""

    frames_sent: int = 0  # frames written intact (any type)
    samples_sent: int = 0  # samples in SAMPLES frames written intact
    dropped: list[Gap] = field(default_factory=list)  # samples of dropped frames
    corrupted: list[Gap] = field(default_factory=list)  # samples of frames written with a flipped bit
    garbage_bursts: int = 0
    events: list[Event] = field(default_factory=list)
    host_frames: list[Frame] = field(default_factory=list)  # commands received
    finished: str = ""  # why run() ended: "end", "duration", "disconnect", "stopped", "closed"


class DeviceSimulator:
    """A device that streams ``source`` over ``transport``; see the module docstring."""

    def __init__(self, source: SignalSource, transport: Transport, config: SimulatorConfig | None = None):
        self.source = source
        self.transport = transport
        self.config = config or SimulatorConfig()
        if not 1 <= self.config.frame_samples <= 255:
            raise ValueError("frame_samples must be 1..255")
        self.rng = random.Random(self.config.faults.seed)
        self.rx = StreamDecoder()
        self.log = SimulatorLog()
        self.seq = 0
        self.sample_index = 0  # u32 index of the next sample in the current stream format
        self.elapsed_s = 0.0  # seconds of signal sent (or dropped), across format changes
        self.streaming = False
        self.lead_off_mask = 0
        self._done = False
        self._stop = threading.Event()
        self._clock: tuple[float, float] = (0.0, 0.0)  # (wall time, elapsed_s) when pacing last restarted
        self._thread: threading.Thread | None = None

    # --- life cycle -------------------------------------------------------------------------------
    def begin(self) -> None:
        """Send the sync delimiter and HELLO; start streaming unless ``wait_start``."""
        self._write(b"\x00")
        self._send(self.hello())
        self.streaming = not self.config.wait_start
        self._restart_clock()

    def run(self) -> str:
        """Begin, then step until finished; closes the transport. Returns why it finished."""
        try:
            self.begin()
            while self.step():
                pass
        except TransportClosed as exc:
            logger.info("transport closed: %s", exc)
            self._finish("closed")
        finally:
            if self.log.finished in ("end", "duration"):  # let the host read the tail before closing
                drain(self.transport, 5.0)
            self.transport.close()
        return self.log.finished

    def start_thread(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="device-simulator", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, join: bool = True) -> None:
        """Ask ``run()`` to end (from another thread), also when it is blocked writing to a full pty."""
        self._stop.set()
        interrupt = getattr(self.transport, "interrupt", None)
        if interrupt is not None:
            interrupt()
        if join and self._thread is not None:
            self._thread.join(10)

    # --- one step ---------------------------------------------------------------------------------
    def step(self) -> bool:
        """Serve host frames, then send the next SAMPLES frame when it is due. False once finished."""
        if self._done:
            return False
        if self._stop.is_set():
            return self._finish("stopped")
        wait = self._due_in() if self.streaming else 0.05
        for decoded in self.rx.feed(self.transport.read(max(0.0, wait))):
            self._handle(decoded.frame)
        if not self.streaming or self._due_in() > 0:
            return not self._done
        return self._send_block()

    def _due_in(self) -> float:
        if self.config.speed <= 0:
            return 0.0
        wall0, elapsed0 = self._clock
        n = self.config.frame_samples / self.source.fs
        return wall0 + (self.elapsed_s + n - elapsed0) / self.config.speed - time.monotonic()

    def _restart_clock(self) -> None:
        self._clock = (time.monotonic(), self.elapsed_s)

    def _finish(self, why: str) -> bool:
        self._done = True
        self.log.finished = self.log.finished or why
        return False

    def _send_block(self) -> bool:
        cfg, faults, fs = self.config, self.config.faults, self.source.fs
        n = cfg.frame_samples
        if cfg.duration is not None:
            n = min(n, int(round((cfg.duration - self.elapsed_s) * fs)))
        if faults.disconnect_after is not None and self.elapsed_s >= faults.disconnect_after:
            logger.info("disconnecting after %.3f s of signal", self.elapsed_s)
            self._finish("disconnect")
            return False
        block = self.source.read(n) if n > 0 else np.zeros((0, 0), np.int16)
        if block.shape[0] == 0:
            return self._finish("end" if n > 0 else "duration")
        block, frame_mask = self._apply_lead_off(np.array(block, dtype=np.int16))
        frame = Samples(self.sample_index, block, frame_mask)
        self._send(frame, inject=True)
        self.sample_index = (self.sample_index + block.shape[0]) & 0xFFFFFFFF
        self.elapsed_s += block.shape[0] / fs
        return True

    def _apply_lead_off(self, block: np.ndarray) -> tuple[np.ndarray, int]:
        intervals = self.config.faults.lead_off
        if not intervals:
            return block, 0
        t = self.elapsed_s + np.arange(block.shape[0]) / self.source.fs
        masks = np.zeros(block.shape[0], dtype=np.int64)
        for iv in intervals:
            off = (t >= iv.start_s - 1e-9) & (t < iv.end_s - 1e-9)
            if iv.channel < block.shape[1]:
                block[off, iv.channel] = 0
                masks[off] |= 1 << iv.channel
        for j, mask in enumerate(masks.tolist()):
            if mask != self.lead_off_mask:
                self.lead_off_mask = mask
                self._send(
                    Event(EventCode.LEAD_OFF, (self.sample_index + j) & 0xFFFFFFFF, struct.pack("<H", mask))
                )
        return block, int(np.bitwise_or.reduce(masks)) if masks.size else 0

    # --- host commands ----------------------------------------------------------------------------
    def _handle(self, frame: Frame) -> None:
        self.log.host_frames.append(frame)
        logger.info("host frame: %s", frame)
        if isinstance(frame, Start):
            if frame.fs_hz is not None and frame.fs_hz != self.source.fs:
                if not self.source.set_fs(frame.fs_hz):
                    msg = f"fs {frame.fs_hz} Hz not supported (source runs at {self.source.fs} Hz)"
                    self._send(Event(EventCode.DEVICE_ERROR, self.sample_index, msg.encode()))
                    return
                self.sample_index = 0  # new format: the counter restarts, announced by HELLO
            self.streaming = True
            self._send(self.hello())
            self._restart_clock()
        elif isinstance(frame, Stop):
            self.streaming = False
        elif isinstance(frame, HelloRequest):
            self._send(self.hello())
        else:
            logger.debug("ignoring %s from host", type(frame).__name__)

    def hello(self) -> Hello:
        cfg = self.config
        return Hello(
            self.source.fs, self.source.channel_leads, cfg.lsb_nv, cfg.fw_major, cfg.fw_minor, cfg.device_id
        )

    # --- writing ----------------------------------------------------------------------------------
    def _send(self, frame: Frame, inject: bool = False) -> None:
        seq, self.seq = self.seq, (self.seq + 1) & 0xFFFF
        wire = encode_frame(frame, seq)
        if isinstance(frame, Event):
            self.log.events.append(frame)
        if inject:
            faults = self.config.faults
            gap = Gap(frame.first_sample, frame.n_samples) if isinstance(frame, Samples) else None
            if faults.garbage_rate and self.rng.random() < faults.garbage_rate:
                garbage = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 64)))
                self._write(garbage + b"\x00")
                self.log.garbage_bursts += 1
            if faults.drop_rate and self.rng.random() < faults.drop_rate:
                self.log.dropped.append(gap)
                return
            if faults.flip_rate and self.rng.random() < faults.flip_rate:
                corrupt = bytearray(wire)
                corrupt[self.rng.randrange(len(wire) - 1)] ^= 1 << self.rng.randrange(8)
                self._write(bytes(corrupt))
                self.log.corrupted.append(gap)
                return
        self._write(wire)
        self.log.frames_sent += 1
        if isinstance(frame, Samples):
            self.log.samples_sent += frame.n_samples

    def _write(self, data: bytes) -> None:
        self.transport.write(data)
