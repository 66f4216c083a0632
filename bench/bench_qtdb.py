"""Delineation against cardiologists on the QT Database; writes BENCHMARKS.md and docs/measurements.md.

    python bench/bench_qtdb.py --data ../shared/data [--records 105] [--cache runs/qtdb_cache]

1. Per boundary (P on, P off, QRS on, QRS off, T end), scored as the literature does (bench/qtdb_score.py):
   only where annotator 1 (``.q1c``) marked the boundary, beats matched by their QRS peak (150 ms);
   sensitivity and the error (automatic - cardiologist, ms): pooled mean ± SD over beats and the SD averaged
   over records (Martinez et al. 2004's convention, their figures beside). Three delineators on the same
   beats: the device (``edge.dsp.delineate``: every beat, both leads, combined by its robust rule), ecgpuwave
   (``.pu``, its two leads combined by the same rule) and the ``ecgdeli`` package (ECGdeli's Python port,
   its own multi-lead consensus; run on the annotated stretch of each record, cached under ``--cache``).
   Rows: the tuning half (records at even positions of RECORDS: the device's thresholds were chosen there),
   the held-out half (odd positions) and all.
2. Global intervals per annotated beat (PR = QRS on - P on, QRS, QT = T end - QRS on) against the
   cardiologist's, with the IEC 60601-2-25 tolerances (mean 10/10/25 ms, SD 10/10/30 ms).
3. Beat detection (``edge.dsp.beats.detect_beats``, both leads, whole 15-min records) against ``.atr``
   (81 records; AAMI EC57, 150 ms), and against the q1c-annotated beats of all records (Se).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qtdb_score as q  # noqa: E402  (bench/qtdb_score.py, beside this script)
from report import REPO, machine, machine_line, write_section  # noqa: E402

from export.gate import wilson_interval  # noqa: E402
from training.metrics import ec57_match  # noqa: E402

IEC = {"pr": (10, 10), "qrs": (10, 10), "qt": (25, 30)}
NAMES = {"p_on": "P on", "p_off": "P off", "qrs_on": "QRS on", "qrs_off": "QRS off", "t_end": "T end"}
COLUMNS = {0: "p_on", 2: "p_off", 3: "qrs_on", 7: "qrs_off", 11: "t_end"}  # ecgdeli FPT columns


def ecgdeli_delineation(rec: q.Record, cache: Path) -> list[dict | None]:
    """ecgdeli's consensus boundaries for each q1c beat (its own filter chain, both leads)."""
    path = cache / f"{rec.name}.npy"
    peaks = np.array([b["qrs"] for b in rec.ref])
    lo = max(0, int(peaks.min() - 4 * q.FS))
    hi = min(rec.raw.shape[1], int(peaks.max() + 4 * q.FS))
    if path.exists():
        table = np.load(path)
    else:
        import ecgdeli

        sig = ecgdeli.filter_ecg(rec.raw[:, lo:hi].T, q.FS)
        table = ecgdeli.annotate(sig, q.FS).consensus.samples + lo
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, table)
    out: list[dict | None] = []
    r = table[:, 5]
    for p in peaks:
        ok = np.isfinite(r)
        if not ok.any():
            out.append(None)
            continue
        j = int(np.nanargmin(np.where(ok, np.abs(r - p), np.inf)))
        if abs(r[j] - p) > q.MATCH_MS * q.FS / 1000:
            out.append(None)
            continue
        out.append(
            {
                name: (None if not np.isfinite(table[j, c]) else float(table[j, c]))
                for c, name in COLUMNS.items()
            }
        )
    return out


def _row(label: str, s: dict) -> str:
    cells = []
    for b in q.BOUNDARIES:
        v = s[b]
        cells.append(f"{100 * v['se']:.1f} | {v['mean']:+.1f} ± {v['sd']:.1f} ({v['sd_rec']:.1f})")
    return f"| {label} | " + " | ".join(cells) + " |"


