"""Benchmark of the measurement function (edge.dsp.measure, DESIGN.md contract 7); writes BENCHMARKS.md.

    python bench/bench_measure.py --data ../shared/data [--records 500] [--plots bench/measure_disagreements.png]

1. Beat detection on MIT-BIH record 100 against its cardiologist annotations, scored beat by beat as
   AAMI EC57 does (match window 150 ms): sensitivity and positive predictivity.
2. Intervals against the synthetic generator's own wave timings (firmware_bridge.synthetic.true_intervals),
   normal, RBBB and LBBB morphologies, 40-180 bpm, with noise and baseline wander.
3. Intervals and heart rate against neurokit2's delineation (DWT, lead II) on PTB-XL 500 Hz records: a
   reference nobody here wrote, not an oracle (toolchain notes: it misses the IEC tolerances against
   cardiologists by tens of ms). The largest disagreements are drawn for a person to judge.
4. The frontal axis against PTB-XL's `heart_axis` statements.
5. Cost: measure() per 10-s 12-lead 500 Hz window, single thread, and the whole classify_window with it.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import REPO, machine, machine_line, write_section  # bench/report.py, beside this script

from edge.dsp.beats import detect_beats  # noqa: E402
from edge.dsp.measure import measure  # noqa: E402
from export.gate import wilson_interval  # noqa: E402
from firmware_bridge.synthetic import synthesize, true_intervals  # noqa: E402
from training.metrics import ec57_match  # noqa: E402

BEAT_SYMBOLS = set("NLRBAaJSVrFejnE/fQ?")
IEC = {"pr_ms": (10, 10), "qrs_ms": (10, 10), "qt_ms": (25, 30)}
# neurokit2's "prominence" delineator (Emrich et al. 2023); its "dwt" one put R onsets inside the P wave on
# PTB-XL record 1 (R onset 973 < P offset 1004, samples), so it is not used as the reference.
NK_METHOD = "prominence"


def bench_ec57(data: Path) -> list[str]:
    import wfdb

    rec = wfdb.rdrecord(str(data / "wfdb_samples" / "100"))
    ann = wfdb.rdann(str(data / "wfdb_samples" / "100"), "atr")
    ref = np.array([s for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in BEAT_SYMBOLS])
    t0 = time.perf_counter()
    det = detect_beats(rec.p_signal.T, rec.fs)
    dt = time.perf_counter() - t0
    lines = [
        "### Beat detection, MIT-BIH record 100 (AAMI EC57, match window 150 ms)",
        "",
        "| span | reference beats | TP | FN | FP | Se (95 % CI) | +P (95 % CI) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, lo in (
        ("whole record (30 min)", 0),
        ("after the first 5 min (EC57 learning period)", 5 * 60 * rec.fs),
    ):
        r, d = ref[ref >= lo], det[det >= lo - 0.15 * rec.fs]
        tp, fn, fp = ec57_match(r, d, int(0.15 * rec.fs))
        se, pp = tp / (tp + fn), tp / (tp + fp)
        s_lo, s_hi = wilson_interval(tp, tp + fn)
        p_lo, p_hi = wilson_interval(tp, tp + fp)
        lines.append(
            f"| {name} | {r.size} | {tp} | {fn} | {fp} | {se:.4f} ({s_lo:.4f}-{s_hi:.4f}) | {pp:.4f} ({p_lo:.4f}-{p_hi:.4f}) |"
        )
    lines += ["", f"Two leads (MLII, V5), 360 Hz; detection of the whole record took {dt:.2f} s.", ""]
    return lines


def bench_synthetic() -> list[str]:
    lines = [
        "### Intervals against the synthetic generator's own timings",
        "",
        "Noise 0.02 mV white + 0.1 mV respiration-like baseline wander, RR constant, 4 seeds per cell. Truth:",
        "`true_intervals` (P and QRS boundaries at 5 % of the noise-free wave group's spatial magnitude, T end",
        "by the tangent method). Cells: mean error (ours - truth) ms, [min, max]; `null` counts windows where",
        "the value was reported as not measurable.",
        "",
        "| morphology | bpm | PR | QRS | QT | HR error (bpm) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for morph, rhythm in (("normal", "sinus"), ("rbbb", "rbbb"), ("lbbb", "lbbb")):
        for hr in (40, 60, 90, 120, 150, 180):
            truth = true_intervals(morph, 60.0 / hr)
            errs = {k: [] for k in ("pr_ms", "qrs_ms", "qt_ms")}
            nulls = dict.fromkeys(errs, 0)
            hr_err = []
            for seed in range(4):
                x = synthesize(
                    rhythm=rhythm,
                    heart_rate_bpm=hr,
                    hrv=0.0,
                    noise_mv=0.02,
                    baseline_wander_mv=0.1,
                    seed=seed,
                )
                m = measure(x, 500.0)
                hr_err.append(m["hr_bpm"] - hr if m["hr_bpm"] is not None else np.nan)
                for k in errs:
                    if m[k] is None:
                        nulls[k] += 1
                    else:
                        errs[k].append(m[k] - truth[k])

            def cell(k: str, errs: dict = errs, nulls: dict = nulls) -> str:
                e = np.asarray(errs[k])
                txt = f"{e.mean():+.0f} [{e.min():+.0f}, {e.max():+.0f}]" if e.size else "—"
                return txt + (f", null {nulls[k]}" if nulls[k] else "")

            lines.append(
                f"| {morph} | {hr} | {cell('pr_ms')} | {cell('qrs_ms')} | {cell('qt_ms')} | {np.nanmax(np.abs(hr_err)):.1f} |"
            )
    return lines + [""]


def _nk_intervals(lead: np.ndarray, fs: float) -> dict:
    import warnings

    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = nk.ecg_clean(lead, sampling_rate=int(fs))
        _, info = nk.ecg_peaks(clean, sampling_rate=int(fs))
        r = np.asarray(info["ECG_R_Peaks"])
        out = {"hr_bpm": 60.0 * fs / np.diff(r).mean() if r.size >= 2 else None}
        try:
            _, waves = nk.ecg_delineate(clean, r, sampling_rate=int(fs), method=NK_METHOD)
        except Exception:  # noqa: BLE001 - neurokit2 raises bare exceptions on short or odd records
            return out

    def med(a: str, b: str) -> float | None:
        x = np.asarray(waves.get(a, []), float)
        y = np.asarray(waves.get(b, []), float)
        n = min(x.size, y.size)
        d = (y[:n] - x[:n]) * 1000.0 / fs  # the arrays are aligned beat by beat (NaN where not found)
        d = d[np.isfinite(d) & (d > 0)]
        return float(np.median(d)) if d.size >= 3 else None

    out["pr_ms"] = med("ECG_P_Onsets", "ECG_R_Onsets")
    out["qrs_ms"] = med("ECG_R_Onsets", "ECG_R_Offsets")
    out["qt_ms"] = med("ECG_R_Onsets", "ECG_T_Offsets")
    return out


def _nk_version() -> str:
    import neurokit2

    return neurokit2.__version__


def bench_neurokit(data: Path, n_records: int, plot: Path | None) -> list[str]:
    import wfdb

    with open(data / "ptbxl" / "ptbxl_database.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:n_records]
    pairs: dict[str, list[tuple[float, float, str]]] = {k: [] for k in ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms")}
    axis_ok = axis_n = 0
    axis_ranges = {
        "ALAD": (-180, -25),
        "LAD": (-45, 10),
        "MID": (-35, 100),
        "RAD": (80, 180),
        "ARAD": (80, 180),
    }
    kept = {}
    for i, r in enumerate(rows):
        rec = wfdb.rdrecord(str(data / "ptbxl" / r["filename_hr"]))
        x = rec.p_signal.T.astype(np.float32)
        ours = measure(x, rec.fs, rec.sig_name)
        theirs = _nk_intervals(x[rec.sig_name.index("II")], rec.fs)
        for k in pairs:
            if ours.get(k) is not None and theirs.get(k) is not None:
                pairs[k].append((ours[k], theirs[k], r["ecg_id"]))
        if r.get("heart_axis") in axis_ranges and ours["axis_deg"] is not None:
            lo, hi = axis_ranges[r["heart_axis"]]
            axis_ok += lo <= ours["axis_deg"] <= hi
            axis_n += 1
        kept[r["ecg_id"]] = (r["filename_hr"], ours, theirs)
        if (i + 1) % 50 == 0:
            print(f"  neurokit2 comparison: {i + 1}/{len(rows)} records", file=sys.stderr)
    lines = [
        f"### Against neurokit2 on PTB-XL ({len(rows)} records at 500 Hz, ecg_id order)",
        "",
        f"neurokit2 {_nk_version()} (`ecg_clean`, `ecg_peaks`, `ecg_delineate(method='{NK_METHOD}')` on lead II;",
        "per-record median over beats) against ours (12 leads, representative beat, CSE-style global",
        "intervals). Conventions differ: neurokit2's prominence method puts the QRS onset at the Q peak and the",
        "offset at the S peak (so its QRS is shorter than an onset-to-offset QRS), and it reads one lead, where",
        "global intervals take the earliest onset and latest offset over all leads.",
        "",
        "| quantity | records both measured | mean difference (ours - nk) | SD | within IEC tolerance of nk |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, v in pairs.items():
        if not v:
            continue
        d = np.array([a - b for a, b, _ in v])
        if k == "hr_bpm":
            within = np.mean([abs(a - b) <= max(0.1 * b, 5.0) for a, b, _ in v])
            unit = "bpm"
        else:
            within = np.mean(np.abs(d) <= IEC[k][0])
            unit = "ms"
        lines.append(f"| {k} | {len(v)} | {d.mean():+.1f} {unit} | {d.std():.1f} {unit} | {within:.1%} |")
    lo, hi = wilson_interval(axis_ok, axis_n)
    lines += [
        "",
        f"Frontal axis vs PTB-XL `heart_axis` (ALAD < -25, LAD -45..10, MID -35..100, RAD/ARAD > 80 deg): "
        f"{axis_ok}/{axis_n} agree ({axis_ok / max(axis_n, 1):.1%}, 95 % CI {lo:.1%}-{hi:.1%}).",
        "",
    ]
    if plot is not None:
        worst = []
        for k in ("qrs_ms", "qt_ms", "pr_ms"):
            v = sorted(pairs[k], key=lambda t: -abs(t[0] - t[1]))[:2]
            worst += [(k, ecg) for _, _, ecg in v]
        _plot_disagreements(data, kept, worst, plot)
        lines.append(
            f"The largest disagreements are drawn in `{plot.relative_to(REPO)}` (lead II, both readings)."
        )
        lines.append("")
    return lines


def _plot_disagreements(data: Path, kept: dict, worst: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import wfdb

    fig, axes = plt.subplots(len(worst), 1, figsize=(11, 2.4 * len(worst)))
    for ax, (key, ecg) in zip(np.atleast_1d(axes), worst, strict=True):
        fname, ours, theirs = kept[ecg]
        rec = wfdb.rdrecord(str(data / "ptbxl" / fname))
        lead = rec.p_signal[:, rec.sig_name.index("II")]
        t = np.arange(lead.size) / rec.fs
        ax.plot(t, lead, lw=0.7, color="k")
        ax.set_xlim(0, 10)
        ax.set_title(
            f"ecg_id {ecg}: {key} ours {ours[key]} / neurokit2 {theirs[key]:.0f}; "
            f"ours QRS {ours['qrs_ms']} QT {ours['qt_ms']} PR {ours['pr_ms']}",
            fontsize=9,
        )
        for b in ours["beats"]:
            ax.axvline(b / rec.fs, color="tab:blue", lw=0.5, alpha=0.5)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def bench_cost(runs: int) -> list[str]:
    x = synthesize(rhythm="sinus", seed=0)
    measure(x, 500.0)
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        measure(x, 500.0)
        ts.append(time.perf_counter() - t0)
    lines = [
        "### Cost",
        "",
        f"`measure()` on one 10-s 12-lead 500 Hz window, single thread: median {np.median(ts) * 1e3:.2f} ms "
        f"(p90 {np.percentile(ts, 90) * 1e3:.2f} ms) over {runs} runs.",
    ]
    import tempfile

    window = Path(tempfile.mkdtemp()) / "window.npy"
    np.save(window, x)  # the child reads the window: it imports what the device imports, no generator
    code = (
        "import time, numpy as np\n"
        "from edge.runtime.engine import Classifier\n"
        "clf = Classifier.from_bundle()\n"
        f"x = np.load({str(window)!r})\n"
        "clf.classify_window(x, 500.0)\n"
        "ts = []\n"
        f"for _ in range({runs}):\n"
        "    t = time.perf_counter(); r = clf.classify_window(x, 500.0); ts.append(time.perf_counter() - t)\n"
        "assert r.measurements['hr_bpm'] is not None\n"
        "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1]\n"
        "print(np.median(ts) * 1e3, int(hwm) / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ).stdout.split()
    lines += [
        f"Whole `classify_window` (quality, signal contract, measurements, int8 inference, findings) on the same "
        f"window with the default bundle, in a fresh process: median {float(out[0]):.2f} ms; that process's "
        f"resident memory high-water mark (VmHWM) {float(out[1]):.1f} MiB.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the real data folder")
    p.add_argument("--records", type=int, default=500, help="PTB-XL records for the neurokit2 comparison")
    p.add_argument("--runs", type=int, default=200, help="timing repetitions")
    # real ECGs are drawn there: a git-ignored folder, never committed (the data's licence and the project's rule)
    p.add_argument("--plots", type=Path, default=REPO / "runs" / "bench" / "measure_disagreements.png")
    p.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    args = p.parse_args(argv)
    cmd = "python bench/bench_measure.py " + " ".join(argv if argv is not None else sys.argv[1:])
    body = [
        "## Measurements (`bench/bench_measure.py`)",
        "",
        f"Command: `{cmd.strip()}`  ",
        machine_line(machine()),
        "",
    ]
    print("EC57 ...", file=sys.stderr)
    body += bench_ec57(args.data)
    print("synthetic ...", file=sys.stderr)
    body += bench_synthetic()
    print("neurokit2 ...", file=sys.stderr)
    body += bench_neurokit(args.data, args.records, args.plots)
    print("cost ...", file=sys.stderr)
    body += bench_cost(args.runs)
    text = "\n".join(body)
    write_section(args.markdown, "bench_measure", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
