"""Benchmark of the rhythm analysis (edge.interpret.rhythm, DESIGN.md contract 8.1, issue #21); writes BENCHMARKS.md.

    python bench/bench_rhythm.py --data ../shared/data [--seeds 10] [--minutes 5]

Per rhythm: sensitivity (windows of that rhythm given that statement) and PPV (windows given that statement
that have that rhythm), each with N and a 95 % Wilson interval, from

1. the synthetic generator (firmware_bridge.synthetic: every rhythm, ``--seeds`` 10-s windows at 500 Hz; the
   paced ones also at 1 kHz);
2. PTB-XL (``ptbxl/``, 500 records, 10 s at 500 Hz, 12 leads, ``measure()`` as on the device): the rhythm
   statements of ``scp_codes`` on records with exactly one primary rhythm; folds 1-9 (where the thresholds were
   chosen) and fold 10 (the test fold, never used to choose) apart. PTB-XL's cardiologists write SR down to
   ~55/min where the AHA rate criterion says sinus bradycardia, so a sinus-family score is given beside;
3. the Challenge records (``cinc2021/`` and ``challenge2020/``: SNOMED CT codes, first 10 s), and the
   records that state premature beats without atrial fibrillation (must not be called AF);
4. QTDB's 81 ``.atr`` records and MIT-BIH 100 (2 leads, 250/360 Hz; rhythm from the ``aux_note`` rhythm
   annotations, 10-s windows inside one episode over the first ``--minutes``): beat types against the
   cardiologists' beat labels (EC57 match, 150 ms) and rhythm statements per window.
"""

from __future__ import annotations

import argparse
import ast
import csv
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import (  # bench/report.py, beside this script
    REPO,
    lead_names,
    machine,
    machine_line,
    write_section,
)

from edge.dsp.beat_types import annotate_beats  # noqa: E402
from edge.dsp.measure import measure  # noqa: E402
from edge.interpret.rhythm import analyse_rhythm  # noqa: E402
from export.gate import wilson_interval  # noqa: E402
from firmware_bridge.synthetic import RHYTHMS, synthesize  # noqa: E402

SINUS = {"SR", "SBRAD", "STACH", "SARRH"}
# synthetic rhythm -> (statement, modifiers expected)
SYNTHETIC_TRUTH = {
    "sinus": ("SR", ()),
    "sinus_brady": ("SBRAD", ()),
    "sinus_tachy": ("STACH", ()),
    "afib": ("AFIB", ()),
    "pvc": ("SR", ("PVC",)),
    "rbbb": ("SR", ()),
    "lbbb": ("SR", ()),
    "st_elevation": ("SR", ()),
    "flutter": ("AFLT", ()),
    "svt": ("SVTAC", ()),
    "junctional": ("JR", ()),
    "vt": ("VT", ()),
    "paced_v": ("PACE", ()),
    "paced_a": ("PACE", ()),
    "paced_dual": ("PACE", ()),
    "pac": ("SR", ("PAC",)),
    "bigeminy": ("SR", ("PVC", "BIGU")),
    "trigeminy": ("SR", ("PVC", "TRIGU")),
    "avb1": ("SR", ("1AVB",)),
    "mobitz1": ("SR", ("MOBITZ1",)),
    "mobitz2": ("SR", ("MOBITZ2",)),
    "avb2to1": ("SR", ("2AVB",)),
    "avb3": ("SR", ("3AVB",)),
}
PTBXL_PRIMARY = {
    "SR": "SR",
    "AFIB": "AFIB",
    "STACH": "STACH",
    "SBRAD": "SBRAD",
    "SARRH": "SARRH",
    "PACE": "PACE",
    "SVTAC": "SVTAC",
    "PSVT": "SVTAC",
    "AFLT": "AFLT",
}
CHALLENGE_PRIMARY = {
    "426783006": "SR",
    "164889003": "AFIB",
    "164890007": "AFLT",
    "427084000": "STACH",
    "426177001": "SBRAD",
    "427393009": "SARRH",
    "10370003": "PACE",
    "251266004": "PACE",
    "426761007": "SVTAC",
    "713422000": "SVTAC",
    "67198005": "SVTAC",
    "164895002": "VT",
    "426664006": "JR",
}
PREMATURE_CODES = {
    "284470004",
    "63593006",
    "427172004",
    "17338001",
    "164884008",
    "251182009",
    "251164006",
    "251170000",
}
QTDB_RHYTHM = {
    "(N": "SINUS",
    "(AFIB": "AFIB",
    "(AFL": "AFLT",
    "(P": "PACE",
    "(SVTA": "SVTAC",
    "(VT": "VT",
    "(NOD": "JR",
    "(SBR": "SBRAD",
}
ATR_CLASS = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    **dict.fromkeys("/f", "P"),
    "Q": "Q",
}


