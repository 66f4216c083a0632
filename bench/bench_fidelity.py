"""int8 vs fp32 top-1 agreement across training checkpoints, for BENCHMARKS.md (section ``bench_fidelity``).

For every checkpoint given, the ECG encoder is exported and quantized exactly as ``ecg-export`` does by
default (static QDQ, uint8 activations, int8 per-channel weights, min-max calibration on 256 training
windows, first conv and projection head in fp32), and the int8 encoder is compared with its fp32 ONNX
on the validation fold, the test fold (the gate's windows) and up to 600 training windows:

- the counted strict top-1 agreement and mean embedding cosine per split;
- from :func:`export.gate.near_ties` on all of them together: the share of windows whose fp32 top-1
  margin lies within the int8 noise, the expected rate of top-1 changes, and the probability that a
  model with that rate would pass a strict 99 % top-1 gate on a test fold of the gate's size;
- the int8 gate v2 (:func:`export.gate.measure`, DESIGN.md contract 3) as ``ecg-export`` applies it, on
  the validation and test windows with thresholds chosen on the int8 validation scores: top-1 agreement
  on the decisive windows, finding-decision agreement, top-5 / AUROC loss, and whether it passes.

It answers whether a training choice (temperature, how co-occurring labels share the target, ...)
makes the top-1 label robust to int8, with more windows than the 119 of the gate.

Usage: ``python bench/bench_fidelity.py runs/default/checkpoint.pt runs/other/checkpoint.pt ...``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from report import REPO, machine, machine_line, write_section  # bench/report.py, beside this script


def measure(checkpoint: Path, train_windows: int = 600, seed: int = 5) -> dict:
    from edge.interpret.catalogue import load_catalogue
    from export.data import load_export_windows, training_cache
    from export.gate import Gate, agreement, measure, near_ties
    from export.labels import build_label_set
    from export.onnx_export import encoder_for_export, export_onnx
    from export.pipeline import embed_onnx
    from export.quantize import FP32_PARTS, QuantSettings, quantize_onnx
    from export.thresholds import label_thresholds
    from training.checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(checkpoint)
    catalogue = load_catalogue()
    w = load_export_windows(ckpt, checkpoint, catalogue, progress=False)
    labels = build_label_set(model, ckpt, catalogue)
    emb = labels.embeddings
    splits = {"validation": (w.val_x, w.val_y), "test": (w.test_x, w.test_y)}
    ds = training_cache(ckpt, checkpoint)
    if ds is not None:
        idx = ds.indices(list((ckpt.get("data") or {}).get("train_folds") or range(1, 9)))
        idx = np.sort(np.random.default_rng(seed).choice(idx, min(train_windows, len(idx)), replace=False))
        splits["training"] = (np.asarray(ds.windows[idx], dtype=np.float32), ds.labels[idx])
    out: dict = {"checkpoint": str(checkpoint), "splits": {}}
    with tempfile.TemporaryDirectory(prefix="bench-fidelity-") as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_onnx(encoder_for_export(model, ckpt), fp32, w.test_x[:2])
        quantize_onnx(fp32, int8, w.calib, QuantSettings("uint8", calibrate_method="minmax", keep_fp32=FP32_PARTS))
        refs, quants = [], []
        for name, (x, y) in splits.items():
            ref, q = embed_onnx(fp32, x, False, ""), embed_onnx(int8, x, False, "")
            a = agreement(ref, q, emb)
            top1 = float(np.mean(y[np.arange(len(y)), (ref @ emb.T).argmax(1)] > 0))
            out["splits"][name] = {"windows": len(x), "agreement": a["agreement_top1"], "cosine": a["cosine_mean"],
                                   "changes": len(a["disagreements"]), "fp32_top1_accuracy": top1}
            refs.append(ref)
            quants.append(q)
        # Gate v2 as ecg-export applies it: validation + test windows, thresholds on the int8 validation scores.
        thresholds, _ = label_thresholds(quants[0] @ emb.T, w.val_y, w.val_known)
        gate = measure(np.concatenate(refs[:2]), np.concatenate(quants[:2]), emb, thresholds,
                       np.concatenate([w.val_y, w.test_y]), labels.ids, labels.new_ids)
        passed, _ = Gate().check(gate)
        out["gate_v2"] = {"passed": passed, "windows": gate["n_windows"], "decisive": gate["decisive"],
                          "findings": gate["findings"]["agreement"], "loss": gate["accuracy"]["loss"]}
    out["near_ties"] = near_ties(np.concatenate(refs), np.concatenate(quants), emb, gate_windows=len(w.test_x))
    train = ckpt.get("train_config") or {}
    order = ckpt.get("positive_order") or {}
    out["training"] = {"temperature": ckpt.get("init_temperature", 0.07), "learned_scale": float(model.scale()),
                       "positive_order": order.get("order", "uniform"), "ratio": order.get("ratio"),
                       "loss": ckpt.get("loss"), "encoder": train.get("encoder"), "seed": train.get("seed")}
    out["test_auroc"] = ((ckpt.get("metrics") or {}).get("test") or {}).get("macro_auroc")
    return out


def render(cmd: str, results: list[dict]) -> str:
    lines = [
        "## int8 fidelity across training choices (`bench/bench_fidelity.py`)",
        "",
        f"Command: `{cmd}`  ",
        machine_line(machine()),
        "",
        "Each checkpoint quantized as `ecg-export` does by default; strict int8 vs fp32 top-1 agreement "
        "(changes / windows) on the validation fold, the test fold and training "
        "windows; the last three columns pool all of them (`export.gate.near_ties`). The runs differ from "
        "`scripts/build_default_bundle.sh` only in `ecg-train --seed`, `--temperature`, `--positive-order` "
        "and `--priority-ratio`.",
        "",
        "Gate v2 columns: the int8 gate as `ecg-export` applies it (validation + test windows): top-1 agreement "
        "on the decisive windows (changes / decisive windows), finding-decision agreement, top-5 / AUROC lost "
        "against fp32, passed.",
        "",
        "| checkpoint | seed | temperature (learned 1/scale) | targets over an ECG's labels | fp32 top-1, test | macro AUROC, test "
        "| validation | test | training | cosine | within int8 noise | expected change rate | P(strict gate passes) "
        "| gate v2: decisive top-1 | findings | top-5 / AUROC lost | passed |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        t, s, tr = r["near_ties"], r["splits"], r["training"]
        order = tr["positive_order"] + (f" (ratio {tr['ratio']:g})" if tr.get("ratio") else "")

        def cell(name: str, s: dict = s) -> str:
            if name not in s:
                return "–"
            return f"{s[name]['agreement'] * 100:.1f} % ({s[name]['changes']}/{s[name]['windows']})"

        cos = np.mean([v["cosine"] for v in s.values()])
        auroc = "–" if r.get("test_auroc") is None else f"{r['test_auroc']:.3f}"
        lines.append(
            f"| `{Path(r['checkpoint']).parent.name}` | {tr.get('seed')} | {tr['temperature']:g} ({1 / tr['learned_scale']:.3f}) | {order} | "
            f"{s['test']['fp32_top1_accuracy']:.3f} | {auroc} | {cell('validation')} | {cell('test')} | {cell('training')} | "
            f"{cos:.5f} | {t['within_noise'] * 100:.1f} % | {t['expected_change_rate'] * 100:.2f} % | "
            f"{t['p_pass_strict']['probability'] * 100:.0f} % | {_gate_cells(r.get('gate_v2'))} |")
    best = min(results, key=lambda r: r["near_ties"]["expected_change_rate"])
    gate = best["near_ties"]["p_pass_strict"]
    needed = rate_for_pass(gate["windows"], gate["allowed_changes"], 0.95)
    lines += [
        "",
        f"A strict 99 % gate on {gate['windows']} test windows (at most {gate['allowed_changes']} change) passes "
        f"with 95 % probability only at an expected change rate of {needed * 100:.2f} % or less; the lowest "
        f"measured here is {best['near_ties']['expected_change_rate'] * 100:.2f} % "
        f"(`{Path(best['checkpoint']).parent.name}`).",
    ]
    return "\n".join(lines)


def _gate_cells(g: dict | None) -> str:
    if not g:
        return "– | – | – | –"
    d, loss = g["decisive"], g["loss"]

    def num(v) -> str:  # noqa: ANN001
        return "–" if v is None else f"{v:.3f}"

    agree = "–" if d["agreement"] is None else f"{d['agreement'] * 100:.1f} %"
    return (f"{agree} ({d['changes']}/{d['windows']}) | {num(g['findings'])} | {num(loss['top5'])} / "
            f"{num(loss['macro_auroc'])} | {'yes' if g['passed'] else 'no'}")


def rate_for_pass(windows: int, allowed: int, probability: float) -> float:
    """The change rate at which at most ``allowed`` of ``windows`` change with ``probability`` (bisection)."""
    from export.gate import pass_probability

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pass_probability(windows, allowed, mid) >= probability else (lo, mid)
    return lo


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", type=Path, help="checkpoint.pt files written by ecg-train")
    p.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    missing = [str(c) for c in args.checkpoints if not c.is_file()]
    if missing:
        print(f"bench_fidelity: no such checkpoint: {', '.join(missing)}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    results = [measure(c) for c in tqdm(args.checkpoints, desc="checkpoints", unit="ckpt")]
    cmd = "python bench/bench_fidelity.py " + " ".join(argv if argv is not None else sys.argv[1:])
    body = render(cmd.strip(), results)
    print(body)
    if not args.no_write:
        write_section(args.markdown, "bench_fidelity", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
