"""Benchmark of the interpretation criteria (edge.interpret.decide, DESIGN.md contract 8); writes BENCHMARKS.md.

    python bench/bench_criteria.py --data ../shared/data [--markdown BENCHMARKS.md]

Every record is classified as the device reads it (the default bundle, its first 10-s window, sex and age
unknown) and the stated findings are compared with the cardiologists' statements:

1. per criterion label (a label a published criterion states, ``edge/data/findings_rules.json``): sensitivity
   and PPV with Wilson 95 % intervals, on PTB-XL fold 9 (validation), fold 10 (test) and folds 1-8, and on
   the Challenge records (cinc2021 + challenge2020, other hospitals). A label counts where the source states
   it (known-label masks of training.datasets); a stated child counts for its parents (完全左脚ブロック is a
   左脚ブロック), as does a true child;
2. macro sensitivity and PPV over the criterion labels with at least one true / one stated record;
3. findings per ECG against the cardiologists' (most specific labels on both sides);
4. contradictions of the stated findings with the window's own measurements (edge.interpret.criteria_check).

No threshold of the rules was chosen on these records (they come from the published sources); fold 10 is
reported, never tuned on.
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
from report import REPO, machine, machine_line, write_section  # bench/report.py, beside this script

from edge.interpret.catalogue import load_catalogue  # noqa: E402
from edge.interpret.criteria_check import contradictions  # noqa: E402
from edge.interpret.rules import load_rules  # noqa: E402
from edge.runtime.engine import Classifier  # noqa: E402
from export.gate import wilson_interval  # noqa: E402
from training.datasets.cinc import Challenge2020Reader, CinC2021Reader  # noqa: E402
from training.datasets.ptbxl import PTBXLReader  # noqa: E402

CAT = load_catalogue()


def criterion_labels() -> list[str]:
    """Labels a criterion states (``decide`` or ``state``), outside the rhythm analysis' own labels."""
    rules = load_rules()
    owned = set(rules.rhythm_labels)
    return [
        lid
        for lid in rules.criterion_labels
        if lid not in owned and lid != "NORM" and any(c.mode != "veto" for c in rules.criteria_for(lid))
    ]


def _closure(ids) -> set[str]:
    out = set()
    for lid in ids:
        if lid in CAT:
            out |= {lid} | CAT.ancestors(lid)
    return out


def read_set(clf: Classifier, records) -> list[dict]:
    """One row per record: truth (with ancestors), known labels, stated (with ancestors), counts."""
    rows = []
    n_win = clf.window_samples
    for rec in records:
        n = n_win(rec.fs)
        x = np.asarray(rec.signal)[:, :n]
        if x.shape[1] < n:
            continue
        r = clf.classify_window(x, rec.fs, list(rec.leads))
        if r.skipped:
            continue
        stated = list(r.findings) + list(r.zero_shot_findings)
        truth = _closure(rec.labels)
        # the model alone: thresholds and the structural rules, no measurement, no rhythm analysis
        alone = [clf.rules.ids[i] for i in clf.rules.decide(r.scores, clf.thresholds, None)]
        rows.append(
            {
                "key": rec.key,
                "truth": truth,
                "known": None if rec.known is None else set(rec.known),
                "stated": _closure(stated),
                "alone": _closure(alone),
                "n_stated": len(stated),
                "n_truth": len(clf.rules.most_specific([x for x in rec.labels if x in clf.rules.index])),
                "contradictions": contradictions(stated, r.measurements),
                "findings": stated,
                "labels": list(rec.labels),
            }
        )
    return rows


def score(rows: list[dict], labels: list[str], side: str = "stated") -> tuple[list[dict], dict]:
    """Per-label counts and the macro figures of ``side`` ("stated": the device; "alone": the model alone)."""
    table = []
    for lid in labels:
        known = [r for r in rows if r["known"] is None or lid in r["known"]]
        tp = sum(lid in r["truth"] and lid in r[side] for r in known)
        fn = sum(lid in r["truth"] and lid not in r[side] for r in known)
        fp = sum(lid not in r["truth"] and lid in r[side] for r in known)
        if tp + fn + fp == 0:
            continue
        table.append({"id": lid, "n": len(known), "pos": tp + fn, "tp": tp, "fp": fp, "fn": fn})
    se = [t["tp"] / t["pos"] for t in table if t["pos"]]
    ppv = [t["tp"] / (t["tp"] + t["fp"]) for t in table if t["tp"] + t["fp"]]
    se5 = [t["tp"] / t["pos"] for t in table if t["pos"] >= 5]
    ppv5 = [t["tp"] / (t["tp"] + t["fp"]) for t in table if t["pos"] >= 5 and t["tp"] + t["fp"]]
    summary = {
        "n": len(rows),
        "macro_se5": float(np.mean(se5)) if se5 else float("nan"),
        "macro_ppv5": float(np.mean(ppv5)) if ppv5 else float("nan"),
        "n5": len(se5),
        "macro_se": float(np.mean(se)) if se else float("nan"),
        "n_se": len(se),
        "macro_ppv": float(np.mean(ppv)) if ppv else float("nan"),
        "n_ppv": len(ppv),
        "findings_per_ecg": float(np.mean([r["n_stated"] for r in rows])) if rows else float("nan"),
        "truth_per_ecg": float(np.mean([r["n_truth"] for r in rows])) if rows else float("nan"),
        "contradictions": sum(len(r["contradictions"]) for r in rows),
    }
    return table, summary


