"""``ecg-edge run | classify | info`` and ``labels --bundle``: the runtime's subcommands (Contract 6).

Registered in ``edge.cli.main`` through :data:`RUNTIME_SUBCOMMANDS`; each ``add_*_parser(subparsers)``
adds its parser and sets ``func``. Handlers return the exit status; user errors print one line on stderr and exit 1.

- ``run``: the live serial runtime (``edge.runtime.serial``), JSON lines to ``--out`` (append, flushed per
  line, reopened on SIGHUP for log rotation) and to stdout when it is not a terminal; a live view when it is.
- ``classify``: files (WFDB, ``.npy``, CSV) window by window through the same
  ``Classifier.classify_windows`` as the stream; JSON lines or a table.
- ``info``: a bundle's manifest in readable form.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "RUNTIME_SUBCOMMANDS",
    "UsageError",
    "add_run_parser",
    "add_classify_parser",
    "add_info_parser",
    "add_bundle_labels_argument",
    "cmd_run",
    "cmd_classify",
    "cmd_info",
    "cmd_bundle_labels",
]

log = logging.getLogger(__name__)

BUNDLE_HELP = "bundle folder or .zip (default: the bundle shipped in the package, edge/bundles/default)"


class UsageError(Exception):
    """A user-facing failure of a runtime subcommand: one line on stderr, exit status 1."""


def _command_error(message: str) -> Exception:
    return UsageError(message)


def _print_error(message: str) -> int:
    stream = sys.stderr
    try:
        stream.write(f"ecg-edge: error: {message}\n")
    except UnicodeEncodeError:  # a pipe under an ASCII locale
        stream.buffer.write(f"ecg-edge: error: {message}\n".encode())
    stream.flush()
    return 1


def _utf8_stdout():  # noqa: ANN202 - TextIO
    """stdout, made able to write Japanese when its locale encoding cannot (a pipe under LANG=C)."""
    try:
        "心電図".encode(sys.stdout.encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(encoding="utf-8")
    return sys.stdout


def _user_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report the runtime's own errors as one line and exit status 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except Exception as exc:  # imported only now: ecg-edge run installs its signal handlers first
            from edge.bundle.loader import BundleError
            from edge.dsp.signal import SignalError
            from edge.readers.records import RecordError
            from edge.runtime.backends import BackendError
            from edge.runtime.serial import PortError

            if isinstance(exc, (UsageError, BundleError, BackendError, RecordError, SignalError, PortError)):
                return _print_error(str(exc))
            raise

    return wrapper


def resolve_bundle(path: Path | None) -> Path:
    """``--bundle`` or the default bundle; a clear error when neither exists."""
    from edge.bundle.loader import default_bundle_path

    if path is not None:
        if not path.exists():
            raise _command_error(f"bundle {path} not found")
        return path
    default = default_bundle_path()
    if not (default / "manifest.json").is_file():
        raise _command_error(
            f"no --bundle given and the default bundle is not installed at {default}; "
            f"build one with ecg-export and pass --bundle PATH"
        )
    return default


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", type=Path, help=BUNDLE_HELP)
    p.add_argument(
        "--backend",
        choices=("auto", "onnx", "litert"),
        default="auto",
        help="inference runtime: onnx (onnxruntime, int8 ONNX) or litert (int8 .tflite); default auto: onnx "
        "if the bundle has the int8 ONNX model, else litert (ecg-edge info lists a bundle's formats)",
    )
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    _add_trust_arg(p)


def _add_trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-key",
        action="append",
        default=[],
        type=Path,
        metavar="PUB",
        help="also trust manifests signed by this public key (.pub from ecg-export keygen, or a folder of them; "
        "repeatable). Trusted always: keys installed with ecg-edge trust add, $ECG_EDGE_TRUSTED_KEYS, "
        "/etc/ecg-clip-ja/trusted_keys. Other bundles are refused; the shipped default bundle is pinned by its sha256",
    )
    p.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="load a bundle that is unsigned or signed by an untrusted key; it is marked unsigned on the terminal, "
        "the web page and in every JSON line (a bad signature is refused even so)",
    )
    p.add_argument(
        "--allow-rollback",
        action="store_true",
        help="load a signed bundle older than one this device already accepted from the same key",
    )


def _trust(args: argparse.Namespace):  # noqa: ANN202 - edge.bundle.signing.Trust
    from edge.bundle.signing import SigningError, Trust

    try:
        return Trust.from_config(
            getattr(args, "trust_key", None) or (),
            allow_unsigned=bool(getattr(args, "allow_unsigned", False)),
            allow_rollback=bool(getattr(args, "allow_rollback", False)),
        )
    except SigningError as exc:
        raise _command_error(str(exc)) from None


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


# -- run ---------------------------------------------------------------------------------------------
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
    p.add_argument("--hop", type=_positive, default=2.0, help="seconds between windows (default 2)")
    p.add_argument("--fs", type=int, help="ask the device for this sampling rate in START")
    p.add_argument("--out", type=Path, help="append JSON lines to this file (flushed per line; reopened on SIGHUP)")
    p.add_argument("--fsync", action="store_true", help="fsync --out after every line (power-loss safe)")
    p.add_argument("--duration", type=_positive, help="stop after S seconds")
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
    _add_backend_args(p)
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


@_user_errors
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
        raise _command_error("--max-windows must be at least 1")
    from firmware_bridge.frames import HOST_FS_RANGE

    if args.fs is not None and not HOST_FS_RANGE[0] <= args.fs <= HOST_FS_RANGE[1]:
        raise _command_error(f"--fs {args.fs} is outside the host's limits {HOST_FS_RANGE[0]}..{HOST_FS_RANGE[1]} Hz")
    bundle = resolve_bundle(args.bundle)
    classifier = Classifier.from_bundle(bundle, backend=args.backend, threads=args.threads, trust=_trust(args))
    stdout = _utf8_stdout()
    live = stdout.isatty() and not args.no_live and not args.quiet
    json_to_stdout = not args.quiet and not live
    if not args.out and not json_to_stdout:
        log.warning("the JSON lines are not kept anywhere: add --out FILE to record them")
    try:
        sink = JsonLinesFile(args.out, args.fsync, lambda e: on_event(e, to_file=False)) if args.out else None
    except OSError as exc:
        raise _command_error(f"cannot open --out {args.out}: {exc.strerror or exc}") from None
    view = LiveView(stdout) if live else None
    if view is not None:
        view.warning = classifier.bundle.warning  # --allow-unsigned: on every frame of the live view
    web = _start_web_view(args.view, classifier) if args.view else None
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

    def on_result(result, line: dict) -> None:  # noqa: ANN001 - edge.runtime.engine.Result
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
    try:
        with _stop_on_signals(runtime.stop), _reopen_on_sighup(sink):
            stats = runtime.run()
    finally:
        if view is not None:
            view.unfollow()
        if web is not None:
            web.close()
        if sink is not None:
            sink.close()
        classifier.close()
    frames = stats.frames
    print(
        f"ecg-edge run: stopped ({stats.stop_reason or 'done'}) after {stats.as_dict()['elapsed_s']:.1f} s: "
        f"{stats.windows} windows ({stats.windows_ok} ok), {frames.frames_ok} frames, {frames.errors} bad frames, "
        f"{frames.frames_lost} lost by seq, {stats.missing_samples} missing samples, "
        f"{stats.reconnects} reconnects, {stats.reconfigurations} reconfigurations",
        file=sys.stderr,
        flush=True,
    )
    return 0


def _start_web_view(address: str, classifier):  # noqa: ANN001, ANN202 - edge.runtime.engine.Classifier -> WebView
    """Serve the bedside page at ``address`` (HOST:PORT); its URL goes to stderr."""
    from edge.views.webview import WebView, parse_view_address

    try:
        host, port = parse_view_address(address)
    except ValueError as exc:
        raise _command_error(str(exc)) from None
    web = WebView(host, port, labels=classifier.labels, bundle=classifier.bundle_id, warning=classifier.bundle.warning)
    try:
        url = web.start()
    except OSError as exc:
        raise _command_error(f"cannot serve the web view at {address}: {exc.strerror or exc}") from None
    print(f"ecg-edge run: bedside view at {url}", file=sys.stderr, flush=True)
    return web


# -- classify ----------------------------------------------------------------------------------------
def add_classify_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "classify",
        help="classify ECG files (WFDB, .npy, CSV) window by window",
        description="Classify every window of the bundle's length (10 s) of each file, with the same code as "
        "the live stream. WFDB records keep their header's lead names and any sampling rate; .npy arrays are "
        "[leads, samples] in mV and need --fs; CSV files have a header row of lead names (mV) and an optional "
        "'time' column in seconds (else --fs).",
        epilog="examples:  ecg-edge classify records500/00000/00001_hr   |   "
        "ecg-edge classify ecg.npy --fs 500 --leads I,II,V1,V2,V3,V4,V5,V6 --json",
    )
    p.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="WFDB record (with or without .hea), .npy, .csv"
    )
    p.add_argument("--json", action="store_true", help="one contract-5 JSON object per window")
    p.add_argument(
        "--hop", type=_positive, help="seconds between window starts (default: the window, no overlap)"
    )
    p.add_argument(
        "--whole",
        action="store_true",
        help="one result per file: the mean embedding of its good windows, scored like a window",
    )
    p.add_argument("--fs", type=_positive, help="sampling rate in Hz (.npy, CSV without a time column)")
    p.add_argument("--leads", help="comma-separated channel names for .npy/CSV, e.g. I,II,V1,V2,V3,V4,V5,V6")
    p.add_argument(
        "--report",
        type=Path,
        metavar="OUT.pdf|OUT.png",
        help="draw the 12-lead report (3x4 leads and a lead-II rhythm strip at 25 mm/s, 10 mm/mV, with the "
        "measurements and the Japanese findings) of the file's first good window (with --whole: the file's "
        "result); one FILE only; needs the report extra (matplotlib)",
    )
    from edge.cli.record_args import add_patient_args, add_report_scale_args

    add_report_scale_args(p)
    add_patient_args(p)
    _add_backend_args(p)
    p.set_defaults(func=cmd_classify)


def _file_windows(classifier, rec, hop_s: float | None) -> list:  # noqa: ANN001
    """(start, Result) of every window of a recording (``Classifier.record_windows``)."""
    try:
        windows = classifier.record_windows(rec.x_mv, rec.fs, rec.leads, hop_s)
    except ValueError as exc:  # shorter than a window
        raise _command_error(f"{rec.source}: {exc}") from None
    return [(r.window_start_sample, r) for r in windows]


def _whole(classifier, windows: list) -> object:  # noqa: ANN001
    """The file's result (``Classifier.classify_record``): mean embedding, combined measurements."""
    return classifier.classify_record(windows=[r for _, r in windows])


