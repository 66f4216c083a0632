"""CPU cost of the interpretation step of one window, and equality with an earlier commit (#23 item 5).

    python bench/profile_decide.py --data ../shared/data [--against COMMIT] [--ptbxl 260] [--repeats 5]
                                   [--profile 50] [--inputs runs/profile_decide_inputs.pkl]

The interpretation step is what ``Classifier.decide`` does after the rhythm analysis: the ranking
(``FindingRules.adjust``), the decision (``edge.interpret.decide.decide``: rhythm, criteria, model, quality,
consistency) and the lead-need withholding (``edge.interpret.lead_needs.withhold``). Its inputs are computed
once with the default bundle (``Classifier.classify_windows``: quality, measurements, rhythm, cosine scores)
and kept in ``--inputs``: PTB-XL 500 Hz (first ``--ptbxl`` records), the Challenge records (cinc2021 +
challenge2020, first 10 s); every third window again with V2 off and every fifth with the left/right arm
electrodes swapped (the quality's missing and inconsistent leads), and each window gets a patient in turn
(none, male 35, female 60, male 70: the sex/age thresholds).

``--against COMMIT``: the interpretation modules of that commit (edge/interpret criteria, criteria_plan,
rules, findings, decide, criteria_check, lead_needs) are loaded beside the working tree's under another package name, and
every window goes through both, interleaved (old, new, new, old ...) in one process; CPU time
(``time.process_time``: the machine is shared) per window is the minimum over ``--repeats``, reported as the
median over the windows with its 95 % interval. Results compared: findings, zero-shot findings, why (every
field), withheld (after the lead-need step too), removed, alarms and the ranking's top 5.
``--profile N``: cProfile of the working tree's step over the first N PTB-XL windows.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from report import median_ci  # bench/report.py, beside this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

MODULES = {
    "edge.interpret.rules": "edge/interpret/rules.py",
    "edge.interpret.criteria": "edge/interpret/criteria.py",
    "edge.interpret.criteria_plan": "edge/interpret/criteria_plan.py",
    "edge.interpret.findings": "edge/interpret/findings.py",
    "edge.interpret.criteria_check": "edge/interpret/criteria_check.py",
    "edge.interpret.lead_needs": "edge/interpret/lead_needs.py",
    "edge.interpret.decide": "edge/interpret/decide.py",
}
REF_PACKAGE = "_decide_ref"
PATIENTS = (None, {"sex": "M", "age": 35}, {"sex": "F", "age": 60}, {"sex": "M", "age": 70})


def load_reference(commit: str, from_tree: tuple[str, ...] = ()):
    """The interpretation modules of ``commit`` as a namespace (``.findings``, ``.decide``, ``.lead_needs``);
    ``from_tree``: short names of modules taken from the working tree instead (another change in progress)."""
    root = Path(tempfile.mkdtemp(prefix="decide_ref_"))
    pkg = root / REF_PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (root / "data").symlink_to(REPO / "edge" / "data")  # rules.py reads ../data/ beside its package
    for dotted, path in MODULES.items():
        if dotted.rsplit(".", 1)[1] in from_tree:
            src = (REPO / path).read_text(encoding="utf-8")
        else:
            got = subprocess.run(
                ["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True
            )
            if got.returncode != 0:
                continue  # a module that commit did not have
            src = got.stdout
        for other in MODULES:
            src = re.sub(rf"\b{re.escape(other)}\b", f"{REF_PACKAGE}.{other.rsplit('.', 1)[1]}", src)
        (pkg / f"{dotted.rsplit('.', 1)[1]}.py").write_text(src)
    sys.path.insert(0, str(root))
    return _Mods(
        *(importlib.import_module(f"{REF_PACKAGE}.{n}") for n in ("findings", "decide", "lead_needs"))
    )


class _Mods:
    def __init__(self, findings, decide, lead_needs) -> None:
        self.findings, self.decide, self.lead_needs = findings, decide, lead_needs


def current() -> _Mods:
    from edge.interpret import decide, findings, lead_needs

    return _Mods(findings, decide, lead_needs)


def _swap_arms(x: np.ndarray, names: list[str]) -> np.ndarray:
    """LA/RA electrodes swapped: I inverted, II <-> III, aVR <-> aVL."""
    y = x.copy()
    ix = {n: i for i, n in enumerate(names)}
    if {"I", "II", "III", "aVR", "aVL"} <= set(ix):
        y[ix["I"]] = -x[ix["I"]]
        y[ix["II"]], y[ix["III"]] = x[ix["III"]], x[ix["II"]]
        y[ix["aVR"]], y[ix["aVL"]] = x[ix["aVL"]], x[ix["aVR"]]
    return y


def build_inputs(data: Path, n_ptbxl: int) -> list[dict]:
    """Every window's inputs to the interpretation step (see the module docstring)."""
    import wfdb
    from report import lead_names  # bench/report.py

    from edge.runtime.engine import Classifier


    raw = []
    for hea in sorted((data / "ptbxl" / "records500").rglob("*_hr.hea"))[:n_ptbxl]:
        rec = wfdb.rdrecord(str(hea.with_suffix("")))
        raw.append(("ptbxl", hea.stem, rec.p_signal.T.astype(np.float32), float(rec.fs), lead_names(rec.sig_name)))
    for folder in ("cinc2021", "challenge2020"):
        for hea in sorted((data / folder).glob("*.hea")):
            rec = wfdb.rdrecord(str(hea.with_suffix("")))
            x = rec.p_signal[: int(10 * rec.fs)].T.astype(np.float32)
            raw.append((folder, hea.stem, x, float(rec.fs), lead_names(rec.sig_name)))
    out: list[dict] = []
    with Classifier.from_bundle() as clf:
        captured: list = []
        original = clf.decide

        def capture(result, scores):
            original(result, scores)  # the rhythm is analysed here; the captured inputs include it
            captured.append((result, np.array(scores, dtype=np.float32)))

        clf.decide = capture
        for k, (source, name, x, fs, leads) in enumerate(raw):
            variants = [("", x, 0)]
            if k % 3 == 0:
                variants.append(("+V2off", x, ["V2"]))
            if k % 5 == 0:
                variants.append(("+LA/RA", _swap_arms(x, leads), 0))
            for tag, xv, off in variants:
                captured.clear()
                clf.classify_windows([xv], fs, leads, lead_offs=[off])
                if not captured:
                    continue
                result, scores = captured[0]
                q = result.quality
                out.append(
                    {
                        "source": source,
                        "name": name + tag,
                        "scores": scores,
                        "measurements": result.measurements,
                        "rhythm": result.rhythm,
                        "usable_leads": list(q.usable_leads) if q.usable_leads is not None else None,
                        "inconsistent": list(q.inconsistent or []),
                        "patient": PATIENTS[len(out) % len(PATIENTS)],
                    }
                )
        bundle = {
            "labels": clf.labels,
            "thresholds": np.array(clf.thresholds),
            "zero_shot": list(clf.zero_shot),
            "manifest": clf.bundle.manifest,
            "top_k": clf.top_k,
        }
    return [bundle, *out]