def _ci(k: int, n: int) -> str:
    if n == 0:
        return "—"
    lo, hi = wilson_interval(k, n)
    return f"{k / n:.2f} [{lo:.2f}–{hi:.2f}]"


def per_rhythm_table(pairs: list[tuple[str, str]], family: bool = False) -> list[str]:
    """``(truth, statement)`` pairs -> rows ``| rhythm | N | Se | stated | PPV |`` (family: sinus as one)."""

    def f(x: str) -> str:
        return "sinus" if family and (x in SINUS or x == "SINUS") else x

    pairs = [(f(t), f(s)) for t, s in pairs]
    labels = sorted({t for t, _ in pairs} | {s for _, s in pairs if s != "undetermined"})
    rows = ["| rhythm | N | sensitivity [95 % CI] | stated | PPV [95 % CI] |", "|---|---|---|---|---|"]
    for lab in labels:
        n = sum(t == lab for t, _ in pairs)
        tp = sum(t == lab and s == lab for t, s in pairs)
        stated = sum(s == lab for _, s in pairs)
        rows.append(f"| {lab} | {n} | {_ci(tp, n)} | {stated} | {_ci(tp, stated)} |")
    right = sum(t == s for t, s in pairs)
    und = sum(s == "undetermined" for _, s in pairs)
    rows.append(f"| **all** | {len(pairs)} | right {_ci(right, len(pairs))} | undetermined {und} | |")
    return rows


def bench_synthetic(seeds: int) -> list[str]:
    pairs, mod_ok, mod_n, misses = [], Counter(), Counter(), []
    cases = [(r, 500) for r in SYNTHETIC_TRUTH] + [
        (r, 1000) for r in ("paced_v", "paced_a", "paced_dual") if r in SYNTHETIC_TRUTH
    ]
    for name, fs in cases:
        statement, mods = SYNTHETIC_TRUTH[name]
        for seed in range(100, 100 + seeds):
            x = synthesize(rhythm=name, duration_s=10, seed=seed, fs=fs)
            r = analyse_rhythm(measure(x, fs), fs)
            key = name if fs == 500 else f"{name} @1 kHz"
            pairs.append((key, r.statement == statement))
            mod_n[key] += 1
            mod_ok[key] += all(m in r.modifiers for m in mods)
            if r.statement != statement or not all(m in r.modifiers for m in mods):
                misses.append(f"{key} seed {seed}: {r.statement} {'+'.join(r.modifiers)}")
    rows = [
        "### Synthetic generator",
        "",
        f"{seeds} windows (10 s, seeds 100-{99 + seeds}) per rhythm; statement and expected modifiers.",
        "",
        "| rhythm | N | statement right [95 % CI] | expected modifiers present [95 % CI] |",
        "|---|---|---|---|",
    ]
    by = defaultdict(list)
    for k, ok in pairs:
        by[k].append(ok)
    for k, oks in by.items():
        truth = SYNTHETIC_TRUTH[k.split(" ")[0]]
        mods = "+".join(truth[1]) or "(none)"
        rows.append(
            f"| {k} ({truth[0]}; {mods}) | {len(oks)} | {_ci(sum(oks), len(oks))} | "
            f"{_ci(mod_ok[k], mod_n[k])} |"
        )
    total = sum(ok for _, ok in pairs)
    rows += ["", f"All: statement right {_ci(total, len(pairs))}.", ""]
    if misses:
        rows += ["Misses: " + "; ".join(misses[:40]) + (" ..." if len(misses) > 40 else ""), ""]
    return rows


def bench_ptbxl(data: Path) -> list[str]:
    import wfdb

    root = data / "ptbxl"
    with open(root / "ptbxl_database.csv", newline="") as fh:
        db = list(csv.DictReader(fh))
    folds: dict[str, list[tuple[str, str]]] = {"1-9": [], "10": []}
    prem_af = prem_n = 0
    misses = []
    for row in db:
        codes = ast.literal_eval(row["scp_codes"])
        truth = {PTBXL_PRIMARY[c] for c in codes if c in PTBXL_PRIMARY}
        rec = wfdb.rdrecord(str(root / row["filename_hr"]))
        m = measure(rec.p_signal.T.astype(np.float32), rec.fs, rec.sig_name)
        r = analyse_rhythm(m, rec.fs)
        fold = "10" if row["strat_fold"] == "10" else "1-9"
        if {"PVC", "PAC", "SVPB", "VPB"} & set(codes) and "AFIB" not in codes:
            prem_n += 1
            prem_af += r.statement == "AFIB"
        if len(truth) != 1:
            continue
        t = truth.pop()
        folds[fold].append((t, r.statement))
        if r.statement != t and not (t in SINUS and r.statement in SINUS):
            misses.append(f"{int(row['ecg_id']):05d} {t}->{r.statement}")
    rows = ["### PTB-XL (500 records, 500 Hz, single-rhythm records)", ""]
    for fold, pairs in folds.items():
        rows += [
            f"Folds {fold} ({'test fold, not used to choose thresholds' if fold == '10' else 'thresholds chosen here'}),"
            f" strict:",
            "",
            *per_rhythm_table(pairs),
            "",
            "Sinus family (SR/SBRAD/STACH/SARRH as one):",
            "",
            *per_rhythm_table(pairs, family=True),
            "",
        ]
    rows += [
        f"Records stating premature beats (PVC/PAC) without AFIB: {prem_af} of {prem_n} called AFIB.",
        "",
        "Misses outside the sinus family: " + ", ".join(misses),
        "",
    ]
    return rows