def _table_lines(classifier, rec, rows: list) -> list[str]:  # noqa: ANN001
    """The classify table: quality, top 3 (cosine), findings with why each was stated, measurements."""
    from edge.views.present import LEGEND, describe_quality, format_measurements, why_text
    from edge.views.terminal import display_width, pad

    by_id = {lb["id"]: lb for lb in classifier.labels}
    header = ("開始", "信号品質", "上位3件 (コサイン)", "所見 [根拠]")
    table = [header]
    for start, r in rows:
        top = (
            "  ".join(f"{t['ja']}{' 未検証' if t.get('zero_shot') else ''} {t['score']:.3f}" for t in r.top[:3])
            if not r.skipped
            else "-"
        )
        found = [
            by_id.get(i, {}).get("ja", i)
            + (" (未検証)" if i in r.zero_shot_findings else "")  # never trained: listed apart, last
            + (f" [{why_text(r.why[i])}]" if i in r.why else "")
            for i in [*r.findings, *r.zero_shot_findings]
        ]
        found = ", ".join(found) or "-"
        when = "記録全体" if start is None else f"{start / rec.fs:.1f} s"
        table.append((when, describe_quality(r.quality), top, found))
        if not r.skipped:
            table.append(("", "", "計測値: " + format_measurements(r.measurements), ""))
    widths = [max(display_width(row[i]) for row in table) for i in range(len(header))]
    lines = [f"{rec.source}  ({len(rec.leads)} channels, {rec.fs:g} Hz, {rec.duration_s:.1f} s)"]
    lines += ["  " + "  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines += ["  " + line for line in LEGEND["ja"][:2]]
    if any(r.zero_shot_findings or any(t.get("zero_shot") for t in r.top[:3]) for _, r in rows):
        lines.append("  " + LEGEND["ja"][2])
    return lines


@_user_errors
def cmd_classify(args: argparse.Namespace) -> int:
    from edge.readers.records import RecordError, read_recording
    from edge.runtime.engine import Classifier

    leads = [s.strip() for s in args.leads.split(",")] if args.leads else None
    if args.report is not None and len(args.files) != 1:
        raise _command_error("--report draws one record: give one FILE")
    if args.report is not None and args.report.suffix.lower() not in (".pdf", ".png"):
        raise _command_error(f"--report {args.report}: the report is a .pdf or a .png file")
    if args.report is not None:  # before any work: a missing matplotlib must not come after the table
        from edge.views.report import ReportError, check_report_dependencies

        try:
            check_report_dependencies()
        except ReportError as exc:
            raise _command_error(str(exc)) from None
    from edge.cli.record_args import patient_override

    given = patient_override(args)
    bundle = resolve_bundle(args.bundle)
    failed = 0
    out = _utf8_stdout()
    with Classifier.from_bundle(bundle, backend=args.backend, threads=args.threads, trust=_trust(args)) as classifier:
        for path in args.files:
            try:
                rec = read_recording(path, fs=args.fs, leads=leads)
                rec.patient = rec.patient.merged(given)
                windows = list(_file_windows(classifier, rec, args.hop))
            except (RecordError, UsageError, ValueError) as exc:
                _print_error(str(exc))
                failed += 1
                continue
            rows = [(None, _whole(classifier, windows))] if args.whole else windows
            if args.json:
                for start, r in rows:
                    extra = {"whole": True, "windows": len(windows)} if args.whole else {}
                    extra.update(rec.patient.json_fields())
                    line = r.to_json_dict(str(path), 0 if start is None else start, rec.fs, **extra)
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
            else:
                out.write("\n".join(_table_lines(classifier, rec, rows)) + "\n")
            out.flush()
            if args.report is not None:
                _write_report(args.report, classifier, rec, windows, rows[0][1] if args.whole else None, args)
    return 1 if failed else 0


def _write_report(path: Path, classifier, rec, windows: list, whole=None, args=None) -> None:  # noqa: ANN001
    """The report of the first good window (or the first window), with ``whole``'s result if given."""
    from edge.views.report import ReportError, write_report

    start, result = next(((s, r) for s, r in windows if not r.skipped), windows[0])
    width = classifier.window_samples(rec.fs)
    try:
        write_report(
            path,
            rec.x_mv[:, start : start + width],
            rec.fs,
            rec.leads,
            whole if whole is not None else result,
            source=str(rec.source),
            labels=classifier.labels,
            window_start_s=start / rec.fs,
            patient=rec.patient,
            speed=getattr(args, "report_speed", 25.0),
            gain=getattr(args, "report_gain", 10.0),
        )
    except ReportError as exc:
        raise _command_error(str(exc)) from None
    except OSError as exc:
        raise _command_error(f"cannot write --report {path}: {exc.strerror or exc}") from None
    print(f"ecg-edge classify: report written to {path}", file=sys.stderr, flush=True)


# -- info --------------------------------------------------------------------------------------------
def add_info_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="show a bundle's manifest",
        description="Verify a bundle (every file's sha256) and show its manifest: files, signal contract, model "
        "input and output, quantization and its measured agreement with fp32, labels and thresholds, text "
        "encoder, provenance and metrics.",
    )
    p.add_argument("--bundle", type=Path, help=BUNDLE_HELP)
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    _add_trust_arg(p)
    p.set_defaults(func=cmd_info)


