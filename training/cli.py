"""``ecg-train`` and ``ecg-eval``: train and evaluate the contrastive ECG-text model from the command line.

Examples::

    ecg-train --data ptbxl=../shared/data/ptbxl --data ptbxl_processed=../shared/data/ptbxl_processed \\
              --data cinc2021=../shared/data/cinc2021 --out runs/use --holdout-labels IMI,LAFB,...
    ecg-train ... --compare --out runs/compare     # contrastive (frozen / byte-level text) vs supervised
    ecg-eval runs/use/checkpoint.pt --data ptbxl=../shared/data/ptbxl --folds 10
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .train import TrainConfig

__all__ = ["train_main", "eval_main", "parse_folds", "COMPARE_VARIANTS"]

# name -> overrides of TrainConfig for `ecg-train --compare`
COMPARE_VARIANTS = {
    "contrastive-frozen-text": {"model": "contrastive"},
    "contrastive-byte-text": {"model": "contrastive", "text": {"encoder": "byte"}},
    "supervised-baseline": {"model": "supervised"},
}


# What ecg-train and ecg-eval import: the train extra. A board installed with .[edge] has the commands too (one
# package), so they say what to install in one line instead of a ModuleNotFoundError traceback.
TRAIN_MODULES = ("torch", "numpy", "wfdb", "tqdm")


def missing_train_extra(prog: str) -> str | None:
    """The one-line error when the train extra is not installed, else ``None``."""
    missing = []
    for name in TRAIN_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if not missing:
        return None
    return (
        f"{prog}: error: training needs the train extra (missing: {', '.join(missing)}); install it with "
        f"pip install 'ecg-clip-ja[train]' (a board installed with [edge] runs ecg-edge only)"
    )


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """No progress bar is drawn inside: every tqdm bar (ours, the text encoder's) is created disabled, and
    Hugging Face downloads are told so; restored afterwards (tests call ``train_main`` in one process)."""
    os.environ["TQDM_DISABLE"] = "1"  # for tqdm imported later (read when tqdm is imported)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    import tqdm.std

    original = tqdm.std.tqdm.__init__

    def disabled(self, *args, **kwargs) -> None:  # noqa: ANN001
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    tqdm.std.tqdm.__init__ = disabled
    try:
        yield
    finally:
        tqdm.std.tqdm.__init__ = original


def parse_folds(text: str) -> tuple[int, ...]:
    """``"1-8"`` -> ``(1, ..., 8)``; ``"9"``; ``"1,2,3"`` (an argparse type)."""
    out = []
    try:
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-")
                out.extend(range(int(a), int(b) + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError:
        out = []
    if not out or any(f < 0 for f in out):
        raise argparse.ArgumentTypeError(f"bad fold list {text!r} (e.g. 1-8 or 9 or 1,2,3)")
    return tuple(out)


def _train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ecg-train",
        description="Train the contrastive ECG-text model (or the supervised baseline) and evaluate it. "
        "Writes a run folder with checkpoint.pt, metrics.json, per_label.csv and plots.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", action="append", required=True, metavar="KIND=PATH",
                   help="a dataset: ptbxl=DIR, cinc2021=DIR, challenge2020=DIR, ptbxl_processed=DIR or manifest=CSV "
                        "(repeatable; the same ECG in several sources is merged)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--cache", help="prepared-window cache folder (default: <out>/../cache/<key of the inputs>)")
    p.add_argument("--catalogue", metavar="FILE",
                   help='label catalogue JSON: a whole catalogue, or {"extends": "default", "labels": [...]} for '
                        "the shipped 98 plus your own (training/label_catalogue.py)")
    p.add_argument("--model", choices=["contrastive", "supervised"], default="contrastive")
    p.add_argument("--encoder", default="resnet1d18", help="ECG encoder preset: resnet1d18, resnet1d18-small, resnet1d10-tiny")
    p.add_argument("--embed-dim", type=int, default=256)
    p.add_argument("--text-encoder", default="use-m3",
                   help="byte (trainable byte-level) or a frozen encoder: use-m3, e5-small, hashing, hf:DIR")
    p.add_argument("--text-mode", default="ja", help="label texts: ja, ja+desc, ja+en, templates, ja+parents")
    p.add_argument("--text-head", choices=["linear", "none"], default="linear",
                   help="text projection: linear (trained) or none (frozen text space; the ECG encoder maps into it)")
    p.add_argument("--loss", choices=["multi_positive", "clip", "sigmoid"], default="multi_positive",
                   help="clip is the study's symmetric CLIP loss (one positive per ECG); multi_positive uses all labels")
    p.add_argument("--temperature", type=float, default=0.07,
                   help="initial temperature of the contrastive loss (learnable; the study used 0.07)")
    p.add_argument("--positive-order", choices=["uniform", "rarest-first"], default="uniform",
                   help="multi_positive targets over an ECG's labels: uniform (co-occurring labels tie), or "
                        "rarest-first (the rarest, most specific label ranks first: 1度房室ブロック > 房室ブロック > "
                        "伝導障害; keeps the top-1 label stable under int8 rounding)")
    p.add_argument("--priority-ratio", type=float, default=2.0,
                   help="rarest-first: target weight ratio between an ECG's consecutive labels")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--patience", type=int, default=8, help="early stopping patience (epochs)")
    p.add_argument("--max-minutes", type=float, help="wall-clock budget per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-folds", type=parse_folds, default=(1, 2, 3, 4, 5, 6, 7, 8))
    p.add_argument("--val-folds", type=parse_folds, default=(9,))
    p.add_argument("--test-folds", type=parse_folds, default=(10,))
    p.add_argument("--holdout-labels", default="", help="comma-separated label ids or terms kept out of training (zero-shot)")
    p.add_argument("--ptbxl-rate", type=int, choices=[100, 500], default=100)
    p.add_argument("--exclude", default="", metavar="PREFIX,...",
                   help="leave records whose key starts with one of these prefixes out of every fold "
                        "(e.g. challenge2020:E,cinc2021:E: leave the Georgia hospital out)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--lead-dropout", type=_fraction, default=0.1, metavar="P",
                   help="probability per training window of zeroing leads, as the bedside runtime zeroes unusable "
                        "ones (default 0.1; 0 turns it off)")
    p.add_argument("--lead-dropout-patterns", type=_fraction, default=0.0, metavar="F",
                   help="share of the dropped windows zeroed in bedside patterns (arm electrode off on an 8-channel "
                        "device; limb leads inconsistent) instead of 1-3 random leads (default 0)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--skip-bad", action="store_true", help="skip (and count) bad records instead of stopping")
    p.add_argument("--compare", action="store_true",
                   help="train " + ", ".join(COMPARE_VARIANTS) + " into <out>/<name>/ and write <out>/comparison.md")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _fraction(text: str) -> float:
    """A probability 0..1 for argparse (one-line error otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def config_from_args(args) -> TrainConfig:
    from .augment import AugmentConfig
    from .text_side import TextConfig
    from .train import TrainConfig

    holdout = tuple(t.strip() for t in args.holdout_labels.split(",") if t.strip())
    return TrainConfig(
        sources=args.data, out_dir=args.out, cache_dir=args.cache, model=args.model, encoder=args.encoder,
        embed_dim=args.embed_dim, text=TextConfig(encoder=args.text_encoder, mode=args.text_mode, head=args.text_head), loss=args.loss,
        temperature=args.temperature, positive_order=args.positive_order, priority_ratio=args.priority_ratio,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        patience=args.patience, max_minutes=args.max_minutes, seed=args.seed, train_folds=args.train_folds,
        val_folds=args.val_folds, test_folds=args.test_folds, holdout_labels=holdout, ptbxl_rate=args.ptbxl_rate,
        exclude_keys=tuple(t.strip() for t in args.exclude.split(",") if t.strip()),
        augment=AugmentConfig(enabled=not args.no_augment, lead_dropout_p=args.lead_dropout,
                              lead_dropout_patterns=args.lead_dropout_patterns), num_threads=args.threads,
        on_error="skip" if args.skip_bad else "raise", catalogue=args.catalogue,
    )


def _fmt(v) -> str:
    return "–" if v is None or v != v else f"{v:.3f}"


def comparison_table(results: dict[str, dict]) -> str:
    """Markdown table of the headline test metrics of several runs."""
    lines = ["| model | top-1 | top-5 | macro AUROC | new labels top-5 recall | new labels AUROC |", "|---|---|---|---|---|---|"]
    for name, m in results.items():
        new = m.get("new", {})
        lines.append(f"| {name} | {_fmt(m.get('top1'))} | {_fmt(m.get('top5'))} | {_fmt(m.get('macro_auroc'))} | "
                     f"{_fmt(new.get('top5_recall'))} | {_fmt(new.get('macro_auroc'))} |")
    return "\n".join(lines)


def train_main(argv: list[str] | None = None) -> int:
    args = _train_parser().parse_args(argv)
    missing = missing_train_extra("ecg-train")
    if missing:
        print(missing, file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with no_progress_bars() if args.quiet else contextlib.nullcontext():
        return _train(args, argv)


def _train(args: argparse.Namespace, argv: list[str] | None) -> int:
    try:
        from .text_side import TextConfig
        from .train import train

        cfg = config_from_args(args)
        if not args.compare:
            metrics = train(cfg, progress=not args.quiet)
            print(json.dumps({k: v for k, v in metrics.items() if k != "per_label"}, indent=2, ensure_ascii=False))
            return 0
        results = {}
        Path(args.out).mkdir(parents=True, exist_ok=True)
        Path(args.out, "command.txt").write_text("ecg-train " + " ".join(argv if argv is not None else sys.argv[1:]) + "\n", encoding="utf-8")
        cache = args.cache or str(Path(args.out) / "cache")
        for name, overrides in COMPARE_VARIANTS.items():
            text = TextConfig(**{**cfg.text.to_dict(), **overrides.get("text", {})})
            sub = replace(cfg, out_dir=str(Path(args.out) / name), cache_dir=cache, model=overrides["model"], text=text)
            results[name] = train(sub, progress=not args.quiet)
        table = comparison_table(results)
        Path(args.out, "comparison.md").write_text(table + "\n", encoding="utf-8")
        Path(args.out, "comparison.json").write_text(json.dumps(
            {k: {kk: vv for kk, vv in v.items() if kk != "per_label"} for k, v in results.items()}, indent=2), encoding="utf-8")
        print(table)
        return 0
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"ecg-train: error: {exc}", file=sys.stderr)
        return 2


def _eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ecg-eval",
        description="Evaluate a checkpoint on a dataset: top-1, top-5, macro AUROC and a per-label table "
        "(new labels, held out of training, reported separately).",
    )
    p.add_argument("checkpoint", help="checkpoint.pt written by ecg-train, or a bundle (folder or .zip) from ecg-export")
    p.add_argument("--model-key", default="onnx_int8", help="bundle encoder to evaluate: onnx_int8, onnx_fp32, tflite_int8")
    p.add_argument("--data", action="append", required=True, metavar="KIND=PATH", help="dataset(s) to evaluate on")
    p.add_argument("--folds", type=parse_folds, default=(10,), help="folds to evaluate (PTB-XL: 10 = test)")
    p.add_argument("--cache", help="prepared-window cache folder (default: the training run's, read only, when --data is "
                   "its training data; else under ~/.cache/ecg-clip-ja/prepared)")
    p.add_argument("--out", help="write metrics.json and per_label.csv into this folder")
    p.add_argument("--min-n", type=int, default=1, help="only list labels with at least this many ECGs")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--measurements", metavar="CSV",
                   help="write each evaluated window's measurements (計測値: heart rate, PR, QRS, QT/QTc, axis, "
                        "voltages; edge.dsp.measure, as on the device) with its record and labels to this CSV")
    return p