class Step:
    """The interpretation step of ``Classifier.decide`` (after the rhythm analysis) with one module set."""

    def __init__(self, mods: _Mods, bundle: dict) -> None:
        self.m = mods
        self.rules, self.weight = mods.findings.FindingRules.from_manifest(
            bundle["labels"], bundle["manifest"]
        )
        self.labels, self.thresholds = bundle["labels"], bundle["thresholds"]
        self.zero_shot, self.top_k = bundle["zero_shot"], bundle["top_k"]

    def __call__(self, w: dict):
        scores = w["scores"]
        q = {"usable_leads": w["usable_leads"], "inconsistent": w["inconsistent"]}
        ja = {lb["id"]: lb.get("ja", lb["id"]) for lb in self.labels}
        d = self.m.decide.decide(
            self.rules, scores, self.thresholds, w["measurements"], rhythm=w["rhythm"], quality=q,
            zero_shot=self.zero_shot, labels_ja=ja, patient=w["patient"],
        )  # fmt: skip
        rank = self.rank(d, w)
        top = [self.labels[i]["id"] for i in np.argsort(-rank, kind="stable")[: self.top_k]]
        findings, withheld = self.m.lead_needs.withhold(d.findings, w["usable_leads"], w["inconsistent"])
        apart, withheld_apart = self.m.lead_needs.withhold(
            d.zero_shot_findings, w["usable_leads"], w["inconsistent"]
        )
        withheld.update(withheld_apart)
        withheld.update(d.withheld)
        return d, top, findings, apart, withheld

    def rank(self, d, w: dict) -> np.ndarray:
        """The ranking as ``Classifier._ranked`` reads it: after the decision, with its criteria verdicts where
        this module set shares them (``Decision.criteria_oks``, since 48fdfd3)."""
        oks = getattr(d, "criteria_oks", None)
        if oks is None:
            return self.rules.adjust(w["scores"], w["measurements"], self.weight)
        return self.rules.adjust(w["scores"], w["measurements"], self.weight, oks=oks)

    @staticmethod
    def comparable(res) -> dict:
        d, top, findings, apart, withheld = res
        return {**d.to_json(), "removed": dict(d.removed), "top": top, "shown": findings, "apart": apart,
                "withheld_shown": withheld}  # fmt: skip