@_user_errors
def cmd_info(args: argparse.Namespace) -> int:
    from edge.bundle.loader import load_bundle
    from edge.cli.info import describe_bundle

    with load_bundle(resolve_bundle(args.bundle), verify=True, trust=_trust(args)) as bundle:
        if args.json:
            _utf8_stdout().write(json.dumps(bundle.manifest, ensure_ascii=False, indent=2) + "\n")
        else:
            _utf8_stdout().write(describe_bundle(bundle, args.bundle or resolve_bundle(None)) + "\n")
    return 0


# -- labels --bundle ---------------------------------------------------------------------------------
def add_bundle_labels_argument(p: argparse.ArgumentParser) -> None:
    """``ecg-edge labels --bundle B``: list the bundle's labels with their thresholds instead."""
    p.add_argument(
        "--bundle",
        type=Path,
        metavar="PATH",
        help="list this bundle's labels (row order) with thresholds, including new labels",
    )


@_user_errors
def cmd_bundle_labels(args: argparse.Namespace) -> int:
    from edge.bundle.loader import load_bundle
    from edge.cli.info import bundle_label_rows, filter_labels, zero_shot_note

    with load_bundle(resolve_bundle(args.bundle), verify=True, trust=_trust(args)) as bundle:
        labels = filter_labels(bundle.labels, getattr(args, "query", None), getattr(args, "category", None))
        if not labels:
            raise _command_error(f"no label of the bundle matches {args.query!r}")
        if getattr(args, "json", False):
            _utf8_stdout().write(json.dumps(labels, ensure_ascii=False, indent=2) + "\n")
        else:
            _utf8_stdout().write(bundle_label_rows(labels) + "\n" + zero_shot_note(labels, bundle.manifest))
    return 0


RUNTIME_SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_run_parser,
    add_classify_parser,
    add_info_parser,
)