def boundary_table(recs: list[q.Record], found: dict[str, dict[str, list]]) -> list[str]:
    tune, hold = q.split([r.name for r in recs])
    head = " | ".join(f"{NAMES[b]} Se % | {NAMES[b]} mean ± SD (rec. SD)" for b in q.BOUNDARIES)
    lines = [f"| delineator, records | {head} |", "|---|" + "---:|" * (2 * len(q.BOUNDARIES))]
    n_ann = {}
    for method, f in found.items():
        for part, names in (("tuning half", tune), ("held-out half", hold), ("all", [r.name for r in recs])):
            rs = [r for r in recs if r.name in names]
            s = q.summary(q.errors(rs, {r.name: f[r.name] for r in rs}))
            lines.append(_row(f"{method}, {part} ({len(rs)})", s))
            if part == "all":
                n_ann = {b: s[b]["n"] for b in q.BOUNDARIES}
    m = q.MARTINEZ_2004
    lines.append(
        "| Martinez et al. 2004 (published, QTDB) | "
        + " | ".join(f"– | {m[b][0]:+.1f} ± {m[b][1]:.1f}" for b in q.BOUNDARIES)
        + " |"
    )
    lines.append(
        "| CSE tolerance (2 SD of the annotators) | "
        + " | ".join(f"– | ± {q.CSE_TOLERANCE_2SD[b]:.1f}" for b in q.BOUNDARIES)
        + " |"
    )
    lines += [
        "",
        "Annotated boundaries (all records): "
        + ", ".join(f"{NAMES[b]} {n_ann[b]}" for b in q.BOUNDARIES)
        + ".",
    ]
    return lines


