"""CPU cost of one whole window (``Classifier.classify_window``) and equality of its result with an earlier commit.

    python bench/profile_window.py --against-tree /tmp/ref [--repeats 3] [--profile 40] [--variants 40]

The windows: ``runs/profile_windows.npz`` (bench/profile_measure.py's cache: PTB-XL 500 Hz, the Challenge
records, QTDB, the synthetic generator), plus ``--variants`` PTB-XL windows three more times each: V2 flagged
lead-off, the left/right arm electrodes swapped and every lead scaled to 1 mV peak to peak (so the partial-lead
and integrity paths run too).

``--against-tree DIR``: the ``edge`` package of another checkout (e.g. ``git worktree add /tmp/ref <commit>``)
is copied and imported beside the working tree's as ``_edge_ref`` (its ``edge.`` imports renamed); both
classify every window with the same bundle, interleaved (old, new, old, new ...) in one process, CPU time
(``time.process_time``) per window, the minimum of ``--repeats``; every key of the result's JSON line (except
``t`` and ``latency_ms``), the cosine scores and the embedding are compared exactly.
``--stages N``: the same per stage of the window (quality, integrity, preprocess, measure, encoder + cosine,
decision) over the first N PTB-XL windows, made C-contiguous as the stream hands them over.
``--profile N``: cProfile of the working tree's ``classify_window`` over the first N windows.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import cpu_profile  # noqa: E402 - bench/report.py, beside this script

LIMB = ("I", "II", "III", "aVR", "aVL", "aVF")


def load_reference_package(tree: Path) -> str:
    """Copy ``tree/edge`` to a temporary folder as ``_edge_ref`` (imports renamed) and put it on the path."""
    root = Path(tempfile.mkdtemp(prefix="window_ref_"))
    dst = root / "_edge_ref"
    shutil.copytree(tree / "edge", dst)
    for py in dst.rglob("*.py"):
        text = py.read_text()
        text = re.sub(r"\b(from|import) edge\.", r"\1 _edge_ref.", text)
        text = re.sub(r"\b(from|import) edge\b", r"\1 _edge_ref", text)
        py.write_text(text)
    sys.path.insert(0, str(root))
    return "_edge_ref"


def load_windows(cache: Path, n_variants: int) -> list[tuple[str, str, np.ndarray, float, list[str] | None, list[str]]]:
    """``(source, name, x[C, T] mV, fs, leads, lead_off names)``."""
    from edge.dsp.signal import LEADS

    z = np.load(cache, allow_pickle=False)
    meta = z["meta"].tolist()
    out = []
    for i, (src, name, fs, leads) in enumerate(meta[1:]):
        out.append((src, name, z[f"x{i}"], float(fs), None if leads == "" else leads.split(","), []))
    ptb = [w for w in out if w[0] == "ptbxl" and w[4] == list(LEADS)][:n_variants]
    for _src, name, x, fs, leads, _ in ptb:
        out.append(("lead-off V2", name, x, fs, leads, ["V2"]))
        sw = x.copy()  # LA/RA swap: I inverted, II <-> III, aVR <-> aVL
        sw[0], sw[1], sw[2], sw[3], sw[4] = -x[0], x[2], x[1], x[4], x[3]
        out.append(("arm swap", name, sw, fs, leads, []))
        ptp = np.ptp(x, axis=1, keepdims=True)
        out.append(("per-lead scaled", name, (x / np.maximum(ptp, 1e-6)).astype(np.float32), fs, leads, []))
    return out


def _comparable(result) -> dict:
    d = result.to_json(source="s", t="t")
    d.pop("latency_ms", None)
    return d


def _diff(a, b, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}.{k} only in {'new' if k not in a else 'old'}")
            else:
                _diff(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{path}[{i}]", out)
    elif (type(a) is not type(b) or a != b) and not (
        isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b)
    ):
        out.append(f"{path}: {a!r} -> {b!r}")


def stage_fns(pkg: str, clf, x: np.ndarray, fs: float, names: list[str]) -> dict:
    """The stages of ``classify_window`` as separate calls of package ``pkg`` (``edge`` or the reference)."""
    q = importlib.import_module(f"{pkg}.dsp.quality")
    integ = importlib.import_module(f"{pkg}.dsp.integrity")
    meas = importlib.import_module(f"{pkg}.dsp.measure")
    res = importlib.import_module(f"{pkg}.runtime.result")
    no_integrity = q.QualityConfig(integrity=None)
    inp = clf.preprocess(x, fs, names)[None]
    measured = meas.measure(x, fs, names)
    scores = clf.score(clf.embed(inp))[0]

    def decision() -> None:
        r = res.Result(quality=res.Quality(ok=True, usable_leads=list(names)), fs=fs)
        r.measurements = measured
        clf.decide(r, scores)

    return {
        "quality (without integrity)": lambda: q.assess_window(x, names, fs=fs, config=no_integrity),
        "integrity": lambda: integ.check_integrity(x, names, fs=fs),
        "preprocess": lambda: clf.preprocess(x, fs, names),
        "measure": lambda: meas.measure(x, fs, names),
        "int8 encoder + cosine": lambda: clf.score(clf.embed(inp)),
        "decision": decision,
        "whole classify_window": lambda: clf.classify_window(x, fs, names),
    }


def stages(windows, old, new, repeats: int) -> None:
    """Per stage, CPU ms per window before and after (interleaved; min of ``repeats``; median over windows)."""
    from edge.dsp.signal import LEADS

    t: dict[str, tuple[list, list]] = {}
    for _, _, x, fs, _, _ in windows:
        x = np.ascontiguousarray(x, dtype=np.float32)  # as the stream's ring hands a window over
        fo, fn = stage_fns("_edge_ref", old, x, fs, list(LEADS)), stage_fns("edge", new, x, fs, list(LEADS))
        for name in fo:
            bo = bn = np.inf
            for _ in range(repeats):
                t0 = time.process_time()
                fo[name]()
                t1 = time.process_time()
                fn[name]()
                t2 = time.process_time()
                bo, bn = min(bo, t1 - t0), min(bn, t2 - t1)
            t.setdefault(name, ([], []))
            t[name][0].append(bo * 1e3)
            t[name][1].append(bn * 1e3)
    print(f"\nStages, {len(windows)} PTB-XL 12-lead 500 Hz windows (C-contiguous, as from the stream's ring): CPU ms per "
          f"window, min of {repeats} interleaved runs, median over windows [95 % CI]")
    print("| stage | before ms | after ms | per-window ratio |")
    print("|---|---:|---:|---:|")
    for name, (o, n) in t.items():
        o, n = np.array(o), np.array(n)
        r = o / np.maximum(n, 1e-9)
        print(f"| {name} | {np.median(o):.3f} [{median_ci(o)[0]:.3f}-{median_ci(o)[1]:.3f}] | {np.median(n):.3f} "
              f"[{median_ci(n)[0]:.3f}-{median_ci(n)[1]:.3f}] | {np.median(r):.2f}x |")
    keep = [k for k in t if k not in ("measure", "whole classify_window")]
    so = np.sum([np.array(t[k][0]) for k in keep], axis=0)
    sn = np.sum([np.array(t[k][1]) for k in keep], axis=0)
    print(f"| all but measure (sum per window) | {np.median(so):.3f} | {np.median(sn):.3f} | "
          f"{np.median(so / sn):.2f}x |")


def median_ci(v: np.ndarray, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    meds = np.median(v[rng.integers(0, len(v), (rounds, len(v)))], axis=1)
    return float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against-tree", type=Path, default=None)
    ap.add_argument("--bundle", type=Path, default=None, help="default: each tree's own default bundle")
    ap.add_argument("--cache", type=Path, default=REPO / "runs" / "profile_windows.npz")
    ap.add_argument("--variants", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="only the first N windows")
    ap.add_argument("--stages", type=int, default=0, help="stage times over the first N 12-lead PTB-XL windows")
    args = ap.parse_args(argv)
    from edge.runtime.engine import Classifier

    windows = load_windows(args.cache, args.variants)
    twelve = [w for w in windows if w[0] == "ptbxl" and w[4] is not None and len(w[4]) == 12]
    if args.limit:
        windows = windows[: args.limit]
    print(f"{len(windows)} windows: " + ", ".join(
        f"{s} {sum(w[0] == s for w in windows)}" for s in dict.fromkeys(w[0] for w in windows)))
    new = Classifier.from_bundle(args.bundle, threads=1)
    if args.profile:
        sel = windows[: args.profile]

        def run() -> None:
            for _, _, x, fs, leads, off in sel:
                new.classify_window(x, fs, leads, lead_off=off)

        print(cpu_profile(run, f"classify_window over {len(sel)} windows", 40, 40))
    if args.against_tree is None:
        return 0
    pkg = load_reference_package(args.against_tree)
    old = importlib.import_module(f"{pkg}.runtime.engine").Classifier.from_bundle(args.bundle, threads=1)
    if args.stages:
        stages(twelve[: args.stages], old, new, args.repeats)
    t_old, t_new, diffs = [], [], {}
    for src, name, x, fs, leads, off in windows:
        best_o = best_n = np.inf
        for _ in range(args.repeats):
            t0 = time.process_time()
            ro = old.classify_window(x, fs, leads, lead_off=off)
            t1 = time.process_time()
            rn = new.classify_window(x, fs, leads, lead_off=off)
            t2 = time.process_time()
            best_o, best_n = min(best_o, t1 - t0), min(best_n, t2 - t1)
        t_old.append(best_o * 1e3)
        t_new.append(best_n * 1e3)
        found: list[str] = []
        _diff(_comparable(ro), _comparable(rn), "", found)
        for key in ("scores", "embedding"):
            a, b = getattr(ro, key), getattr(rn, key)
            if (a is None) != (b is None) or (a is not None and not np.array_equal(a, b)):
                found.append(f"{key} differ")
        if found:
            diffs[f"{src}/{name}"] = found
    to, tn = np.array(t_old), np.array(t_new)
    print(f"CPU ms per window (process_time, min of {args.repeats} interleaved runs; median over windows [95 % CI]):")
    print("| windows | N | before ms | after ms | per-window ratio |")
    print("|---|---:|---:|---:|---:|")
    groups = [("all", list(range(len(windows))))] + [
        (s, [i for i, w in enumerate(windows) if w[0] == s]) for s in dict.fromkeys(w[0] for w in windows)]
    for label, idx in groups:
        o, n = to[idx], tn[idx]
        r = o / np.maximum(n, 1e-9)
        print(f"| {label} | {len(idx)} | {np.median(o):.2f} [{median_ci(o)[0]:.2f}-{median_ci(o)[1]:.2f}] | "
              f"{np.median(n):.2f} [{median_ci(n)[0]:.2f}-{median_ci(n)[1]:.2f}] | {np.median(r):.2f}x "
              f"[{median_ci(r)[0]:.2f}-{median_ci(r)[1]:.2f}] |")
    print(f"\nResults compared (JSON line except t/latency_ms, scores, embedding): {len(diffs)} of {len(windows)} "
          "windows differ")
    for name, found in list(diffs.items())[:30]:
        print(f"- {name}: " + "; ".join(found[:6]))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