def _challenge_records(data: Path) -> list[tuple[Path, set[str]]]:
    out = []
    for folder in ("cinc2021", "challenge2020"):
        for hea in sorted((data / folder).glob("*.hea")):
            codes: set[str] = set()
            for line in hea.read_text(errors="replace").splitlines():
                text = line.lstrip("#").strip()
                if text.startswith("Dx:"):
                    codes = {c.strip() for c in text[3:].split(",") if c.strip()}
            out.append((hea.with_suffix(""), codes))
    return out


def bench_challenge(data: Path) -> list[str]:
    import wfdb

    pairs, prem, misses = [], [], []
    for path, codes in _challenge_records(data):
        rec = wfdb.rdrecord(str(path))
        n = int(10 * rec.fs)
        x = rec.p_signal[:n].T.astype(np.float32)
        m = measure(x, rec.fs, rec.sig_name)
        r = analyse_rhythm(m, rec.fs)
        truth = {CHALLENGE_PRIMARY[c] for c in codes if c in CHALLENGE_PRIMARY}
        if codes & PREMATURE_CODES and "164889003" not in codes:
            prem.append((path.name, r.statement))
        if len(truth) == 1:
            t = truth.pop()
            pairs.append((t, r.statement))
            if r.statement != t:
                misses.append(f"{path.name} {t}->{r.statement}")
    n_af = sum(s == "AFIB" for _, s in prem)
    return [
        "### Challenge records (cinc2021 + challenge2020, first 10 s, single-rhythm records)",
        "",
        *per_rhythm_table(pairs),
        "",
        "Sinus family:",
        "",
        *per_rhythm_table(pairs, family=True),
        "",
        f"Records with premature beats (PAC/PVC codes) and no AF: {n_af} of {len(prem)} called AFIB "
        f"({', '.join(f'{a}: {s}' for a, s in prem)}).",
        "",
        "Misses: " + ", ".join(misses),
        "",
    ]


def _match(reference: np.ndarray, detected: np.ndarray, window: int) -> list[tuple[int, int]]:
    """EC57 pairing (as training.metrics.ec57_match counts it): each reference beat takes the nearest unused
    detection within ``window`` samples; returns the (reference index, detection index) pairs."""
    used = np.zeros(detected.size, bool)
    pairs = []
    for i, r in enumerate(reference):
        lo, hi = np.searchsorted(detected, [r - window, r + window + 1])
        cand = [k for k in range(lo, hi) if not used[k]]
        if cand:
            k = min(cand, key=lambda k: abs(int(detected[k]) - int(r)))
            used[k] = True
            pairs.append((i, k))
    return pairs