def interval_table(recs: list[q.Record], found: dict[str, dict[str, list]]) -> list[str]:
    lines = [
        "| delineator | PR N | PR mean ± SD | QRS N | QRS mean ± SD | QT N | QT mean ± SD | within IEC (PR, QRS, QT) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for method, f in found.items():
        err: dict[str, list[float]] = {"pr": [], "qrs": [], "qt": []}
        for rec in recs:
            for ref, dev in zip(rec.ref, f[rec.name], strict=True):
                if dev is None:
                    continue
                pairs = {
                    "pr": (("qrs_on", "p_on"), 1),
                    "qrs": (("qrs_off", "qrs_on"), 1),
                    "qt": (("t_end", "qrs_on"), 1),
                }
                for k, ((a, b), _) in pairs.items():
                    if None in (ref[a], ref[b], dev.get(a), dev.get(b)):
                        continue
                    err[k].append(((dev[a] - dev[b]) - (ref[a] - ref[b])) * 1000.0 / q.FS)
        cells, ok = [], []
        for k in ("pr", "qrs", "qt"):
            v = np.asarray(err[k])
            cells += [str(v.size), f"{v.mean():+.1f} ± {v.std():.1f}" if v.size else "–"]
            ok.append("yes" if v.size and abs(v.mean()) <= IEC[k][0] and v.std() <= IEC[k][1] else "no")
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {', '.join(ok)} |")
    lines.append("| IEC 60601-2-25 tolerance | | ±10, SD 10 | | ±10, SD 10 | | ±25, SD 30 | |")
    return lines


def beat_table(recs: list[q.Record]) -> list[str]:
    tp = fn = fp = 0
    n_atr = 0
    q_tp = q_n = 0
    for rec in recs:
        det = q.device_beats(rec)
        if rec.atr is not None:
            a, b, c = ec57_match(rec.atr, det, int(0.15 * q.FS))
            tp, fn, fp, n_atr = tp + a, fn + b, fp + c, n_atr + 1
        peaks = np.array([b["qrs"] for b in rec.ref])
        a, b, _ = ec57_match(peaks, det, int(0.15 * q.FS))
        q_tp, q_n = q_tp + a, q_n + a + b
    se, se_ci = tp / max(tp + fn, 1), wilson_interval(tp, tp + fn)
    pp, pp_ci = tp / max(tp + fp, 1), wilson_interval(tp, tp + fp)
    qs, qs_ci = q_tp / max(q_n, 1), wilson_interval(q_tp, q_n)
    return [
        "| reference | records | beats | TP | FN | FP | Se (95 % CI) | +P (95 % CI) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| `.atr`, whole records (EC57, 150 ms) | {n_atr} | {tp + fn} | {tp} | {fn} | {fp} | "
        f"{se:.4f} ({se_ci[0]:.4f}–{se_ci[1]:.4f}) | {pp:.4f} ({pp_ci[0]:.4f}–{pp_ci[1]:.4f}) |",
        f"| q1c-annotated beats | {len(recs)} | {q_n} | {q_tp} | {q_n - q_tp} | – | "
        f"{qs:.4f} ({qs_ci[0]:.4f}–{qs_ci[1]:.4f}) | – |",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the real data folder")
    p.add_argument(
        "--records", type=int, default=None, help="only the first N records of RECORDS (default all)"
    )
    p.add_argument(
        "--cache", type=Path, default=REPO / "runs" / "qtdb_cache", help="ecgdeli results (git-ignored)"
    )
    p.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    p.add_argument("--docs", type=Path, default=REPO / "docs" / "measurements.md")
    args = p.parse_args(argv)
    if not (args.data / "qtdb" / "RECORDS").is_file():
        print(f"error: no QT Database at {args.data / 'qtdb'}", file=sys.stderr)
        return 2
    names = q.records(args.data)[: args.records]
    t0 = time.perf_counter()
    recs, found = [], {"device": {}, "ecgpuwave (.pu)": {}, "ecgdeli 1.0 (PyPI)": {}}
    t_dev = 0.0
    for i, name in enumerate(names):
        print(f"\r{i + 1}/{len(names)} {name}    ", end="", file=sys.stderr)
        rec = q.load(args.data, name)
        q.device_beats(rec)
        t = time.perf_counter()
        found["device"][name] = q.device_delineation(rec)
        t_dev += time.perf_counter() - t
        found["ecgpuwave (.pu)"][name] = q.pu_delineation(rec)
        found["ecgdeli 1.0 (PyPI)"][name] = ecgdeli_delineation(rec, args.cache)
        rec.x = rec.raw = np.zeros((2, 0))  # keep only what the tables need
        recs.append(rec)
    print(file=sys.stderr)
    n_beats = sum(len(r.ref) for r in recs)
    cmd = "python bench/bench_qtdb.py " + " ".join(argv if argv is not None else sys.argv[1:])
    body = [
        "## Delineation against cardiologists: QT Database (`bench/bench_qtdb.py`)",
        "",
        f"Command: `{cmd.strip()}`  ",
        machine_line(machine()),
        "",
        f"{len(recs)} records, {n_beats} beats annotated by annotator 1 (`.q1c`); {time.perf_counter() - t0:.0f} s "
        f"in all (device delineation {t_dev:.1f} s). Error = automatic - cardiologist (ms): pooled mean ± SD over "
        "beats, and in brackets the SD averaged over records (the convention of Martinez et al. 2004). The "
        "device's thresholds were chosen on the tuning half (records at even positions of RECORDS); the held-out "
        "half (odd positions) was not looked at while choosing.",
        "",
        "### Per boundary",
        "",
        *boundary_table(recs, found),
        "",
        "### Global intervals per annotated beat",
        "",
        *interval_table(recs, found),
        "",
        "### Beat detection (`edge.dsp.beats.detect_beats`, both leads)",
        "",
        *beat_table(recs),
        "",
    ]
    text = "\n".join(body)
    write_section(args.markdown, "bench_qtdb", text)
    if args.docs.exists():
        write_section(args.docs, "bench_qtdb", text.replace("## Delineation", "### Delineation", 1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
