"""``ecg-export redecide`` on a copy of the shipped default bundle: how long it takes, and what two rule changes do.

Writes the *Redecide* section of BENCHMARKS.md::

    .venv/bin/python bench/bench_redecide.py [--runs 5]

1. Time: ``redecide`` with a changed criterion (BRADY: heart rate < 50 instead of < 60), run ``--runs`` times on a
   fresh copy each time (in-process, so the figures leave out the interpreter's start, about 1-2 s).
2. Effect on the ground truth of the stored windows (int8 scores of the bundle's own encoder, folds 9 and 10, the
   global measurements of the prepared data; known labels only): findings per window, micro precision and recall
   with Wilson 95 % intervals, with the shipped rules file and with the BRADY change on top of it. The rhythm analysis and per-lead criteria need the raw
   windows and are not part of these figures (the device applies them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import REPO, machine, machine_line, write_section  # noqa: E402
from edge.bundle.loader import default_bundle_path  # noqa: E402
from export.gate import wilson_interval  # noqa: E402
from export.redecide import redecide  # noqa: E402

RULES = REPO / "edge" / "data" / "findings_rules.json"


def _brady(limit: float, folder: Path) -> Path:
    doc = json.loads(RULES.read_text(encoding="utf-8"))
    for c in doc["criteria"]:
        if c["label"] == "BRADY":
            c.setdefault("when", c)["max"] = limit
    path = folder / f"rules_brady_{limit:g}.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def _fmt(split: dict) -> str:
    p_lo, p_hi = wilson_interval(split["true_positives"], split["stated_known"]) if split["stated_known"] else (0, 0)
    r_lo, r_hi = wilson_interval(split["true_positives"], split["true_known"]) if split["true_known"] else (0, 0)
    return (f"{split['findings_per_window']:.2f} | {split['precision']:.3f} [{p_lo:.3f}–{p_hi:.3f}] | "
            f"{split['recall']:.3f} [{r_lo:.3f}–{r_hi:.3f}]")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        brady50 = _brady(50, tmp)
        seconds = []
        for _ in range(args.runs):
            copy = tmp / "default"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(default_bundle_path(), copy)
            t0 = time.perf_counter()
            out = redecide(copy, rules=brady50, progress=False)
            seconds.append(time.perf_counter() - t0)
            assert out["gate"]["passed"]
        copy = tmp / "effect"
        shutil.copytree(default_bundle_path(), copy)
        shipped = redecide(copy, rules=RULES, progress=False)
        brady = redecide(copy, rules=brady50, progress=False)
    n = {s: shipped["effect"]["after"][s]["windows"] for s in ("validation", "test")}
    # The default bundle's manifest holds rules of the older schema, which the runtime replaces by the shipped
    # file (edge.interpret.findings): "before" and the shipped rules are the same decision.
    rows = [
        ("the shipped rules file (what the runtime applies to this bundle)", shipped["effect"]["after"]),
        ("the same with BRADY at < 50 bpm instead of < 60", brady["effect"]["after"]),
    ]
    lines = [
        "## Redecide: new rules on an existing bundle (`bench/bench_redecide.py`)",
        "",
        f"`ecg-export redecide` on a copy of the default bundle with one criterion changed (BRADY < 50 bpm): "
        f"median {statistics.median(seconds):.2f} s (min {min(seconds):.2f}, max {max(seconds):.2f}; N = "
        f"{len(seconds)} runs, in-process: the interpreter's start is not counted). Gate v2 passed every time "
        "(rules and weight do not enter its conditions; thresholds unchanged).",
        "",
        f"What the rules do on the stored windows (int8 scores of the bundle's own encoder; folds 9 / 10: "
        f"{n['validation']} / {n['test']} windows; known labels only; global measurements only: the rhythm "
        "analysis and the per-lead criteria need the raw windows and are left out). Findings per window, micro "
        "precision and recall with Wilson 95 % intervals:",
        "",
        "| rules | test: findings/window | precision | recall | validation: findings/window | precision | recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, eff in rows:
        lines.append(f"| {name} | {_fmt(eff['test'])} | {_fmt(eff['validation'])} |")
    lines += ["", machine_line(machine())]
    write_section(args.out, "redecide", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