def _ci(k: int, n: int) -> str:
    if not n:
        return "–"
    lo, hi = wilson_interval(k, n)
    return f"{k / n:.2f} [{lo:.2f}–{hi:.2f}]"


def section(name: str, table: list[dict], summary: dict, alone: dict) -> list[str]:
    ja = {lb.id: lb.ja for lb in CAT.labels}
    lines = [
        f"### {name} (N = {summary['n']} ECGs)",
        "",
        f"Macro sensitivity {summary['macro_se']:.2f} over {summary['n_se']} criterion labels with a true record, "
        f"macro PPV {summary['macro_ppv']:.2f} over {summary['n_ppv']} stated; findings per ECG "
        f"{summary['findings_per_ecg']:.2f} vs the cardiologists' {summary['truth_per_ecg']:.2f} "
        f"({summary['findings_per_ecg'] / max(summary['truth_per_ecg'], 1e-9):.2f}×); contradictions with the "
        f"window's measurements: {summary['contradictions']}. Over the {summary['n5']} labels with at least 5 true "
        f"records: macro sensitivity {summary['macro_se5']:.2f}, PPV {summary['macro_ppv5']:.2f}. The model alone "
        f"(thresholds and the structural rules, no measurement): macro sensitivity {alone['macro_se']:.2f}, PPV "
        f"{alone['macro_ppv']:.2f} over {alone['n_ppv']} stated; with 5 true records {alone['macro_se5']:.2f} / "
        f"{alone['macro_ppv5']:.2f}.",
        "",
        "| label | | known | true | TP | FP | FN | sensitivity [95 % CI] | PPV [95 % CI] |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in table:
        lines.append(
            f"| {t['id']} | {ja.get(t['id'], '')} | {t['n']} | {t['pos']} | {t['tp']} | {t['fp']} | {t['fn']} | "
            f"{_ci(t['tp'], t['pos'])} | {_ci(t['tp'], t['tp'] + t['fp'])} |"
        )
    return lines + [""]


def injury_lines(rows: list[dict]) -> list[str]:
    inj = {"INJAS", "INJAL", "INJLA", "INJIN", "INJIL", "STE"}
    hits = [r for r in rows if inj & set(r["labels"])]
    out = ["### Records the cardiologists labelled with injury or ST elevation", ""]
    if not hits:
        return out + ["None in these sets.", ""]
    out += ["| record | cardiologists | device | 正常心電図 stated |", "|---|---|---|---|"]
    for r in hits:
        out.append(
            f"| {r['key']} | {', '.join(r['labels'])} | {', '.join(r['findings'])} | {'NORM' in r['findings']} |"
        )
    return out + [""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    labels = criterion_labels()
    t0 = time.perf_counter()
    sets = []
    with Classifier.from_bundle() as clf:
        for name, reader in (
            (
                "PTB-XL fold 9 (validation)",
                PTBXLReader(args.data / "ptbxl", rate=500, folds={9}, on_error="skip"),
            ),
            (
                "PTB-XL fold 10 (test)",
                PTBXLReader(args.data / "ptbxl", rate=500, folds={10}, on_error="skip"),
            ),
            (
                "PTB-XL folds 1-8",
                PTBXLReader(args.data / "ptbxl", rate=500, folds=set(range(1, 9)), on_error="skip"),
            ),
        ):
            sets.append((name, read_set(clf, reader)))
        challenge = read_set(clf, CinC2021Reader(args.data / "cinc2021", on_error="skip"))
        challenge += read_set(clf, Challenge2020Reader(args.data / "challenge2020", on_error="skip"))
        sets.append(("Challenge records: cinc2021 + challenge2020 (other hospitals)", challenge))
    minutes = (time.perf_counter() - t0) / 60
    body = [
        "## Interpretation criteria against the cardiologists (`bench/bench_criteria.py`)",
        "",
        f"{machine_line(machine())}; {minutes:.1f} min. The default bundle as the device reads it: first 10-s window, "
        "sex and age unknown (ST elevation in V2-V3 then at 0.15 mV, the lowest UDMI4 threshold), rhythm "
        "analysis, criteria (each naming its source in edge/data/findings_rules.json), the model for the "
        "labels no criterion defines. Criterion labels: " + ", ".join(labels) + ". No rule threshold was "
        "chosen on these records.",
        "",
    ]
    ptb_all = []
    for name, rows in sets:
        table, summary = score(rows, labels)
        body += section(name, table, summary, score(rows, labels, "alone")[1])
        if name.startswith("PTB-XL"):
            ptb_all += rows
    table, summary = score(ptb_all, labels)
    body += section(
        "PTB-XL, all 500 records (folds 1-10 together)", table, summary, score(ptb_all, labels, "alone")[1]
    )
    body += injury_lines(ptb_all)
    text = "\n".join(body)
    write_section(args.markdown, "bench_criteria", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
