"""CPU cost of the per-window measurement pipeline, and equality with an earlier commit (issue #23 item 5).

    python bench/profile_measure.py --data ../shared/data [--against COMMIT] [--ptbxl 100] [--repeats 3]
                                    [--profile 50] [--cache runs/profile_windows.npz]

The windows: PTB-XL 500 Hz (first ``--ptbxl`` records, 12 leads), the Challenge records (cinc2021 +
challenge2020, first 10 s), QTDB (2 leads, 250 Hz, a 10-s window at 60 s and at 300 s of each of the first
``--qtdb`` records that have a standard lead) and the synthetic generator (every rhythm, 3 seeds: the AV-block grid is fitted there).

``--against COMMIT``: the measurement modules of that commit (edge/dsp/measure, delineate, morphology,
beat_types, atrial, pacing, beats, measurements and edge/interpret/rhythm) are loaded beside the working
tree's under another package name, every window is run through both, interleaved (old, new, old, new ...) in
one process, and the CPU time (``time.process_time``: the machine is shared, so wall time is not compared) is
reported per window, median over the windows of the per-window minimum over ``--repeats``. Every key of
``measure()`` (recursively) and the rhythm's statement, modifiers, counts, detail and values are compared;
float differences are listed with their size. ``--profile N``: cProfile of the working tree's
``measure()`` + ``analyse_rhythm`` over the first N PTB-XL windows (the top functions by own time).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from report import lead_names, median_ci  # bench/report.py, beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODULES = {
    "edge.dsp.measure": "edge/dsp/measure.py",
    "edge.dsp.delineate": "edge/dsp/delineate.py",
    "edge.dsp.morphology": "edge/dsp/morphology.py",
    "edge.dsp.beat_types": "edge/dsp/beat_types.py",
    "edge.dsp.atrial": "edge/dsp/atrial.py",
    "edge.dsp.pacing": "edge/dsp/pacing.py",
    "edge.dsp.beats": "edge/dsp/beats.py",
    "edge.dsp.measurements": "edge/dsp/measurements.py",
    "edge.interpret.rhythm": "edge/interpret/rhythm.py",
}
REF_PACKAGE = "_measure_ref"


def load_reference(commit: str, patch: Path | None = None) -> tuple:
    """``(measure, analyse_rhythm)`` of ``commit``'s measurement modules, imported as ``_measure_ref.*``
    (the modules they import from outside the set, e.g. edge.dsp.signal, are the working tree's).

    ``patch``: a diff (``git diff`` format, paths from the repository root) applied to those modules first,
    e.g. another change in progress in the working tree that the comparison must not count."""
    root = Path(tempfile.mkdtemp(prefix="measure_ref_"))
    src_root = root / "src"
    for path in MODULES.values():
        text = subprocess.run(
            ["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        (src_root / path).parent.mkdir(parents=True, exist_ok=True)
        (src_root / path).write_text(text)
    if patch is not None and patch.read_text().strip():  # an empty diff: nothing to apply
        subprocess.run(["git", "apply", "--unsafe-paths", str(patch.resolve())], cwd=src_root, check=True)
    pkg = root / REF_PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for dotted, path in MODULES.items():
        src = (src_root / path).read_text()
        for other in MODULES:
            src = re.sub(rf"\b{re.escape(other)}\b", f"{REF_PACKAGE}.{other.rsplit('.', 1)[1]}", src)
        (pkg / f"{dotted.rsplit('.', 1)[1]}.py").write_text(src)
    sys.path.insert(0, str(root))
    m = importlib.import_module(f"{REF_PACKAGE}.measure")
    r = importlib.import_module(f"{REF_PACKAGE}.rhythm")
    return m.measure, r.analyse_rhythm


def load_windows(
    data: Path, n_ptbxl: int, n_qtdb: int
) -> list[tuple[str, str, np.ndarray, float, list[str]]]:
    """``(source, name, x[C, T] mV, fs, leads)`` of every window (see the module docstring)."""
    import wfdb

    from edge.dsp.signal import LEADS
    from firmware_bridge.synthetic import RHYTHMS, synthesize

    out = []
    heads = sorted((data / "ptbxl" / "records500").rglob("*_hr.hea"))[:n_ptbxl]
    for hea in heads:
        rec = wfdb.rdrecord(str(hea.with_suffix("")))
        out.append(
            ("ptbxl", hea.stem, rec.p_signal.T.astype(np.float32), float(rec.fs), lead_names(rec.sig_name))
        )
    for folder in ("cinc2021", "challenge2020"):
        for hea in sorted((data / folder).glob("*.hea")):
            rec = wfdb.rdrecord(str(hea.with_suffix("")))
            n = int(10 * rec.fs)
            x = rec.p_signal[:n].T.astype(np.float32)
            out.append((folder, hea.stem, x, float(rec.fs), lead_names(rec.sig_name)))
    records = (data / "qtdb" / "RECORDS").read_text().split()[:n_qtdb]
    for name in records:
        rec = wfdb.rdrecord(str(data / "qtdb" / name))
        if not set(lead_names(rec.sig_name)) & set(LEADS):
            continue  # Holter leads without a standard name (CM5, D3, ...): measure() reads none of them
        win = int(10 * rec.fs)
        for start_s in (60, 300):
            a = int(start_s * rec.fs)
            x = rec.p_signal[a : a + win].T.astype(np.float64)
            if x.shape[1] == win and np.isfinite(x).all():
                out.append(("qtdb", f"{name}@{start_s}", x, float(rec.fs), lead_names(rec.sig_name)))
    for rhythm in RHYTHMS:
        if rhythm == "wide_qrs":
            continue
        for seed in (0, 1, 2):
            x = synthesize(rhythm=rhythm, fs=500, seed=seed, duration_s=10.0)
            out.append(("synthetic", f"{rhythm}/{seed}", x, 500.0, None))
    return out


def _diff(a, b, path: str, out: list[tuple[str, str, float]]) -> None:
    """Differences between two results: ``(path, kind, size)`` (size: the float difference, else nan)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append((f"{path}.{k}", "missing", np.nan))
            else:
                _diff(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append((path, f"length {len(a)} != {len(b)}", np.nan))
        else:
            for i, (u, v) in enumerate(zip(a, b, strict=True)):
                _diff(u, v, f"{path}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float) and not isinstance(a, bool):
        if not (a == b or (np.isnan(a) and np.isnan(b))):
            out.append((path, "float", abs(a - b)))
    elif a != b or type(a) is not type(b):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            if a != b:
                out.append((path, "number", abs(float(a) - float(b))))
        else:
            out.append((path, f"{a!r} != {b!r}", np.nan))


def _rhythm_dict(r) -> dict:
    return {
        "statement": r.statement,
        "modifiers": list(r.modifiers),
        "counts": dict(r.counts),
        "detail": r.detail,
        "reason": r.reason,
        "values": dict(r.values),
    }


def _cpu(fn, *args) -> tuple[float, object]:
    t0 = time.process_time()
    res = fn(*args)
    return time.process_time() - t0, res


def compare(windows, ref, repeats: int) -> dict:
    from edge.dsp.measure import measure
    from edge.interpret.rhythm import analyse_rhythm

    ref_measure, ref_rhythm = ref
    times = {k: [] for k in ("old_measure", "new_measure", "old_rhythm", "new_rhythm")}
    diffs: dict[str, list] = {}
    by_source: dict[str, int] = {}
    for i, (source, name, x, fs, leads) in enumerate(windows):
        by_source[source] = by_source.get(source, 0) + 1
        best = dict.fromkeys(times, np.inf)
        for rep in range(repeats):
            # old and new take turns at going first (the second call finds warm caches)
            for which in ("old", "new") if (i + rep) % 2 == 0 else ("new", "old"):
                fm, fr = (ref_measure, ref_rhythm) if which == "old" else (measure, analyse_rhythm)
                t, m = _cpu(fm, x, fs, leads)
                best[f"{which}_measure"] = min(best[f"{which}_measure"], t)
                t, r = _cpu(fr, m, fs)
                best[f"{which}_rhythm"] = min(best[f"{which}_rhythm"], t)
                if which == "old":
                    m_old, r_old = m, r
                else:
                    m_new, r_new = m, r
        for k, v in best.items():
            times[k].append(v * 1000.0)
        found: list = []
        _diff(dict(m_old), dict(m_new), "measure", found)
        _diff(_rhythm_dict(r_old), _rhythm_dict(r_new), "rhythm", found)
        if found:
            diffs[f"{source}/{name}"] = found
    return {"times": {k: np.asarray(v) for k, v in times.items()}, "diffs": diffs, "by_source": by_source}


# (module, function, label): the stages of measure() + analyse_rhythm, nested ones indented in the table
STAGES = (
    ("edge.dsp.measure", "filter_resample_bands", "band-pass + resample, 2 bands (edge.dsp.signal)"),
    ("edge.dsp.measure", "detection_envelope", "detection envelope"),
    ("edge.dsp.measure", "pick_beats", "beat picking"),
    ("edge.dsp.measure", "annotate_beats", "annotate_beats (beat types, P per beat, pacing, atrial)"),
    ("edge.dsp.beat_types", "type_beats", "  type_beats"),
    ("edge.dsp.beat_types", "_align", "    of which alignment"),
    ("edge.dsp.atrial", "atrial_activity", "  atrial_activity"),
    ("edge.dsp.pacing", "find_spikes", "  find_spikes (pacing)"),
    ("edge.dsp.measure", "_representative", "representative beat"),
    ("edge.dsp.measure", "_delineate", "delineation (wavelet, 12 leads, combination)"),
    ("edge.dsp.measure", "delineate_leads", "  delineate_leads (every lead)"),
    ("edge.dsp.measure", "lead_matrix", "per-lead matrix"),
    ("edge.dsp.measure", "axes_and_voltages", "axes and voltages (edge.dsp.morphology)"),
)


def stage_times(windows) -> tuple[list[tuple[str, float]], float, float]:
    """Mean CPU ms per window of each stage (:data:`STAGES`) of the working tree, and of the whole measure()
    and analyse_rhythm: every window run twice, the stages timed by wrappers put in for the run."""
    from edge.dsp.measure import measure
    from edge.interpret.rhythm import analyse_rhythm

    acc = {label: 0.0 for _, _, label in STAGES}
    saved = []
    for mod_name, fn_name, label in STAGES:
        mod = importlib.import_module(mod_name)
        fn = getattr(mod, fn_name)
        saved.append((mod, fn_name, fn))

        def timed(*a, _fn=fn, _label=label, **k):
            t0 = time.process_time()
            try:
                return _fn(*a, **k)
            finally:
                acc[_label] += time.process_time() - t0

        setattr(mod, fn_name, timed)
    total_m = total_r = 0.0
    try:
        for _ in range(2):
            for _, _, x, fs, leads in windows:
                t, m = _cpu(measure, x, fs, leads)
                total_m += t
                t, _r = _cpu(analyse_rhythm, m, fs)
                total_r += t
    finally:
        for mod, fn_name, fn in saved:
            setattr(mod, fn_name, fn)
    n = 2 * len(windows)
    return [(k, v * 1000.0 / n) for k, v in acc.items()], total_m * 1000.0 / n, total_r * 1000.0 / n


MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20), "MALLOC_TRIM_THRESHOLD_": str(8 << 20)}


def malloc_effect(args, runs: int) -> list[str]:
    """measure() + analyse_rhythm CPU time and resident memory in fresh processes with glibc's default
    allocation thresholds and with :data:`MALLOC_ENV` (arrays up to 1 MiB from the heap instead of fresh
    mmap pages, 8 MiB kept before trimming), alternating ``runs`` times."""
    out: dict[str, list[tuple[float, float, float]]] = {"default": [], "malloc": []}
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--data",
        str(args.data),
        "--cache",
        str(args.cache),
        "--ptbxl",
        str(args.ptbxl),
        "--qtdb",
        str(args.qtdb),
        "--child-timing",
        str(args.malloc_windows),
    ]
    for _ in range(runs):
        for label in ("default", "malloc"):
            env = dict(os.environ)
            for k in MALLOC_ENV:
                env.pop(k, None)
            if label == "malloc":
                env.update(MALLOC_ENV)
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.split()
            out[label].append(tuple(float(v) for v in res[-3:]))
    lines = [
        "",
        f"glibc's allocation thresholds ({args.malloc_windows} PTB-XL windows twice per fresh process, {runs} "
        "processes each, alternating; CPU ms per window, resident memory after the windows, minus the windows "
        "held in memory by the script). Most of the pipeline's arrays are 0.1-0.5 MB: with glibc's default "
        "128 kB mmap threshold every one is a fresh mapping whose pages fault in on first touch.",
        "",
        "| allocation | runs | CPU ms per window (median, min-max) | VmRSS growth MiB (median) | VmHWM growth MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, name in (
        ("default", "glibc defaults"),
        ("malloc", "MALLOC_MMAP_THRESHOLD_=1 MiB, MALLOC_TRIM_THRESHOLD_=8 MiB"),
    ):
        v = np.array(out[label])
        lines.append(
            f"| {name} | {len(v)} | {np.median(v[:, 0]):.2f} ({v[:, 0].min():.2f}-{v[:, 0].max():.2f}) | "
            f"{np.median(v[:, 1]):.1f} | {np.median(v[:, 2]):.1f} |"
        )
    return lines


