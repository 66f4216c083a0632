"""``ecg-edge classify FILE...``: files (WFDB, ``.npy``, CSV, cart formats) window by window through the same
``Classifier.classify_windows`` as the stream (``Classifier.record_windows``; ``--whole``: ``classify_record``);
JSON lines (contract 5 v3) or a table with why each finding was stated; ``--report`` draws the 12-lead page."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from edge.cli.common import (
    UsageError,
    add_backend_args,
    command_error,
    positive,
    print_error,
    resolve_bundle,
    trust_from_args,
    user_errors,
    utf8_stdout,
)

__all__ = ["add_classify_parser", "cmd_classify", "table_lines"]

log = logging.getLogger("edge.cli")


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
        "--hop", type=positive, help="seconds between window starts (default: the window, no overlap)"
    )
    p.add_argument(
        "--whole",
        action="store_true",
        help="one result per file: the mean embedding of its good windows, scored like a window",
    )
    p.add_argument("--fs", type=positive, help="sampling rate in Hz (.npy, CSV without a time column)")
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
    add_backend_args(p)
    p.set_defaults(func=cmd_classify)


def _file_windows(classifier, rec, hop_s: float | None) -> list:  # noqa: ANN001
    """(start, Result) of every window of a recording (``Classifier.record_windows``)."""
    try:
        windows = classifier.record_windows(rec.x_mv, rec.fs, rec.leads, hop_s)
    except ValueError as exc:  # shorter than a window
        raise command_error(f"{rec.source}: {exc}") from None
    return [(r.window_start_sample, r) for r in windows]


def _whole(classifier, windows: list) -> object:  # noqa: ANN001
    """The file's result (``Classifier.classify_record``): mean embedding, combined measurements."""
    return classifier.classify_record(windows=[r for _, r in windows])


def table_lines(classifier, rec, rows: list) -> list[str]:  # noqa: ANN001
    """The classify output: per window its quality, top 3 (cosine), findings with why each was stated, and
    measurements, as a block of lines that fits an 80-column terminal (edge.views.narrow)."""
    from edge.views.narrow import WIDTH, window_block, wrap
    from edge.views.present import LEGEND, describe_quality, format_measurements, why_text

    by_id = {lb["id"]: lb for lb in classifier.labels}
    lines = [f"{rec.source}  ({len(rec.leads)} channels, {rec.fs:g} Hz, {rec.duration_s:.1f} s)"]
    for start, r in rows:
        top = (
            [f"{t['ja']}{' 未検証' if t.get('zero_shot') else ''} {t['score']:.3f}" for t in r.top[:3]]
            if not r.skipped
            else []
        )
        found = [
            by_id.get(i, {}).get("ja", i)
            + (" (未検証)" if i in r.zero_shot_findings else "")  # never trained: listed apart, last
            + (f" [{why_text(r.why[i])}]" if i in r.why else "")
            for i in [*r.findings, *r.zero_shot_findings]
        ]
        when = "記録全体" if start is None else f"{start / rec.fs:.1f} s"
        measured = None if r.skipped else format_measurements(r.measurements)
        lines += window_block(when, describe_quality(r.quality), top, found, measured, WIDTH)
    legend = list(LEGEND["ja"][:2])
    if any(r.zero_shot_findings or any(t.get("zero_shot") for t in r.top[:3]) for _, r in rows):
        legend.append(LEGEND["ja"][2])
    for line in legend:
        lines += wrap(line, WIDTH, indent="    ", first="  ")
    return lines


@user_errors
def cmd_classify(args: argparse.Namespace) -> int:
    from edge.readers.records import RecordError, read_recording
    from edge.runtime.engine import Classifier

    leads = [s.strip() for s in args.leads.split(",")] if args.leads else None
    if args.report is not None and len(args.files) != 1:
        raise command_error("--report draws one record: give one FILE")
    if args.report is not None and args.report.suffix.lower() not in (".pdf", ".png"):
        raise command_error(f"--report {args.report}: the report is a .pdf or a .png file")
    if args.report is not None:  # before any work: a missing matplotlib must not come after the table
        from edge.views.report import ReportError, check_report_dependencies

        try:
            check_report_dependencies()
        except ReportError as exc:
            raise command_error(str(exc)) from None
    from edge.cli.record_args import patient_override

    given = patient_override(args)
    bundle = resolve_bundle(args.bundle)
    failed = 0
    out = utf8_stdout()
    with Classifier.from_bundle(bundle, backend=args.backend, threads=args.threads, trust=trust_from_args(args)) as classifier:
        for path in args.files:
            try:
                rec = read_recording(path, fs=args.fs, leads=leads)
                rec.patient = rec.patient.merged(given)
                classifier.patient = {"sex": rec.patient.sex, "age": rec.patient.age_years}  # criteria by sex and age
                windows = list(_file_windows(classifier, rec, args.hop))
            except (RecordError, UsageError, ValueError) as exc:
                print_error(str(exc))
                failed += 1
                continue
            rows = [(None, _whole(classifier, windows))] if args.whole else windows
            if args.json:
                for start, r in rows:
                    extra = {"whole": True, "windows": len(windows)} if args.whole else {}
                    extra.update(rec.patient.json_fields())
                    line = r.to_json(str(path), 0 if start is None else start, rec.fs, **extra)
                    out.write(json.dumps(line, ensure_ascii=False) + "\n")
            else:
                out.write("\n".join(table_lines(classifier, rec, rows)) + "\n")
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
        raise command_error(str(exc)) from None
    except OSError as exc:
        raise command_error(f"cannot write --report {path}: {exc.strerror or exc}") from None
    print(f"ecg-edge classify: report written to {path}", file=sys.stderr, flush=True)