def compare(windows: list[dict], old: Step, new: Step, repeats: int) -> dict:
    t_old, t_new, diffs = [], [], {}
    for i, w in enumerate(windows):
        best = {"old": np.inf, "new": np.inf}
        res = {}
        for rep in range(repeats):
            for which in ("old", "new") if (i + rep) % 2 == 0 else ("new", "old"):
                step = old if which == "old" else new
                t0 = time.process_time()
                r = step(w)
                best[which] = min(best[which], time.process_time() - t0)
                res[which] = r
        t_old.append(best["old"] * 1e3)
        t_new.append(best["new"] * 1e3)
        a, b = Step.comparable(res["old"]), Step.comparable(res["new"])
        if a != b:
            diffs[f"{w['source']}/{w['name']}"] = sorted(k for k in a if a[k] != b.get(k))
    return {"old": np.asarray(t_old), "new": np.asarray(t_new), "diffs": diffs}


def split(windows: list[dict], step: Step, repeats: int) -> dict[str, np.ndarray]:
    """CPU ms per window of the step's parts (working tree; minimum over ``repeats``): the ranking
    (``FindingRules.adjust``), the decision (``decide``) and the lead-need withholding."""
    parts = {"ranking (FindingRules.adjust)": [], "decision (decide)": [], "lead-need withholding": []}
    ja = {lb["id"]: lb.get("ja", lb["id"]) for lb in step.labels}
    for w in windows:
        best = [np.inf] * 3
        q = {"usable_leads": w["usable_leads"], "inconsistent": w["inconsistent"]}
        for _ in range(repeats):
            t0 = time.process_time()
            d = step.m.decide.decide(
                step.rules, w["scores"], step.thresholds, w["measurements"], rhythm=w["rhythm"], quality=q,
                zero_shot=step.zero_shot, labels_ja=ja, patient=w["patient"],
            )  # fmt: skip
            t1 = time.process_time()
            step.rank(d, w)  # the ranking after the decision, as Classifier._ranked does (its verdicts shared)
            t2 = time.process_time()
            step.m.lead_needs.withhold(d.findings, w["usable_leads"], w["inconsistent"])
            step.m.lead_needs.withhold(d.zero_shot_findings, w["usable_leads"], w["inconsistent"])
            t3 = time.process_time()
            best = [min(b, t) for b, t in zip(best, (t2 - t1, t1 - t0, t3 - t2), strict=True)]
        for k, b in zip(parts, best, strict=True):
            parts[k].append(b * 1e3)
    return {k: np.asarray(v) for k, v in parts.items()}