def _child_timing(args, n: int) -> None:
    """Child of :func:`malloc_effect`: prints ``ms_per_window rss_growth_mib hwm_growth_mib``."""
    from edge.dsp.measure import measure
    from edge.interpret.rhythm import analyse_rhythm

    def status() -> tuple[float, float]:
        v = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS", "VmHWM")):
                v[line.split(":")[0]] = float(line.split()[1]) / 1024.0
        return v.get("VmRSS", 0.0), v.get("VmHWM", 0.0)

    sel = [w for w in _cached_windows(args) if w[0] == "ptbxl"][:n]
    analyse_rhythm(measure(sel[0][2], sel[0][3], sel[0][4]), sel[0][3])  # imports and first-call set-up
    rss0, hwm0 = status()
    t0 = time.process_time()
    for _ in range(2):
        for _, _, x, fs, leads in sel:
            analyse_rhythm(measure(x, fs, leads), fs)
    ms = (time.process_time() - t0) * 1000.0 / (2 * len(sel))
    rss, hwm = status()
    print(f"{ms:.3f} {rss - rss0:.2f} {hwm - hwm0:.2f}")


def profile(windows, n: int) -> str:
    from report import cpu_profile  # bench/report.py

    from edge.dsp.measure import measure
    from edge.interpret.rhythm import analyse_rhythm

    sel = [w for w in windows if w[0] == "ptbxl"][:n]

    def run() -> None:
        for _, _, x, fs, leads in sel:
            analyse_rhythm(measure(x, fs, leads), fs)

    return cpu_profile(run, f"cProfile over {len(sel)} PTB-XL windows (CPU time)", 25, 40)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--against", default=None, help="commit whose measurement modules are the reference")
    ap.add_argument("--ptbxl", type=int, default=100)
    ap.add_argument("--qtdb", type=int, default=105)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ref-patch", type=Path, default=None, help="diff applied to the reference modules")
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--stages", type=int, default=0, help="stage times over the first N PTB-XL windows")
    ap.add_argument(
        "--markdown", type=Path, default=None, help="write the section of this file (BENCHMARKS.md)"
    )
    ap.add_argument("--malloc", type=int, default=0, help="fresh processes per allocation setting (malloc_effect)")
    ap.add_argument("--malloc-windows", type=int, default=60)
    ap.add_argument("--child-timing", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--sources", default=None, help="comma-separated sources to keep (e.g. ptbxl,qtdb)")
    ap.add_argument("--cache", type=Path, default=REPO / "runs" / "profile_windows.npz")
    args = ap.parse_args(argv)
    if not (args.data / "ptbxl").is_dir():
        print(f"error: no PTB-XL at {args.data / 'ptbxl'}", file=sys.stderr)
        return 2
    if args.child_timing:
        _child_timing(args, args.child_timing)
        return 0
    windows = _cached_windows(args)
    if args.sources:
        windows = [w for w in windows if w[0] in args.sources.split(",")]
    print(
        f"{len(windows)} windows: "
        + ", ".join(f"{s} {sum(w[0] == s for w in windows)}" for s in dict.fromkeys(w[0] for w in windows))
    )
    if args.profile:
        print(profile(windows, args.profile))
    lines: list[str] = []
    if args.against:
        res = compare(windows, load_reference(args.against, args.ref_patch), args.repeats)
        t = res["times"]
        lines += [
            f"CPU time per window (`time.process_time`, the minimum of {args.repeats} interleaved runs per window; "
            f"median over the windows with its 95 % interval), reference = commit `{args.against[:10]}`'s "
            "measurement modules"
            + (" with another change in progress applied" if args.ref_patch else "")
            + ":",
            "",
            "| windows | N | measure() before ms | after ms | per-window ratio | analyse_rhythm before ms | after ms "
            "| p90 before / after ms |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        groups = [("all", list(range(len(windows))))] + [
            (src, [i for i, w in enumerate(windows) if w[0] == src]) for src in res["by_source"]
        ]
        for label, idx in groups:
            om, nm = t["old_measure"][idx], t["new_measure"][idx]
            orr, nr = t["old_rhythm"][idx], t["new_rhythm"][idx]
            ratio = om / np.maximum(nm, 1e-9)
            cells = [f"{np.median(a):.2f} [{median_ci(a)[0]:.2f}-{median_ci(a)[1]:.2f}]" for a in (om, nm)]
            r_cells = [f"{np.median(a):.2f}" for a in (orr, nr)]
            lines.append(
                f"| {label} | {len(idx)} | {cells[0]} | {cells[1]} | {np.median(ratio):.2f}x "
                f"[{median_ci(ratio)[0]:.2f}-{median_ci(ratio)[1]:.2f}] | {r_cells[0]} | {r_cells[1]} | "
                f"measure {np.percentile(om, 90):.2f} / {np.percentile(nm, 90):.2f}, rhythm "
                f"{np.percentile(orr, 90):.2f} / {np.percentile(nr, 90):.2f} |"
            )
        n_diff = len(res["diffs"])
        lines += [
            "",
            f"Results compared on every window: every key of `measure()` (recursively, floats exactly) and the "
            f"rhythm's statement, modifiers, counts, detail, reason and values: {n_diff} of {len(windows)} windows "
            "differ.",
            "",
        ]
        for name, found in list(res["diffs"].items())[:30]:
            lines.append(f"- {name}: " + "; ".join(f"{p} {k} {s:.3g}" for p, k, s in found[:6]))
    if args.stages:
        sel = [w for w in windows if w[0] == "ptbxl"][: args.stages]
        stages, tm, tr = stage_times(sel)
        lines += [
            "",
            f"Where the time goes now: mean CPU ms per window over {len(sel)} PTB-XL windows (12 leads, 500 Hz, 10 s), "
            f"each run twice; measure() {tm:.2f} ms, analyse_rhythm {tr:.2f} ms (the stage wrappers add a little):",
            "",
            "| stage | ms | share of measure() |",
            "|---|---:|---:|",
        ]
        for label, ms in stages:
            lines.append(f"| {label.replace('  ', '&nbsp;&nbsp;')} | {ms:.2f} | {ms / tm:.0%} |")
    if args.malloc:
        lines += malloc_effect(args, args.malloc)
    text = "\n".join(lines)
    print(text)
    if args.markdown and lines:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from report import machine, machine_line, write_section  # bench/report.py, beside this script

        load = " ".join(f"{v:.1f}" for v in os.getloadavg())
        head = [
            "## Cost of the measurement pipeline (`bench/profile_measure.py`)",
            "",
            f"Command: `python bench/profile_measure.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ",
            machine_line(machine()) + "  ",
            f"Load average while it ran: {load} (1/5/15 min): the machine is shared, so CPU time is compared, "
            "old and new interleaved in one process.",
            "",
            "Windows: "
            + ", ".join(
                f"{s} {sum(w[0] == s for w in windows)}" for s in dict.fromkeys(w[0] for w in windows)
            )
            + " (PTB-XL 500 Hz 12 leads; the Challenge records' first 10 s; QTDB 2 leads at 250 Hz, 10 s at 60 s and "
            "300 s of the records with a standard lead; the synthetic generator's every rhythm, 3 seeds).",
            "",
        ]
        write_section(args.markdown, "profile_measure", "\n".join(head + lines))
    return 0


def _cached_windows(args) -> list:
    if args.cache.is_file():
        z = np.load(args.cache, allow_pickle=False)
        meta = z["meta"].tolist()
        if int(meta[0][0]) == args.ptbxl and int(meta[0][1]) == args.qtdb:
            out = []
            for i, (src, name, fs, leads) in enumerate(meta[1:]):
                out.append((src, name, z[f"x{i}"], float(fs), None if leads == "" else leads.split(",")))
            return out
    windows = load_windows(args.data, args.ptbxl, args.qtdb)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    meta = [(str(args.ptbxl), str(args.qtdb), "", "")] + [
        (s, n, str(fs), "" if leads is None else ",".join(leads)) for s, n, _, fs, leads in windows
    ]
    np.savez(args.cache, meta=np.array(meta), **{f"x{i}": w[2] for i, w in enumerate(windows)})
    return windows


if __name__ == "__main__":
    sys.exit(main())
