"""``ecg-edge run``: the live serial runtime (``edge.runtime.serial``), JSON lines to ``--out`` (append, flushed per
line, reopened on SIGHUP for log rotation) and to stdout when it is not a terminal; a live view when it is, and
the web view with ``--view``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from edge.cli.common import (
    add_backend_args,
    command_error,
    positive,
    resolve_bundle,
    trust_from_args,
    user_errors,
    utf8_stdout,
)

__all__ = ["add_run_parser", "cmd_run"]

log = logging.getLogger("edge.cli")


def add_run_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="classify a live ECG stream from a serial port",
        description="Read wire-protocol v1 frames from a device (serial port, pty or pyserial URL), classify "
        "every window of the bundle's length each --hop seconds, and write one JSON object per window. "
        "A lost port is reopened with backoff; Ctrl-C or SIGTERM stops cleanly.",
        epilog="examples:  ecg-edge run --port /dev/ttyUSB0 --out ward.jsonl   |   "
        "ecg-edge run --port socket://10.0.0.5:7000 --hop 5 --no-live",
    )
    p.add_argument(
        "--port", required=True, help="device path, pty path or pyserial URL (loop://, socket://...)"
    )
    p.add_argument("--baud", type=int, default=None, help="baud rate (default 230400; ignored by ptys)")
    p.add_argument("--hop", type=positive, default=2.0, help="seconds between windows (default 2)")
    p.add_argument("--fs", type=int, help="ask the device for this sampling rate in START")
    p.add_argument("--out", type=Path, help="append JSON lines to this file (flushed per line; reopened on SIGHUP)")
    p.add_argument("--fsync", action="store_true", help="fsync --out after every line (power-loss safe)")
    p.add_argument("--duration", type=positive, help="stop after S seconds")
    p.add_argument("--max-windows", type=int, help="stop after N windows")
    p.add_argument(
        "--no-live", action="store_true", help="on a terminal, print JSON lines instead of the live view"
    )
    p.add_argument("--quiet", action="store_true", help="print nothing on stdout (use with --out)")
    p.add_argument(
        "--view",
        metavar="HOST:PORT",
        help="serve the bedside web view (ECG traces, heart rate, findings) at http://HOST:PORT/, "
        "e.g. 127.0.0.1:8080 (port 0: any free port)",
    )
    from edge.cli.record_args import add_patient_args

    add_patient_args(p, acquired=False)  # the bedside patient: a "patient" block in every window's line
    add_backend_args(p)
    p.set_defaults(func=cmd_run)


@contextlib.contextmanager
def _stop_on_signals(stop: Callable[[str], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``stop`` instead of killing the process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda signum, frame: stop(signal.Signals(signum).name))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _reopen_on_sighup(sink) -> Iterator[None]:  # noqa: ANN001 - edge.runtime.jsonl.JsonLinesFile | None
    """SIGHUP reopens ``--out`` before its next line (log rotation, docs/deploy.md); main thread only."""
    main = threading.current_thread() is threading.main_thread()
    if sink is None or not hasattr(signal, "SIGHUP") or not main:
        yield
        return
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: sink.request_reopen())
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


@contextlib.contextmanager
def _signals_during_startup() -> Iterator[list[str]]:
    """SIGINT/SIGTERM while the bundle loads are remembered (no KeyboardInterrupt half-way through an import)."""
    requested: list[str] = []
    with _stop_on_signals(requested.append):
        yield requested


@user_errors
def cmd_run(args: argparse.Namespace) -> int:
    with _signals_during_startup() as stop_requests:
        return _run(args, stop_requests)


def _run(args: argparse.Namespace, stop_requests: list[str]) -> int:
    from edge.runtime.engine import Classifier
    from edge.runtime.jsonl import JsonLinesFile
    from edge.runtime.serial import RunConfig, Runtime
    from edge.views.terminal import LiveView
    from firmware_bridge.transport import DEFAULT_BAUD

    if args.max_windows is not None and args.max_windows < 1:
        raise command_error("--max-windows must be at least 1")
    from firmware_bridge.frames import HOST_FS_RANGE

    if args.fs is not None and not HOST_FS_RANGE[0] <= args.fs <= HOST_FS_RANGE[1]:
        raise command_error(f"--fs {args.fs} is outside the host's limits {HOST_FS_RANGE[0]}..{HOST_FS_RANGE[1]} Hz")
    from edge.cli.record_args import patient_override

    patient = patient_override(args).json_fields()  # {} when no patient option was given
    bundle = resolve_bundle(args.bundle)
    from edge.runtime.memory import limit_arenas, set_long_running

    set_long_running()  # the backend releases its library's start-up pages after the import (edge.runtime.memory)
    limit_arenas(1)  # before any thread: the web view's request threads share the heap (-0.4 to -1.1 MiB peak)
    classifier = Classifier.from_bundle(bundle, backend=args.backend, threads=args.threads, trust=trust_from_args(args))
    stdout = utf8_stdout()
    live = stdout.isatty() and not args.no_live and not args.quiet
    json_to_stdout = not args.quiet and not live
    if not args.out and not json_to_stdout:
        log.warning("the JSON lines are not kept anywhere: add --out FILE to record them")
    try:
        sink = (
            JsonLinesFile(args.out, args.fsync, lambda e: on_event(e, to_file=False), resume=True) if args.out else None
        )  # resume: a file the last run did not end cleanly (kill -9, power cut) gets a "resumed" event line
    except OSError as exc:
        raise command_error(f"cannot open --out {args.out}: {exc.strerror or exc}") from None
    view = LiveView(stdout) if live else None
    if view is not None:
        view.warning = classifier.bundle.warning  # --allow-unsigned: on every frame of the live view
    web = _start_web_view(args.view, classifier) if args.view else None
    _release_startup_memory()
    if view is not None and web is not None:
        view.web_url = web.url  # the terminal view shows where the web view is

    def on_event(line: dict, to_file: bool = True) -> None:
        """Event lines (disconnected, disk_full, ...) go where the windows go (contract 5)."""
        text = json.dumps(line, ensure_ascii=False)
        if sink is not None and to_file:
            sink.write(text)
        if json_to_stdout:
            stdout.write(text + "\n")
            stdout.flush()

    if sink is not None and sink.resumed is not None:
        on_event(sink.resumed, to_file=False)

    def on_result(result, line: dict) -> None:  # noqa: ANN001 - edge.runtime.engine.Result
        line.update(patient)
        text = json.dumps(line, ensure_ascii=False)
        if sink is not None:
            sink.write(text)
        if json_to_stdout:
            stdout.write(text + "\n")
            stdout.flush()

    config = RunConfig(
        port=args.port,
        baud=args.baud or DEFAULT_BAUD,
        hop_s=args.hop,
        start_fs=args.fs,
        duration_s=args.duration,
        max_windows=args.max_windows,
    )
    runtime = Runtime(classifier, config, on_result, view.update if view else None, on_event=on_event)
    for name in stop_requests:  # Ctrl-C while starting: stop cleanly before the first read
        runtime.stop(name)
    if web is not None:
        web.attach(runtime)
    if view is not None:
        view.follow(runtime)  # redraws during reconnect backoff too, when the runtime calls no hook
    stats = None
    try:
        with _stop_on_signals(runtime.stop), _reopen_on_sighup(sink):
            stats = runtime.run()
    finally:
        if view is not None:
            view.unfollow()
        if web is not None:
            web.close()
        if sink is not None:  # a clean stop ends the file with a "stopped" line (none after a crash)
            sink.close(None if stats is None else (stats.stop_reason or "done"))
        classifier.close()
    frames = stats.frames
    print(
        f"ecg-edge run: stopped ({stats.stop_reason or 'done'}) after {stats.as_dict()['elapsed_s']:.1f} s: "
        f"{stats.windows} windows ({stats.windows_ok} ok), {frames.frames_ok} frames, {frames.errors} bad frames, "
        f"{frames.frames_lost} lost by seq, {stats.missing_samples} missing samples, "
        f"{stats.reconnects} reconnects, {stats.reconfigurations} reconfigurations"
        + (f", {sink.lost_at_exit} lines lost: {args.out} refused them until exit" if sink and sink.lost_at_exit else ""),
        file=sys.stderr,
        flush=True,
    )
    return 0


def _release_startup_memory() -> None:
    """After start-up (bundle, session, warm-up, web view): the inference library's start-up code and the heap
    freed by model parsing go back to the kernel (``edge.runtime.memory``; issue #23 item 5)."""
    from edge.runtime.memory import release_library_pages, trim_heap

    released = release_library_pages()
    trimmed = trim_heap()
    log.debug("start-up memory released: %.1f MiB of library mappings advised, heap trimmed: %s", released / 2**20, trimmed)


def _start_web_view(address: str, classifier):  # noqa: ANN001, ANN202 - edge.runtime.engine.Classifier -> WebView
    """Serve the bedside page at ``address`` (HOST:PORT); its URL goes to stderr."""
    from edge.views.webview import WebView, parse_view_address

    try:
        host, port = parse_view_address(address)
    except ValueError as exc:
        raise command_error(str(exc)) from None
    web = WebView(host, port, labels=classifier.labels, bundle=classifier.bundle_id, warning=classifier.bundle.warning)
    try:
        url = web.start()
    except OSError as exc:
        raise command_error(f"cannot serve the web view at {address}: {exc.strerror or exc}") from None
    print(f"ecg-edge run: bedside view at {url}", file=sys.stderr, flush=True)
    return web


# -- classify ----------------------------------------------------------------------------------------