def profile(windows: list[dict], step: Step, n: int) -> str:
    from report import cpu_profile  # bench/report.py

    sel = [w for w in windows if w["source"] == "ptbxl"][:n]

    def run() -> None:
        for _ in range(5):
            for w in sel:
                step(w)

    return cpu_profile(run, f"cProfile over {len(sel)} PTB-XL windows x 5 (CPU time)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--against", default=None, help="commit whose interpretation modules are the reference")
    ap.add_argument("--ptbxl", type=int, default=260)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--ref-tree",
        default="",
        help="comma-separated modules (e.g. criteria_check) the reference takes from the tree",
    )
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--inputs", type=Path, default=REPO / "runs" / "profile_decide_inputs.pkl")
    ap.add_argument(
        "--markdown", type=Path, default=None, help="write the section of this file (BENCHMARKS.md)"
    )
    args = ap.parse_args(argv)
    if args.inputs.is_file():
        bundle, *windows = pickle.loads(args.inputs.read_bytes())
    else:
        if not (args.data / "ptbxl").is_dir():
            print(f"error: no PTB-XL at {args.data / 'ptbxl'}", file=sys.stderr)
            return 2
        bundle, *windows = build_inputs(args.data, args.ptbxl)
        args.inputs.parent.mkdir(parents=True, exist_ok=True)
        args.inputs.write_bytes(pickle.dumps([bundle, *windows]))
    counts = {s: sum(w["source"] == s for w in windows) for s in dict.fromkeys(w["source"] for w in windows)}
    n_var = sum("+" in w["name"] for w in windows)
    print(f"{len(windows)} windows ({n_var} with V2 off or arms swapped): {counts}")
    new = Step(current(), bundle)
    if args.profile:
        print(profile(windows, new, args.profile))
    if not args.against:
        return 0
    from_tree = tuple(x for x in args.ref_tree.split(",") if x)
    old = Step(load_reference(args.against, from_tree), bundle)
    res = compare(windows, old, new, args.repeats)
    o, n = res["old"], res["new"]
    ratio = o / np.maximum(n, 1e-9)
    lines = [
        f"CPU time per window of the interpretation step (`time.process_time`, minimum of {args.repeats} "
        f"interleaved runs per window; median over the windows with its 95 % interval), reference = commit "
        f"`{args.against[:10]}`'s interpretation modules"
        + (f" ({', '.join(from_tree)} from the working tree: another helper's change)" if from_tree else "")
        + ":",
        "",
        "| windows | N | before ms | after ms | per-window ratio | p90 before / after ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    groups = [("all", list(range(len(windows))))] + [
        (s, [i for i, w in enumerate(windows) if w["source"] == s]) for s in counts
    ]
    for label, idx in groups:
        a, b, r = o[idx], n[idx], ratio[idx]
        cells = [f"{np.median(v):.3f} [{median_ci(v)[0]:.3f}-{median_ci(v)[1]:.3f}]" for v in (a, b)]
        lines.append(
            f"| {label} | {len(idx)} | {cells[0]} | {cells[1]} | {np.median(r):.2f}x "
            f"[{median_ci(r)[0]:.2f}-{median_ci(r)[1]:.2f}] | {np.percentile(a, 90):.3f} / "
            f"{np.percentile(b, 90):.3f} |"
        )
    lines += [
        "",
        "Results compared on every window (findings, zero-shot findings, why with every value, withheld, "
        f"removed, alarms, the top {bundle['top_k']} of the ranking): {len(res['diffs'])} of {len(windows)} "
        "windows differ.",
        "",
    ]
    for name, keys in list(res["diffs"].items())[:30]:
        lines.append(f"- {name}: {', '.join(keys)}")
    parts = split(windows, new, args.repeats)
    lines += [
        "Where the time goes now (working tree, every window, minimum of the repeats; median ms with its 95 % "
        "interval): "
        + "; ".join(
            f"{k} {np.median(v):.3f} [{median_ci(v)[0]:.3f}-{median_ci(v)[1]:.3f}]" for k, v in parts.items()
        )
        + ".",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        from report import machine, machine_line, write_section  # bench/report.py

        load = " ".join(f"{v:.1f}" for v in os.getloadavg())
        head = [
            "## Cost of the interpretation step (`bench/profile_decide.py`)",
            "",
            f"Command: `python bench/profile_decide.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ",
            machine_line(machine()) + "  ",
            f"Load average while it ran: {load} (1/5/15 min): the machine is shared, so CPU time is compared, "
            "old and new interleaved in one process.",
            "",
            f"Windows: {len(windows)} ("
            + ", ".join(f"{s} {c}" for s, c in counts.items())
            + f"; {n_var} of them again with V2 off or the arm electrodes swapped; patients in turn none, M 35, "
            "F 60, M 70). The step: ranking, decision and lead-need withholding of `Classifier.decide`, after "
            "the rhythm analysis.",
            "",
        ]
        write_section(args.markdown, "profile_decide", "\n".join(head + lines))
    return 1 if res["diffs"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