def _write_measurements(path: str, ds, idx) -> None:  # noqa: ANN001 - a PreparedDataset
    """One row per evaluated window: record key, source, fold, start sample, labels, then the measurements."""
    import csv

    import numpy as np

    from .csv_safe import safe_row

    rows = ds.measurements[idx]
    try:
        f = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise ValueError(f"--measurements {path}: cannot write ({exc.strerror or exc})") from None
    with f:
        w = csv.writer(f)
        w.writerow(["record", "source", "fold", "start", "labels", *ds.measurement_keys])
        for i, row in zip(idx, rows, strict=True):
            item = ds.meta["windows"][i]
            values = ["" if not np.isfinite(v) else f"{v:.4g}" for v in row]
            w.writerow(safe_row([item["key"], item["source"], item["fold"], item["start"], ";".join(item["labels"]),
                                 *values]))  # record names are text a spreadsheet must not run (training.csv_safe)
    print(f"ecg-eval: measurements of {len(idx)} windows written to {path}", file=sys.stderr)


def _run_cache(ckpt: dict, sources) -> Path | None:  # noqa: ANN001 - list[Source]
    """The training run's prepared cache when ``sources`` are its data and it still holds them, else None
    (saying why, when the run's cache was meant but cannot be used)."""
    data = ckpt.get("data") or {}
    if not data.get("cache") or [s.describe() for s in sources] != data.get("sources"):
        return None  # other data than the training run's (or an older checkpoint): the per-user cache
    folder = Path(data["cache"])
    try:
        found = json.loads((folder / "meta.json").read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError):
        logging.warning("the training run's prepared cache %s is gone; preparing the data again", folder)
        return None
    if found != data.get("fingerprint"):
        logging.warning("the training run's prepared cache %s now holds other data (fingerprint %s, checkpoint %s); "
                        "preparing the data again", folder, found, data.get("fingerprint"))
        return None
    logging.info("using the training run's prepared windows in %s", folder)
    return folder