def bench_beats_and_episodes(data: Path, minutes: float) -> list[str]:
    import wfdb

    records = [data / "qtdb" / p.stem for p in sorted((data / "qtdb").glob("*.atr"))]
    records.append(data / "wfdb_samples" / "100")
    conf: Counter = Counter()  # (truth class, our type)
    unmatched_truth = unmatched_ours = 0
    pairs: list[tuple[str, str]] = []
    mods: Counter = Counter()
    for path in records:
        rec = wfdb.rdrecord(str(path))
        ann = wfdb.rdann(str(path), "atr")
        fs = float(rec.fs)
        leads = lead_names(rec.sig_name)
        sym = np.array(ann.symbol)
        samp = np.asarray(ann.sample)
        # rhythm in effect at each sample: from the rhythm annotations' aux_note
        changes = [
            (int(s), a.strip("\x00").strip())
            for s, a, y in zip(samp, ann.aux_note, sym, strict=True)
            if y == "+" and a.strip("\x00").startswith("(")
        ]
        win = int(10 * fs)
        stop = min(rec.sig_len, int(minutes * 60 * fs))
        for start in range(0, stop - win + 1, win):
            x = rec.p_signal[start : start + win].T.astype(np.float64)
            if not np.isfinite(x).all():
                continue
            a = annotate_beats(x, fs, leads)
            r = analyse_rhythm(a, fs)
            inside = (samp >= start) & (samp < start + win)
            beat_mask = inside & np.isin(sym, list(ATR_CLASS) + ["F"])
            ref = samp[beat_mask] - start
            ref_cls = sym[beat_mask]
            ours = np.asarray(a["beats"], dtype=np.int64)
            match = _match(ref, ours, int(0.15 * fs))
            matched_ref = set()
            for i, j in match:
                matched_ref.add(i)
                if ref_cls[i] in ATR_CLASS:
                    conf[(ATR_CLASS[ref_cls[i]], a["beat_types"][j])] += 1
            unmatched_truth += len(ref) - len(matched_ref)
            unmatched_ours += len(ours) - len(match)
            # window rhythm: one episode over the whole window
            before = [lab for s, lab in changes if s <= start]
            during = [lab for s, lab in changes if start < s < start + win]
            if not before or during:
                continue
            lab = before[-1]
            if lab in QTDB_RHYTHM:
                pairs.append((QTDB_RHYTHM[lab], r.statement))
            elif lab in ("(B", "(T"):
                want = "BIGU" if lab == "(B" else "TRIGU"
                mods[(want, want in r.modifiers)] += 1
    rows = [
        "### QTDB (81 `.atr` records) and MIT-BIH 100: beat types and rhythm episodes",
        "",
        f"Windows of 10 s over the first {minutes:g} min of each record, 2 leads as recorded; beats matched to "
        "the cardiologists' labels as EC57 does (150 ms). Classes: N (N, L, R, e, j), S (A, a, J, S), "
        "V (V, E), P (/, f), Q; fusion beats (F) left out.",
        "",
        "| class | reference beats matched | sensitivity [95 % CI] | typed as it | +P [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    for c in ("N", "S", "V", "P"):
        n = sum(v for (t, _), v in conf.items() if t == c)
        tp = conf[(c, c)]
        typed = sum(v for (_, o), v in conf.items() if o == c)
        rows.append(f"| {c} | {n} | {_ci(tp, n)} | {typed} | {_ci(tp, typed)} |")
    rows += [
        "",
        f"Detection: {unmatched_truth} reference beats unmatched, {unmatched_ours} of ours unmatched.",
        "",
        "Confusion (reference -> ours): " + ", ".join(f"{t}->{o} {v}" for (t, o), v in sorted(conf.items())),
        "",
        "Rhythm statements in windows inside one annotated episode (`(N` counts as the sinus family):",
        "",
        *per_rhythm_table([("SINUS" if t == "SINUS" else t, s) for t, s in pairs], family=True),
        "",
        "Bigeminy/trigeminy episodes: "
        + ", ".join(f"{k} stated {'yes' if ok else 'no'}: {v}" for (k, ok), v in sorted(mods.items())),
        "",
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the real data folder")
    p.add_argument("--seeds", type=int, default=10, help="synthetic windows per rhythm")
    p.add_argument(
        "--minutes", type=float, default=5.0, help="minutes read from the start of each QTDB record"
    )
    p.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    args = p.parse_args(argv)
    cmd = "python bench/bench_rhythm.py " + " ".join(argv if argv is not None else sys.argv[1:])
    t0 = time.perf_counter()
    body = [
        "## Rhythm statements (`bench/bench_rhythm.py`)",
        "",
        f"Command: `{cmd.strip()}`  ",
        machine_line(machine()),
        "",
        "One primary rhythm statement per window (DESIGN.md contract 8.1) from `measure()` + "
        "`edge.interpret.rhythm.analyse_rhythm` (QTDB/MIT-BIH: `edge.dsp.beat_types.annotate_beats` on their "
        "2 leads). Thresholds were chosen on the synthetic generator, PTB-XL folds 1-9 and the Challenge records "
        "(so only fold 10 and QTDB are untouched by the choice); fold 10 is reported apart. QTDB's 'II' is the "
        "Holter lead MLII, read as II: its P polarity is not the standard II's (sel213's sinus windows become "
        "SVT/VT by the negative-P rule).",
        "",
    ]
    for name, fn in (
        ("synthetic", lambda: bench_synthetic(args.seeds)),
        ("PTB-XL", lambda: bench_ptbxl(args.data)),
        ("Challenge", lambda: bench_challenge(args.data)),
        ("QTDB", lambda: bench_beats_and_episodes(args.data, args.minutes)),
    ):
        print(f"{name} ...", file=sys.stderr)
        body += fn()
    body.append(f"Run time {time.perf_counter() - t0:.0f} s.")
    assert set(SYNTHETIC_TRUTH) <= set(RHYTHMS)
    text = "\n".join(body)
    write_section(args.markdown, "bench_rhythm", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
