"""How the model's scores hold up with leads missing (issue #23, item 1), for BENCHMARKS.md (section ``bench_leads``).

The runtime reads a window with some leads off or flat on the leads that remain: the unusable leads are zeroed
before the signal contract (``edge.dsp.quality.usable_twelve``), so the model input has those rows at 0 (a
zero lead stays 0 after the per-lead z-score). This script does exactly that to the test fold's prepared model
inputs (PTB-XL fold 10 of every labelled source, as ``bench/bench_accuracy.py``) and scores them with a
bundle's int8 encoder: top-1, top-5 and macro AUROC with the known-label mask, per dropped lead and for the
patterns the bedside meets (one arm electrode off on an 8-channel device leaves only II of the limb leads;
V2, V4 and V6 flat; all limb leads or all chest leads inconsistent). Model ranking only (cosine, no
measurement criteria), so the figures isolate the encoder. N and 95 % intervals: Wilson for top-1/top-5,
bootstrap over windows for AUROC (``--boot`` resamples).

    python bench/bench_leads.py --data ../shared/data [--bundle edge/bundles/default] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from report import REPO, machine, machine_line, write_section  # bench/report.py, beside this script

SOURCES = (
    "ptbxl",
    "ptbxl_processed",
    "cinc2021",
    "challenge2020",
)  # as bench_accuracy and the default bundle
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

CONDITIONS: dict[str, tuple[str, ...]] = {
    "all 12 leads": (),
    **{f"{lead} missing": (lead,) for lead in LEADS},
    "arm electrode off, 8-channel device (only II of the limb leads)": ("I", "III", "aVR", "aVL", "aVF"),
    "V2, V4, V6 flat": ("V2", "V4", "V6"),
    "limb leads inconsistent (chest leads only)": LEADS[:6],
    "chest leads missing (limb leads only)": LEADS[6:],
}


def masked(windows: np.ndarray, drop: tuple[str, ...]) -> np.ndarray:
    """The model inputs with the rows of ``drop`` zeroed, as the runtime feeds a window with those leads unusable."""
    if not drop:
        return windows
    out = np.array(windows, dtype=np.float32, copy=True)
    out[:, [LEADS.index(lead) for lead in drop], :] = 0.0
    return out


def _auroc_ci(
    scores: np.ndarray, t: np.ndarray, known: np.ndarray, boot: int, seed: int = 0
) -> tuple[float, float]:
    from training.metrics import per_label_auroc

    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(boot):
        i = rng.integers(0, len(scores), len(scores))
        a = per_label_auroc(scores[i], t[i], known[i])
        a = a[~np.isnan(a)]
        if a.size:
            vals.append(float(a.mean()))
    return (
        (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))) if vals else (float("nan"),) * 2
    )


def _fold(
    data: Path, folds: list[int], signal, label_ids: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(windows, targets, known)`` of the test folds, with targets and known-label mask over ``label_ids``."""
    from edge.interpret.catalogue import load_catalogue
    from training.prepare import Source, default_cache_dir, prepare

    catalogue = load_catalogue()
    sources = [Source(kind, data / kind) for kind in SOURCES]
    ds = prepare(sources, default_cache_dir(sources, signal), signal, catalogue, progress=False)
    idx = ds.indices(folds)
    windows = np.asarray(ds.windows[idx], dtype=np.float32)
    targets, known = ds.labels[idx].astype(np.float32), np.asarray(ds.known[idx])
    col = {lid: j for j, lid in enumerate(catalogue.ids)}
    t = np.zeros((len(idx), len(label_ids)), dtype=np.float32)
    k_mask = np.zeros_like(t, dtype=bool)
    for k, lid in enumerate(label_ids):
        if lid in col:
            t[:, k] = targets[:, col[lid]]
            k_mask[:, k] = known[:, col[lid]] > 0
    return windows, t, k_mask


def _rows(
    score, windows: np.ndarray, t: np.ndarray, k_mask: np.ndarray, label_ids: list[str], boot: int
) -> dict:
    """Every condition's figures with ``score(windows) -> [N, labels]``."""
    from export.gate import wilson_interval
    from training.metrics import evaluate_scores

    rows = {}
    full_top = None
    for name, drop in CONDITIONS.items():
        scores = score(masked(windows, drop))
        m = evaluate_scores(scores, t, label_ids, known=k_mask)
        n = m["n_ecgs"]
        row = {"drop": list(drop), "n": n, "top1": m["top1"], "top5": m["top5"], "auroc": m["macro_auroc"]}
        for key in ("top1", "top5"):
            row[f"{key}_ci"] = wilson_interval(int(round(row[key] * n)), n)
        row["auroc_ci"] = _auroc_ci(scores, t, k_mask, boot)
        top = scores.argmax(1)
        full_top = top if full_top is None else full_top
        row["same_top1_as_full"] = float((top == full_top).mean())
        rows[name] = row
        print(
            f"{name}: top1 {row['top1']:.3f} top5 {row['top5']:.3f} auroc {row['auroc']:.3f}", file=sys.stderr
        )
    return rows