def eval_main(argv: list[str] | None = None) -> int:
    args = _eval_parser().parse_args(argv)
    missing = missing_train_extra("ecg-eval")
    if missing:
        print(missing, file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        import numpy as np

        from edge.bundle.loader import MANIFEST_NAME, load_bundle
        from edge.interpret.catalogue import load_catalogue

        from .checkpoint import load_checkpoint
        from .datasets import parse_source
        from .evaluate import evaluate_model, write_per_label_csv
        from .label_catalogue import catalogue_of_checkpoint
        from .prepare import PreparedDataset, Source, default_cache_dir, measurement_dicts, prepare

        target = Path(args.checkpoint)
        is_bundle = (target / MANIFEST_NAME).is_file() or target.suffix == ".zip"
        catalogue = load_catalogue()
        if is_bundle:  # evaluation is no deployment: an unsigned bundle is measured, with the loader's warning
            from edge.bundle.signing import Trust

            bundle = load_bundle(target, trust=Trust.from_config(allow_unsigned=True))
            signal = bundle.signal
        else:
            model, ckpt = load_checkpoint(target)
            catalogue = catalogue_of_checkpoint(ckpt)
            signal = ckpt["signal_config"]
        sources = [Source(*parse_source(s)) for s in args.data]
        run_cache = None if args.cache or is_bundle else _run_cache(ckpt, sources)
        if run_cache is not None:  # the training run's own windows, read only
            ds = PreparedDataset(run_cache)
        else:
            ds = prepare(sources, args.cache or default_cache_dir(sources, signal), signal, catalogue)
        idx = ds.indices(args.folds)
        if len(idx) == 0:
            raise ValueError(f"no labelled windows in folds {args.folds}")
        windows = np.asarray(ds.windows[idx], dtype=np.float32)
        targets = ds.labels[idx].astype(np.float32)
        known = np.asarray(ds.known[idx])  # labels the windows' sources state (training.datasets.known)
        if is_bundle:
            from .evaluate import evaluate_bundle

            meas = measurement_dicts(ds.measurements[idx], ds.measurement_keys)
            with bundle:
                metrics = evaluate_bundle(bundle, windows, targets, catalogue.ids, args.model_key, known, meas)
        else:
            metrics = evaluate_model(model, ckpt, windows, targets, [lb.ja for lb in catalogue.labels], known)
        if args.measurements:
            _write_measurements(args.measurements, ds, idx)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            Path(args.out, "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
            write_per_label_csv(metrics, Path(args.out) / "per_label.csv")
        if args.json:
            print(json.dumps(metrics, indent=2, ensure_ascii=False))
            return 0
        print(format_report(metrics, args.min_n))
        return 0
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"ecg-eval: error: {exc}", file=sys.stderr)
        return 2


def format_report(metrics: dict, min_n: int = 1) -> str:
    """Readable report: headline numbers, then the per-label table sorted by top-5 recall (weak first)."""
    lines = [f"ECGs: {metrics['n_ecgs']}   top-1: {_fmt(metrics['top1'])}   top-5: {_fmt(metrics['top5'])}   "
             f"macro AUROC: {_fmt(metrics['macro_auroc'])}"]
    if "new" in metrics:
        new = metrics["new"]
        lines.append(f"new labels {new['labels']}: top-5 recall {_fmt(new['top5_recall'])}, AUROC {_fmt(new['macro_auroc'])}")
    lines.append(f"\n{'id':<8} {'n':>4} {'top5':>6} {'AUROC':>6}  label")
    rows = [r for r in metrics["per_label"] if r["n"] >= min_n]
    rows.sort(key=lambda r: (r["top5_recall"] if r["top5_recall"] is not None else 2, -r["n"]))
    for r in rows:
        flag = "  [new]" if r["new"] else ""
        lines.append(f"{r['id']:<8} {r['n']:>4} {_fmt(r['top5_recall']):>6} {_fmt(r['auroc']):>6}  {r['name']}{flag}")
    if "decisions" in metrics:  # a bundle: its findings at its thresholds, after the consistency rules
        from .decisions import format_decisions

        lines.append("\nfindings at the bundle's thresholds (after the consistency rules):")
        lines.append(format_decisions(metrics["decisions"], min_n))
    return "\n".join(lines)


if __name__ == "__main__":  # torchrun -m training.cli ... (multi-process training)
    sys.exit(train_main())
