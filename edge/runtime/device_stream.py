"""From decoded frames to classified windows: the device-facing half of :class:`edge.runtime.serial.Runtime`.

DESIGN.md contract 4 ("Limits a host enforces") and contract 5 (event lines), per frame:

- HELLO: refused with one error and one ``device_rejected`` event per distinct problem when it breaks the
  host's limits (50 <= fs_hz <= 2000, 1 <= n_channels <= 16) or cannot make the 12 leads; otherwise its
  format is remembered and its stream (ring buffer, windows) is built only when samples in that format
  arrive, so a storm of HELLOs allocates nothing;
- SAMPLES: ``firmware_bridge.tracker.SampleTracker`` classifies each block against the expected
  ``first_sample``: contiguous; a gap of at most one window (marked missing); a retransmission of at most one
  window back (duplicate samples dropped); a jump beyond one window or a counter restart (a new segment,
  announced by a ``segment`` event). Work and memory per frame are bounded whatever the bytes say;
- EVENT: logged.

:class:`DeviceStream` owns the per-device state (the HELLO, the stream of the current format, the sample
tracker, the segment count) and is handed its collaborators explicitly: the classifier, the hop, the run's
counters (``edge.runtime.serial.RunStats``), ``emit(name, **fields)`` for event lines and ``on_window(result)``
for every finished window. :class:`edge.runtime.serial.Runtime` owns one and feeds it decoded frames.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.dsp.signal import SignalError, to_twelve_leads
from edge.runtime.engine import Classifier
from edge.runtime.events import clean_device_id
from edge.runtime.result import Result
from edge.runtime.stream import StreamClassifier
from firmware_bridge.frames import Event, EventCode, Hello, Samples, host_limit_violation
from firmware_bridge.leads import lead_name
from firmware_bridge.tracker import SampleTracker

__all__ = ["DeviceStream", "INT16_FULL_SCALE"]

logger = logging.getLogger("edge.runtime.serial")

INT16_FULL_SCALE = 32767


class DeviceStream:
    """Frames -> samples -> windows of one device link, with the host's limits (contract 4).

    ``stats`` is any object with the run's counters (``hellos``, ``rejected_hellos``, ``reconfigurations``,
    ``events``, ``samples``, ``samples_ignored``, ``missing_samples``, ``duplicate_samples``, ``jumps``,
    ``stream_restarts``); ``emit(name, **fields)`` writes an event line; ``on_window(result)`` gets every
    finished window.
    """

    def __init__(
        self,
        classifier: Classifier,
        hop_s: float,
        stats: Any,  # noqa: ANN401 - edge.runtime.serial.RunStats (not imported: serial imports this module)
        emit: Callable[..., object],
        on_window: Callable[[Result], None],
    ) -> None:
        self.classifier = classifier
        self.hop_s = hop_s
        self.stats = stats
        self.emit = emit
        self.on_window = on_window
        self.tracker = SampleTracker()
        self.hello: Hello | None = None  # the HELLO of the current connection
        self.stream: StreamClassifier | None = None
        self.segment = 0  # +1 each time the stream starts afresh (new format or counter restart)
        self._format: tuple | None = None  # format of self.stream
        self._pending: Hello | None = None  # an accepted HELLO whose stream is built when samples arrive
        self._rejected: set[str] = set()  # problems of refused HELLOs already reported on this connection
        self._rewind_ok = False  # False right after a (re)start: a step back is a restart, not a retransmission
        self._scale = 1e-3  # mV per count
        self._abs_next: int | None = None  # unwrapped index of the next sample expected

    def connected(self) -> None:
        """A new connection: it needs a new HELLO, and a step back of its counter is a restart."""
        self.hello = None
        self._rewind_ok = False
        self._rejected.clear()

    def handle(self, decoded: list) -> None:
        """Handle decoded frames (``firmware_bridge.stream.StreamDecoder.feed``'s items) in order."""
        self._handle_frames(decoded)

    # --- frames -----------------------------------------------------------------------------------
    def _handle_frames(self, decoded: list) -> None:
        run: list[Samples] = []
        for item in decoded:
            frame = item.frame
            if isinstance(frame, Samples):
                if self._pending is not None:  # the first samples of a new format: build its stream now
                    self._feed(run)
                    run = []
                    self._build_stream(self._pending)
                if self.stream is None or self.hello is None or frame.n_channels != len(self.stream.leads):
                    self.stats.samples_ignored += frame.n_samples
                    continue
                run.append(frame)
                continue
            self._feed(run)
            run = []
            if isinstance(frame, Hello):
                self._on_hello(frame, item.seq)
            elif isinstance(frame, Event):
                self.stats.events += 1
                self._on_event(frame)
        self._feed(run)

    def _on_hello(self, hello: Hello, seq: int = 1) -> None:
        """Check a HELLO against the host's limits and the 12-lead rule; a new format is built lazily."""
        if hello.device_id != clean_device_id(hello.device_id):  # escapes, control characters, 65 KB ids
            hello = dataclasses.replace(hello, device_id=clean_device_id(hello.device_id))
        self.stats.hellos += 1
        if seq == 0:  # a device (re)starting announces itself with seq 0: a step back is a restart
            self._rewind_ok = False
        leads = [lead_name(c) for c in hello.channel_leads]
        problem = host_limit_violation(hello)
        if problem is None:
            try:
                to_twelve_leads(np.zeros((len(leads), 2), np.float32), leads)
            except SignalError as exc:
                problem = f"device channels {leads} cannot make the 12 leads ({exc})"
        self.hello = hello
        if problem is not None:
            self.stats.rejected_hellos += 1
            if problem not in self._rejected and len(self._rejected) < 16:  # not once per HELLO of a storm
                self._rejected.add(problem)
                logger.error("HELLO from %r refused: %s; ignoring its samples", hello.device_id, problem)
                self.emit("device_rejected", device=hello.device_id, reason=problem)
            self.stream, self._format, self._pending = None, None, None
            return
        # The device id is part of the format: a reopened port answered by another device (a pty path reused, a
        # cable moved to another cart) starts a new segment, never continues the first device's windows.
        fmt = (hello.fs_hz, hello.channel_leads, hello.lsb_nv, hello.device_id)
        self._pending = None if fmt == self._format else hello
        logger.info(
            "HELLO from %r: %d Hz, leads %s, %d nV/LSB, firmware %d.%d",
            hello.device_id,
            hello.fs_hz,
            ",".join(leads),
            hello.lsb_nv,
            hello.fw_major,
            hello.fw_minor,
        )

    def _build_stream(self, hello: Hello) -> None:
        """Start the stream of a new format (on its first samples: a HELLO alone allocates nothing)."""
        self._pending = None
        fmt = (hello.fs_hz, hello.channel_leads, hello.lsb_nv, hello.device_id)
        previous = None if self._format is None else self._format[3]
        leads = [lead_name(c) for c in hello.channel_leads]
        if self._format is not None:
            self.stats.reconfigurations += 1
            logger.warning(
                "stream format changed to %d Hz, leads %s, %d nV/LSB", hello.fs_hz, leads, hello.lsb_nv
            )
        self.tracker.observe(hello)
        self.tracker.reset()  # a new stream starts at its first frame, whatever came before
        self._format = fmt
        self._scale = hello.lsb_nv * 1e-6
        self.stream = StreamClassifier(
            self.classifier,
            hello.fs_hz,
            leads,
            hop_s=self.hop_s,
            rail_mv=INT16_FULL_SCALE * self._scale,
        )
        self._abs_next = None
        self.segment += 1
        if previous is not None and previous != hello.device_id:
            logger.warning("another device answers: %r (was %r); a new segment starts", hello.device_id, previous)
        self.emit(
            "device_changed",
            **({} if previous is None or previous == hello.device_id else {"previous_device": previous}),
            device=hello.device_id,
            fs=hello.fs_hz,
            leads=leads,
            lsb_nv=hello.lsb_nv,
            firmware=f"{hello.fw_major}.{hello.fw_minor}",
        )

    def _on_event(self, event: Event) -> None:
        try:
            name = EventCode(event.code).name
        except ValueError:
            name = f"code {event.code}"
        if event.code == EventCode.DEVICE_ERROR:
            logger.warning(
                "device error at sample %d: %s", event.sample, event.detail.decode("utf-8", "replace")
            )
        else:
            logger.info("device event %s at sample %d (%s)", name, event.sample, event.detail.hex())

    def _feed(self, frames: list[Samples]) -> None:
        """Feed SAMPLES frames: contiguous ones as one block, gaps marked missing, restarts reset."""
        if not frames:
            return
        stream = self.stream
        tracker = self.tracker
        # Contract 4: a forward jump beyond one window is a new segment; a step back of at most one window
        # is a retransmission (after a device restart, any step back is a restart).
        tracker.max_gap = stream.window
        blocks: list[np.ndarray] = []
        masks: list[np.ndarray] = []
        block_start: int | None = None
        block_end = 0
        for frame in frames:
            tracker.max_rewind = stream.window if self._rewind_ok else 0
            self._rewind_ok = True
            expected, data = self._abs_next, frame.samples
            gaps = tracker.update(frame.first_sample, frame.n_samples)
            lost = sum(g.count for g in gaps)
            if expected is None or tracker.last in ("restart", "jump"):
                if expected is not None:
                    if tracker.last == "jump":
                        self.stats.jumps += 1
                        reason = f"first_sample jumped from {expected} to {frame.first_sample}"
                    else:
                        self.stats.stream_restarts += 1
                        reason = f"device restarted its sample counter at {frame.first_sample}"
                    logger.warning("%s; starting a new segment", reason)
                    self._flush(blocks, masks, block_start)
                    blocks, masks, block_start = [], [], None
                    stream.reset()
                    self.segment += 1
                    self.emit("segment", reason=reason, first_sample=frame.first_sample)
                start = frame.first_sample
            elif tracker.last == "overlap":
                behind = (expected - frame.first_sample) % (1 << 32)
                self.stats.duplicate_samples += min(behind, frame.n_samples)
                if behind >= frame.n_samples:
                    continue  # every sample of this frame was received already
                data, start = data[behind:], expected
            else:
                start = expected + lost
            if lost:
                self.stats.missing_samples += lost
            if block_start is not None and start != block_end:
                self._flush(blocks, masks, block_start)
                blocks, masks, block_start = [], [], None
            if block_start is None:
                block_start = start
            n = data.shape[0]
            blocks.append(data)
            masks.append(np.full(n, frame.lead_off, dtype=np.uint16))
            self._abs_next = block_end = start + n
            self.stats.samples += n
        self._flush(blocks, masks, block_start)

    def _flush(self, blocks: list[np.ndarray], masks: list[np.ndarray], start: int | None) -> None:
        if not blocks:
            return
        counts = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        x_mv = counts.astype(np.float32) * np.float32(self._scale)  # [n, C]
        lead_off = masks[0] if len(masks) == 1 else np.concatenate(masks)
        for result in self.stream.feed(x_mv, start, lead_off):
            self._report(result)

    def _report(self, result: Result) -> None:
        self.on_window(result)