def evaluate(bundle_path: Path | None, data: Path, folds: list[int], boot: int) -> dict:
    from edge.bundle.loader import load_bundle
    from training.evaluate import bundle_scores

    bundle = load_bundle(bundle_path)
    windows, t, k_mask = _fold(data, folds, bundle.signal, bundle.label_ids)
    rows = _rows(lambda w: bundle_scores(bundle, w), windows, t, k_mask, bundle.label_ids, boot)
    bundle.close()
    return {"rows": rows, "n_windows": len(windows), "folds": folds}


def evaluate_checkpoint(path: Path, data: Path, folds: list[int], boot: int) -> dict:
    """The same figures for a training checkpoint's fp32 model in torch (to compare training runs)."""
    import torch

    from training.checkpoint import load_checkpoint
    from training.evaluate import score_windows

    torch.set_num_threads(1)
    model, ckpt = load_checkpoint(path)
    from edge.dsp.signal import SignalConfig

    signal = SignalConfig.from_dict(ckpt["signal"])
    label_ids = list(ckpt["label_ids"])
    windows, t, k_mask = _fold(data, folds, signal, label_ids)
    with torch.no_grad():
        rows = _rows(lambda w: score_windows(model, ckpt, w), windows, t, k_mask, label_ids, boot)
    return {"rows": rows, "n_windows": len(windows), "folds": folds}


def render(cmd: str, res: dict, info: dict, bundle_id: str) -> str:
    lines = [
        "## Missing leads: how much the model's scores degrade (`bench/bench_leads.py`)",
        "",
        f"Command: `{cmd}`  ",
        f"Bundle: `{bundle_id}`  ",
        machine_line(info),
        "",
        f"Test fold {','.join(map(str, res['folds']))} of every labelled source, N = {res['n_windows']} windows "
        "(top-1/top-5 over the windows with a known positive label). The unusable leads' rows of the model input "
        "are zeroed, as the runtime does; the int8 encoder's cosine ranking alone (no measurement criteria). "
        '95 % intervals: Wilson (top-1, top-5), bootstrap over windows (macro AUROC). "same top-1" = share of '
        "windows whose top label is the one with all 12 leads.",
        "",
        "| leads | N | top-1 [95 % CI] | top-5 [95 % CI] | macro AUROC [95 % CI] | same top-1 |",
        "|---|---:|---|---|---|---:|",
    ]
    for name, r in res["rows"].items():
        lines.append(
            f"| {name} | {r['n']} | {r['top1']:.3f} [{r['top1_ci'][0]:.2f}–{r['top1_ci'][1]:.2f}] | "
            f"{r['top5']:.3f} [{r['top5_ci'][0]:.2f}–{r['top5_ci'][1]:.2f}] | {r['auroc']:.3f} "
            f"[{r['auroc_ci'][0]:.2f}–{r['auroc_ci'][1]:.2f}] | {r['same_top1_as_full']:.2f} |"
        )
    for name, cres in (res.get("checkpoints") or {}).items():
        lines += [
            "",
            f"Checkpoint `{name}` (fp32, torch; {cres['n_windows']} windows):",
            "",
            "| leads | top-1 [95 % CI] | top-5 [95 % CI] | macro AUROC [95 % CI] |",
            "|---|---|---|---|",
        ]
        for cond, r in cres["rows"].items():
            lines.append(
                f"| {cond} | {r['top1']:.3f} [{r['top1_ci'][0]:.2f}–{r['top1_ci'][1]:.2f}] | "
                f"{r['top5']:.3f} [{r['top5_ci'][0]:.2f}–{r['top5_ci'][1]:.2f}] | {r['auroc']:.3f} "
                f"[{r['auroc_ci'][0]:.2f}–{r['auroc_ci'][1]:.2f}] |"
            )
    if res.get("note"):
        lines += ["", res["note"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "data", help="the real data (../shared/data)"
    )
    p.add_argument("--bundle", type=Path, help="bundle folder or zip (default: the shipped default bundle)")
    p.add_argument("--folds", default="10", help="test folds, comma-separated (default 10)")
    p.add_argument(
        "--boot", type=int, default=200, help="bootstrap resamples for the AUROC interval (default 200)"
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also evaluate a training checkpoint (fp32, torch), e.g. nodrop=runs/a/checkpoint.pt",
    )
    p.add_argument(
        "--note", default="", help="a sentence under the tables (how the checkpoints were trained)"
    )
    p.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true", help="print the section only")
    args = p.parse_args(argv)
    if not (args.data / "ptbxl").is_dir():
        print(f"bench_leads: no data at {args.data} (pass --data)", file=sys.stderr)
        return 1
    from edge.bundle.loader import load_bundle
    from edge.runtime.engine import bundle_id

    with load_bundle(args.bundle) as b:
        bid = bundle_id(b)
    folds = [int(f) for f in args.folds.split(",") if f.strip()]
    res = evaluate(args.bundle, args.data, folds, args.boot)
    res["checkpoints"] = {}
    for item in args.checkpoint:
        name, _, path = str(item).rpartition("=")
        res["checkpoints"][name or Path(path).parent.name] = evaluate_checkpoint(
            Path(path), args.data, folds, args.boot
        )
    res["note"] = args.note
    cmd = "python bench/bench_leads.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = render(cmd.strip(), res, machine(), bid)
    print(section)
    if not args.no_write:
        write_section(args.markdown, "bench_leads", section)
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
