"""``ecg-device``: a simulated ECG device, a frame dumper for captures, and a raw port recorder.

    ecg-device simulate [--port P] (--record PATH | --synthetic RHYTHM) [options]
    ecg-device dump CAPTURE [--json]
    ecg-device record --port P --out CAPTURE [--duration S] [--baud B]

The wire protocol is firmware_bridge/PROTOCOL.md (DESIGN.md, Contract 4); the commands are Contract 6.
``main(argv)`` returns the exit status, so tests call it directly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from firmware_bridge.frames import DecodedFrame, Hello, Samples, Start, encode_frame
from firmware_bridge.leads import LEADS_8, LEADS_12, lead_name
from firmware_bridge.stream import StreamDecoder
from firmware_bridge.tracker import SampleTracker
from firmware_bridge.transport import DEFAULT_BAUD, FdTransport, SerialTransport, open_port, open_pty

__all__ = ["main", "build_parser"]

PROG = "ecg-device"


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="ECG device tools for wire protocol v1 (firmware_bridge/PROTOCOL.md): simulate a device "
        "on a pseudo-terminal or serial port, decode a raw capture, record raw bytes from a port.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = sub.add_parser(
        "simulate",
        help="stream real or synthetic ECG as a device would",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Send HELLO, then SAMPLES paced at the real rate, from a WFDB record or the synthetic "
        "generator; answer START [fs] / STOP / HELLO_REQUEST from the host.\n\n"
        "Without --port a pseudo-terminal is created and its path printed as one line 'PTY /dev/pts/N';\n"
        "open that path like a serial port (baud is ignored). The simulator waits until a host opens it,\n"
        "then sends HELLO and streams at once, unless --wait-start is given (then samples start on START).\n"
        "Faults apply to SAMPLES frames only; rates are probabilities per frame. Times (--duration,\n"
        "--lead-off, --disconnect-after) are seconds of signal, equal to wall time at --speed 1.",
    )
    sim.add_argument(
        "--port", help="device path or pyserial URL (e.g. /dev/ttyUSB0, loop://); default: new pty"
    )
    sim.add_argument(
        "--baud", type=int, default=DEFAULT_BAUD, help="baud rate for a real port (default %(default)s)"
    )
    src = sim.add_mutually_exclusive_group()
    src.add_argument("--record", type=Path, help="WFDB record to stream (path without extension)")
    src.add_argument(
        "--synthetic",
        metavar="RHYTHM",
        help="synthetic rhythm (default sinus): sinus, sinus_brady, sinus_tachy, afib, flutter, svt, junctional, vt, "
        "paced_v, paced_a, paced_dual, pvc, pac, bigeminy, trigeminy, avb1, mobitz1, mobitz2, avb2to1, avb3, rbbb, "
        "lbbb, st_elevation (firmware_bridge.synthetic.RHYTHMS)",
    )
    sim.add_argument(
        "--channels", type=int, choices=(12, 8), default=12, help="12 leads, or 8 (I, II, V1-V6)"
    )
    sim.add_argument("--fs", type=int, help="sampling rate in Hz (synthetic; a record keeps its own rate)")
    sim.add_argument("--heart-rate", type=float, help="synthetic heart rate in bpm")
    sim.add_argument(
        "--lsb-nv", type=int, default=1000, help="nanovolts per count (default %(default)s = 1 µV)"
    )
    sim.add_argument("--speed", type=float, default=1.0, help="times real time; 0 = as fast as possible")
    sim.add_argument("--duration", type=float, help="stop after S seconds of signal")
    sim.add_argument("--loop", action="store_true", help="repeat the record without end")
    sim.add_argument("--device-id", default="ecg-sim", help="device_id sent in HELLO")
    sim.add_argument("--frame-samples", type=int, default=10, help="samples per frame, 1..255 (default 10)")
    sim.add_argument("--wait-start", action="store_true", help="send no samples until the host sends START")
    sim.add_argument("--drop-rate", type=float, default=0.0, help="drop frames (their seq is used up)")
    sim.add_argument("--flip-rate", type=float, default=0.0, help="flip one bit in frames")
    sim.add_argument("--garbage-rate", type=float, default=0.0, help="random bytes + 0x00 before frames")
    sim.add_argument("--lead-off", action="append", default=[], metavar="CH@T0-T1",
                     help="electrode off: lead name or channel index, seconds (repeatable), e.g. V2@2-4")  # fmt: skip
    sim.add_argument("--disconnect-after", type=float, metavar="S", help="close the port after S s of signal")
    sim.add_argument("--seed", type=int, help="seed for faults and the synthetic signal")

    dump = sub.add_parser("dump", help="decode a raw capture into one line per frame")
    dump.add_argument("capture", type=Path, help="file of raw bytes as received (see 'record')")
    dump.add_argument("--json", action="store_true", help="JSON lines with every field (samples as lists)")

    rec = sub.add_parser("record", help="save raw bytes from a port to a file")
    rec.add_argument("--port", required=True, help="device path or pyserial URL")
    rec.add_argument("--out", required=True, type=Path, help="capture file to write")
    rec.add_argument("--duration", type=float, help="stop after S seconds (default: Ctrl-C or port closed)")
    rec.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="baud rate (default %(default)s)")
    rec.add_argument(
        "--start", action="store_true", help="send START after opening (for --wait-start devices)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
    try:
        with _sigterm_as_interrupt():
            return {"simulate": _simulate, "dump": _dump, "record": _record}[args.command](args)
    except BrokenPipeError:  # e.g. `ecg-device dump CAP | head`: not an error
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM stop a simulation or recording as cleanly as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _simulate(args: argparse.Namespace) -> int:
    from firmware_bridge.simulator import DeviceSimulator, FaultConfig, LeadOffInterval, SimulatorConfig
    from firmware_bridge.sources import RecordSource, SyntheticSource

    leads = LEADS_12 if args.channels == 12 else LEADS_8
    for name in ("drop_rate", "flip_rate", "garbage_rate"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise CliError(f"--{name.replace('_', '-')} must be between 0 and 1")
    if args.speed < 0:
        raise CliError("--speed must be >= 0")
    if args.record is not None:
        if args.loop and args.duration is None and args.speed == 0:
            raise CliError("--loop with --speed 0 needs --duration")
        source = RecordSource(args.record, leads, args.lsb_nv, loop=args.loop)
        if args.fs is not None and args.fs != source.fs:
            raise CliError(f"record runs at {source.fs} Hz; --fs {args.fs} would need resampling")
    else:
        if args.speed == 0 and args.duration is None:
            raise CliError("a synthetic stream is endless: --speed 0 needs --duration")
        try:
            source = SyntheticSource(args.synthetic or "sinus", leads, args.lsb_nv, fs=args.fs or 500,
                                     seed=args.seed, heart_rate_bpm=args.heart_rate)  # fmt: skip
        except ImportError as exc:
            raise CliError(f"synthetic generator unavailable: {exc}") from None
    faults = FaultConfig(
        drop_rate=args.drop_rate, flip_rate=args.flip_rate, garbage_rate=args.garbage_rate,
        lead_off=tuple(LeadOffInterval.parse(t, leads) for t in args.lead_off),
        disconnect_after=args.disconnect_after, seed=args.seed,
    )  # fmt: skip
    config = SimulatorConfig(
        lsb_nv=args.lsb_nv, frame_samples=args.frame_samples, device_id=args.device_id, speed=args.speed,
        duration=args.duration, wait_start=args.wait_start, faults=faults,
    )  # fmt: skip
    if args.port:
        transport = SerialTransport(open_port(args.port, baud=args.baud))
    else:
        master_fd, path = open_pty()
        transport = FdTransport(master_fd, slave_path=path)
        print(f"PTY {path}", flush=True)
    sim = DeviceSimulator(source, transport, config)
    try:
        if isinstance(transport, FdTransport):
            transport.wait_for_peer()  # like plugging in the cable: nothing is sent before a host opens it
        sim.run()
    except KeyboardInterrupt:
        sim.log.finished = "interrupted"
        transport.close()
    log = sim.log
    print(f"finished ({log.finished}): {log.frames_sent} frames, {log.samples_sent} samples sent, "
          f"{len(log.dropped)} dropped, {len(log.corrupted)} corrupted", file=sys.stderr)  # fmt: skip
    return 0


def _describe(decoded: DecodedFrame) -> str:
    frame = decoded.frame
    head = f"seq={decoded.seq:<5d} {decoded.type.name:<13s}"
    if isinstance(frame, Samples):
        return f"{head} first_sample={frame.first_sample} n_samples={frame.n_samples} " \
               f"n_channels={frame.n_channels} lead_off=0x{frame.lead_off:04x}"  # fmt: skip
    if isinstance(frame, Hello):
        leads = ",".join(lead_name(c) for c in frame.channel_leads)
        return f"{head} fs_hz={frame.fs_hz} lsb_nv={frame.lsb_nv} leads={leads} " \
               f"fw={frame.fw_major}.{frame.fw_minor} device_id={frame.device_id!r}"  # fmt: skip
    fields = " ".join(f"{k}={v}" for k, v in frame.to_fields().items())
    return f"{head} {fields}".rstrip()


def _dump(args: argparse.Namespace) -> int:
    if not args.capture.is_file():
        raise CliError(f"capture not found: {args.capture}")
    decoder, tracker = StreamDecoder(), SampleTracker()
    gaps = []
    out = sys.stdout
    with args.capture.open("rb") as fh:
        for chunk in iter(lambda: fh.read(65536), b""):
            for decoded in decoder.feed(chunk):
                gaps += tracker.observe(decoded)
                if args.json:
                    out.write(json.dumps(decoded.to_json_dict(), ensure_ascii=False) + "\n")
                else:
                    out.write(_describe(decoded) + "\n")
    decoder.close()
    summary = {**decoder.stats.as_dict(), "missing_samples": tracker.missing_samples,
               "sample_gaps": [list(g) for g in gaps]}  # fmt: skip
    if args.json:
        out.write(json.dumps({"summary": summary}) + "\n")
    else:
        out.write("summary " + " ".join(f"{k}={v}" for k, v in summary.items() if k != "sample_gaps") + "\n")
    return 0


def _record(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration <= 0:
        raise CliError("--duration must be positive")
    try:
        port = open_port(args.port, baud=args.baud, timeout=0.1)
    except Exception as exc:  # pyserial raises SerialException (an OSError) or ValueError for bad URLs
        raise CliError(f"cannot open {args.port}: {exc}") from None
    total = 0
    deadline = None if args.duration is None else time.monotonic() + args.duration
    reason = "duration"
    try:
        with port, args.out.open("wb") as fh:
            if args.start:
                port.write(encode_frame(Start(), 0))
            while deadline is None or time.monotonic() < deadline:
                try:
                    chunk = port.read(max(1, port.in_waiting))
                except Exception as exc:  # device gone: EIO on a pty, unplugged USB
                    logging.getLogger(__name__).info("port closed: %s", exc)
                    reason = "port closed"
                    break
                if chunk:
                    fh.write(chunk)
                    fh.flush()
                    total += len(chunk)
    except KeyboardInterrupt:
        reason = "interrupted"
    print(f"recorded {total} bytes to {args.out} ({reason})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
