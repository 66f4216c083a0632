"""Accuracy and fidelity of a bundle on the real data, for BENCHMARKS.md (section ``bench_accuracy``).

- the bundle's int8 encoder on the test fold (PTB-XL fold 10 of every labelled source): top-1, top-5,
  macro AUROC, mean per-label top-5 recall (the device's own path: prepared windows -> onnxruntime);
- fidelity: int8 vs the fp32 model on the top-1 label and the embedding cosine, recomputed here against
  the training checkpoint in torch (``--checkpoint``), over every labelled window of all folds;
- bundle size;
- the comparison table of an ``ecg-train --compare`` run (contrastive vs supervised, frozen vs
  byte-level text, zero-shot new labels), read from its ``comparison.json``.

Usage: ``python bench/bench_accuracy.py --data ../shared/data [--checkpoint runs/default/checkpoint.pt]
[--compare runs/compare]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from report import REPO, machine, machine_line, write_section  # bench/report.py, beside this script

SOURCES = ("ptbxl", "ptbxl_processed", "cinc2021", "challenge2020")  # as scripts/build_default_bundle.sh


def _fmt(v) -> str:
    return "–" if v is None or v != v else f"{v:.3f}"


def plot_margins(fp32: np.ndarray, emb8: np.ndarray, embeddings: np.ndarray, ties: dict, path: Path) -> Path | None:
    """Histogram of the fp32 top-1 margins, the windows whose top-1 changed in int8, and the noise level."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    s32, s8 = fp32 @ embeddings.T, emb8 @ embeddings.T
    top = np.sort(s32, axis=1)
    margin = np.maximum(top[:, -1] - top[:, -2], 1e-6)
    changed = s8.argmax(1) != s32.argmax(1)
    bins = np.logspace(-5, 0, 51)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    ax.hist(margin[~changed], bins=bins, color="#8fb3d9", label="same top-1 label in int8")
    ax.hist(margin[changed], bins=bins, color="#d9534f", label=f"top-1 changed in int8 ({int(changed.sum())})")
    for key, style in (("p95", ":"), ("p99", "--")):
        ax.axvline(ties["noise_abs_quantiles"][key], color="k", ls=style, lw=1, label=f"int8 noise {key}")
    ax.set_xscale("log")
    ax.set_xlabel("fp32 score margin between the top-1 label and the runner-up (cosine)")
    ax.set_ylabel("windows")
    inside = int(np.sum(margin[changed] <= ties["noise_abs_quantiles"]["p99"]))
    ax.set_title(f"{len(margin)} windows: {inside} of {int(changed.sum())} top-1 changes within the int8 noise (p99)")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate(bundle_path: Path | None, data: Path, folds: list[int], checkpoint: Path | None,
             plot: Path | None = None) -> dict:
    from edge.bundle.loader import load_bundle
    from edge.interpret.catalogue import load_catalogue
    from training.evaluate import evaluate_bundle
    from training.prepare import Source, default_cache_dir, measurement_dicts, prepare

    bundle = load_bundle(bundle_path)
    catalogue = load_catalogue()
    sources = [Source(kind, data / kind) for kind in SOURCES]
    ds = prepare(sources, default_cache_dir(sources, bundle.signal), bundle.signal, catalogue, progress=False)
    idx = ds.indices(folds)
    windows = np.asarray(ds.windows[idx], dtype=np.float32)
    meas = measurement_dicts(ds.measurements[idx], ds.measurement_keys)
    metrics = evaluate_bundle(bundle, windows, ds.labels[idx].astype(np.float32), catalogue.ids,
                              known=np.asarray(ds.known[idx]), measurements=meas)
    out = {"metrics": metrics, "n_windows": len(idx), "bundle_bytes": sum(f["bytes"] for f in bundle.manifest["files"].values()),
           "files": {k: v["bytes"] for k, v in bundle.manifest["files"].items()}, "manifest": bundle.manifest}
    if checkpoint is not None:
        import torch

        from training.checkpoint import load_checkpoint
        from training.evaluate import embed_windows

        torch.set_num_threads(1)
        model, ckpt = load_checkpoint(checkpoint)
        every = np.asarray(ds.windows[ds.indices()], dtype=np.float32)
        from edge.runtime.backends import get_backend

        fp32 = embed_windows(model.encode_ecg, every)
        net = get_backend("onnx", bundle.model_path("onnx_int8"), threads=1)
        emb8 = np.concatenate([net(every[i : i + 64]) for i in range(0, len(every), 64)])
        net.close()
        top8, top32 = (emb8 @ bundle.embeddings.T).argmax(1), (fp32 @ bundle.embeddings.T).argmax(1)
        cos = (emb8 * fp32).sum(axis=1) / np.linalg.norm(emb8, axis=1) / np.linalg.norm(fp32, axis=1)
        from export.gate import near_ties

        ties = near_ties(fp32, emb8, bundle.embeddings, gate_windows=len(idx))
        out["fidelity"] = {"windows": len(every), "top1_agreement": float((top8 == top32).mean()),
                           "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "near_ties": ties}
        if plot is not None:
            out["fidelity"]["plot"] = plot_margins(fp32, emb8, bundle.embeddings, ties, plot)
    bundle.close()
    return out


def render(cmd: str, res: dict, compare: dict | None, compare_cmd: str | None) -> str:
    m, man = res["metrics"], res["manifest"]
    q = man["quantization"]
    lines = [
        "## Accuracy and fidelity (`bench/bench_accuracy.py`)",
        "",
        f"Command: `{cmd}`  ",
        machine_line(machine()),
        "",
        f"Bundle `{man.get('name', '?')}` (int8 ONNX, {q.get('activation_type', '?')} activations / "
        f"{q.get('weight_type', '?')} per-channel weights), {res['bundle_bytes'] / 1e6:.2f} MB in "
        f"{len(res['files'])} files; evaluated on {res['n_windows']} labelled windows of the test fold through "
        "onnxruntime, as on the device:",
        "",
        "| metric | value |",
        "|---|---:|",
        f"| top-1 accuracy | {_fmt(m['top1'])} |",
        f"| top-5 accuracy | {_fmt(m['top5'])} |",
        f"| macro AUROC | {_fmt(m['macro_auroc'])} |",
        f"| mean per-label top-5 recall (filtered) | {_fmt(m.get('mean_label_top5_recall'))} |",
        f"| bundle size | {res['bundle_bytes'] / 1e6:.2f} MB |",
    ]
    if "fidelity" in res:
        f = res["fidelity"]
        lines += [
            f"| int8 vs fp32 (torch) top-1 label agreement, {f['windows']} windows of all folds | {f['top1_agreement'] * 100:.2f} % |",
            f"| int8 vs fp32 embedding cosine, mean / min | {f['cosine_mean']:.5f} / {f['cosine_min']:.5f} |",
        ]
        t = f.get("near_ties")
    else:
        t = None
    lines += [
        f"| export gate (fp32 ONNX vs int8, test fold, at `ecg-export`) | agreement {q.get('agreement_top1', float('nan')) * 100:.2f} %, "
        f"cosine {q.get('cosine_mean', float('nan')):.5f}, passed: {q.get('passed')} |",
    ]
    if t:
        lo, hi = t["agreement_ci95"]
        pp = t.get("p_pass_strict") or {}
        lines += [
            "", "Where int8 can change a top-1 label: a window can only change its top-1 label in int8 when "
            "its fp32 margin (top-1 score minus runner-up) is within the int8 noise on that difference "
            "(`export.gate.near_ties`, same windows as above):", "",
            "| quantity | value |", "|---|---:|",
            f"| top-1 agreement, 95 % interval | {lo * 100:.1f} – {hi * 100:.1f} % |",
            f"| int8 noise on the top-2 score difference, median / p95 / p99 | {t['noise_abs_quantiles']['p50']:.4f} / "
            f"{t['noise_abs_quantiles']['p95']:.4f} / {t['noise_abs_quantiles']['p99']:.4f} |",
            "| fp32 margins, p1 / p5 / p10 / median | " + " / ".join(f"{t['margin_quantiles'][k]:.4f}" for k in ("p1", "p5", "p10", "p50")) + " |",
            f"| windows whose fp32 margin is within the int8 noise (p99) | {t['within_noise'] * 100:.1f} % |",
            f"| top-1 agreement on all other windows | {t['agreement_beyond_noise'] * 100:.2f} % |",
            f"| expected top-1 change rate (margins x pooled noise) | {t['expected_change_rate'] * 100:.2f} % |",
        ]
        if pp:
            lines.append(f"| probability that a strict 99 % gate on {pp['windows']} test windows (at most "
                         f"{pp['allowed_changes']} change) passes at that rate | {pp['probability'] * 100:.0f} % |")
        if res.get("fidelity", {}).get("plot"):
            rel = Path(res["fidelity"]["plot"]).resolve().relative_to(REPO)
            lines += ["", f"![fp32 margins and int8 top-1 changes]({rel.as_posix()})"]
    if compare:
        lines += ["", "Contrastive vs supervised baseline, text encoders, and new labels (zero-shot) on the test fold:", "",
                  f"Command: `{compare_cmd}`", "",
                  "| model | top-1 | top-5 | macro AUROC | mean label top-5 recall | new labels top-5 recall, strict (filtered / raw) | new labels top-5 recall, superset | new labels AUROC |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in compare.items():
            new = r.get("new", {})
            lines.append(f"| {name} | {_fmt(r.get('top1'))} | {_fmt(r.get('top5'))} | {_fmt(r.get('macro_auroc'))} | "
                         f"{_fmt(r.get('mean_label_top5_recall'))} | {_fmt(new.get('top5_recall'))} / {_fmt(new.get('top5_recall_raw'))} | "
                         f"{_fmt(new.get('top5_recall_superset'))} | {_fmt(new.get('macro_auroc'))} |")
        labels = next((r["new"]["labels"] for r in compare.values() if r.get("new")), [])
        if labels:
            lines += ["", f"New labels (held out of training entirely): {', '.join(labels)}. Strict: the label itself in the "
                      "top 5; superset: the label or one of its parents in the catalogue (e.g. 心筋梗塞 for 下壁心筋梗塞) in the "
                      "top 5, as the reference study counted new labels."]
    return "\n".join(lines)


def seed_table(compare: Path | None, seeds: Path) -> list[str]:
    """Mean and standard deviation over seeds of each variant (``<variant>-s<seed>`` run folders; seed 0
    is the ``--compare`` run's own folder)."""
    runs: dict[str, list[dict]] = {}
    for folder in sorted(seeds.glob("*-s*")):
        variant = folder.name.rsplit("-s", 1)[0]
        if (folder / "metrics.json").is_file():
            runs.setdefault(variant, []).append(json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["test"])
    for variant in list(runs):
        if compare is not None and (compare / variant / "metrics.json").is_file():
            runs[variant].insert(0, json.loads((compare / variant / "metrics.json").read_text(encoding="utf-8"))["test"])
    if not runs:
        return []

    def ms(values) -> str:
        values = [v for v in values if v is not None and v == v]
        return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else (_fmt(values[0]) if values else "–")

    lines = ["", f"The same comparison over seeds (mean ± sd; runs in `{seeds}`, seed 0 from the run above):", "",
             "| model | seeds | top-1 | top-5 | macro AUROC | new labels top-5 recall | new labels AUROC |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for variant, rs in runs.items():
        lines.append(f"| {variant} | {len(rs)} | {ms([r['top1'] for r in rs])} | {ms([r['top5'] for r in rs])} | "
                     f"{ms([r['macro_auroc'] for r in rs])} | {ms([r.get('new', {}).get('top5_recall') for r in rs])} | "
                     f"{ms([r.get('new', {}).get('macro_auroc') for r in rs])} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, help="bundle (default: the shipped default bundle)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="folder with ptbxl/, ptbxl_processed/, cinc2021/")
    p.add_argument("--folds", default="10", help="test folds (default 10)")
    p.add_argument("--checkpoint", type=Path, help="training checkpoint for the int8 vs fp32 (torch) fidelity check")
    p.add_argument("--compare", type=Path, help="an `ecg-train --compare` run folder (comparison.json, command.txt)")
    p.add_argument("--seeds", type=Path, help="folder of runs of the compared variants with other seeds (<variant>-s<seed>)")
    p.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    p.add_argument("--plot", type=Path, default=REPO / "bench" / "fidelity_margins.png",
                   help="where to save the plot of fp32 margins and int8 top-1 changes (with --checkpoint)")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    if not (args.data / "ptbxl").is_dir():
        print(f"bench_accuracy: no data at {args.data}", file=sys.stderr)
        return 2
    folds = [int(f) for f in args.folds.split(",")]
    res = evaluate(args.bundle, args.data, folds, args.checkpoint, None if args.no_write else args.plot)
    compare, compare_cmd = None, None
    if args.compare:
        compare = json.loads((args.compare / "comparison.json").read_text(encoding="utf-8"))
        cmd_file = args.compare / "command.txt"
        compare_cmd = cmd_file.read_text(encoding="utf-8").strip() if cmd_file.is_file() else "ecg-train --compare ..."
    cmd = "python bench/bench_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    body = render(cmd.strip(), res, compare, compare_cmd)
    if args.seeds:
        body += "\n" + "\n".join(seed_table(args.compare, args.seeds))
    print(body)
    if not args.no_write:
        write_section(args.markdown, "bench_accuracy", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
