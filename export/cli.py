"""``ecg-export``: turn a trained checkpoint into a bundle for the bedside device (DESIGN.md, contract 6).

Examples::

    ecg-export runs/use/checkpoint.pt --out bundles/ward3
    ecg-export runs/use/checkpoint.pt --out bundles/ward3 --extra-labels hospital_labels.csv --formats onnx,tflite --zip
    ecg-export runs/use/checkpoint.pt --out b --data ptbxl=/data/ptbxl --calib-folds 1-8 --test-folds 10
"""

from __future__ import annotations

import argparse
import logging
import sys

from training.cli import parse_folds

__all__ = ["main", "build_parser"]

DESCRIPTION = """\
Turn a contrastive checkpoint (from ecg-train) into a bundle that the bedside runtime (ecg-edge) loads:

  1. the ECG encoder with BatchNorm folded, exported to fp32 ONNX and checked against torch;
  2. static int8 quantization with onnxruntime (QDQ, per-channel int8 weights), calibrated on real
     windows of the training folds that went through the signal contract;
  3. gate v2, on every window of the validation and test folds, for every int8 model shipped:
     mean embedding cosine vs fp32 >= 0.999; top-1 agreement >= 99% on the decisive windows (fp32
     top-1 margin beyond the measured int8 noise); finding decisions agree on >= 99.5% of (window,
     label) pairs; top-5 accuracy and macro AUROC vs the ground truth drop by at most 0.01. Otherwise
     the export fails (unless --accept-below-gate, which the manifest then records). Strict top-1
     agreement and every changed window are recorded either way (docs/int8-gate.md);
  4. every label's text embedding precomputed (the device runs no text model), plus new labels from
     --extra-labels, embedded by the checkpoint's text encoder without retraining; labels never
     trained (extra, held out, or without a training example) are marked zero_shot;
  5. per-label decision thresholds chosen on the validation folds, fp32 vs int8 accuracy on the test
     folds, single-thread latency;
  6. manifest.json with the sha256 of every file, the signal contract copied from the checkpoint,
     model I/O, quantization numbers and provenance. --formats picks the device models: int8 ONNX
     (onnxruntime, the default), int8 TFLite (LiteRT), or both; each must fit the board's 3 MB.

The data defaults to the checkpoint's own training datasets (their prepared cache is reused).
"""

EPILOG = """\
examples:
  ecg-export runs/use/checkpoint.pt --out bundles/ward3
  ecg-export runs/use/checkpoint.pt --out bundles/ward3 --extra-labels new_labels.csv --zip
  ecg-export runs/use/checkpoint.pt --out bundles/ward3-litert --formats tflite
  ecg-export ckpt.pt --out b --data ptbxl=/data/ptbxl --data manifest=ours.csv --test-folds 10

--extra-labels: CSV (header: id,ja,en[,category,parents,description_ja]; lists separated by ';')
or JSON (a list of such objects). New labels are marked "new" and "zero_shot" in the bundle;
description_ja becomes part of the label's text only if the checkpoint's text mode is ja+desc.

signing: every bundle is signed, with --sign-key or this machine's local key; make a hospital key with
  ecg-export keygen --out ~/keys/ward3      (private key mode 0600, never inside a repository)
and install ~/keys/ward3.pub on each board with `ecg-edge trust add ward3.pub` (docs/deploy.md).

exit status: 0 bundle written, 2 bad input or failed step, 3 a quantized model failed the gate."""


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1")
    return value


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip() and p.strip() != "none")
    bad = [p for p in parts if p not in ("input", "head")]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown part(s) {bad}: use input, head, input,head or none")
    return parts


def _formats(text: str) -> tuple[str, ...]:
    from .formats import parse_formats
    from .onnx_export import ExportError

    try:
        return parse_formats(text)
    except ExportError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ecg-export", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="checkpoint.pt written by ecg-train (a contrastive model)")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--zip", action="store_true", help="also write BUNDLE.zip (ecg-edge loads either)")
    p.add_argument("--name", help="bundle name shown by ecg-edge info (default: the run folder's name)")
    p.add_argument("--sign-key", metavar="KEY", help="sign the manifest with this Ed25519 private key (from "
                   "ecg-export keygen; default: this machine's own key, made on first use under "
                   "~/.config/ecg-clip-ja/export_key and trusted here). Devices load only bundles signed by a key "
                   "they trust (ecg-edge trust add KEY.pub)")
    g = p.add_argument_group("data (calibration, thresholds, gate)")
    g.add_argument("--data", action="append", default=[], metavar="KIND=PATH",
                   help="a dataset: ptbxl=DIR, cinc2021=DIR, ptbxl_processed=DIR or manifest=CSV (repeatable; "
                   "default: the checkpoint's training datasets)")
    g.add_argument("--cache", help="prepared-window cache folder (default: the training run's cache, read only, if it "
                   "still matches the checkpoint, else the per-user cache under ~/.cache/ecg-clip-ja/prepared "
                   "shared with ecg-eval; $ECG_CLIP_CACHE moves it)")
    g.add_argument("--calib-folds", type=parse_folds, help="calibration folds (default: the checkpoint's training folds)")
    g.add_argument("--val-folds", type=parse_folds, default=(9,), help="folds for the thresholds (default: 9)")
    g.add_argument("--test-folds", type=parse_folds, default=(10,), help="folds for the gate and metrics (default: 10)")
    g.add_argument("--calib-windows", type=_positive_int, default=256, help="calibration windows (default: 256)")
    g.add_argument("--max-eval-windows", type=_positive_int, help="cap on validation and test windows (default: all)")
    q = p.add_argument_group("quantization and gate")
    q.add_argument("--activations", choices=["uint8", "int8", "auto"], default="uint8",
                   help="int8 ONNX activation type; auto measures both here and keeps the faster that passes "
                   "(default: uint8, 3-6x faster than int8 on x86-64 in our measurements)")
    q.add_argument("--calibrate-method", choices=["auto", "minmax", "percentile", "entropy"], default="auto",
                   help="onnxruntime calibration method; auto quantizes with minmax and percentile and keeps the one "
                   "that agrees best with fp32 on the validation folds (default: auto)")
    q.add_argument("--fp32-layers", type=_parts, default=("input", "head"), metavar="PARTS",
                   help="int8 ONNX parts kept in fp32: input (first conv), head (projection + L2 norm), both "
                   "comma-separated, or none for every layer in int8 (default: input,head)")
    q.add_argument("--min-agreement", type=_fraction, default=0.99,
                   help="gate: minimum top-1 label agreement int8 vs fp32 on the decisive windows, those whose "
                   "fp32 top-1 margin exceeds the measured int8 noise (default: 0.99)")
    q.add_argument("--min-cosine", type=_fraction, default=0.999,
                   help="gate: minimum mean embedding cosine int8 vs fp32 (default: 0.999)")
    q.add_argument("--min-finding-agreement", type=_fraction, default=0.995,
                   help="gate: minimum agreement of the per-(window, label) finding decisions int8 vs fp32 "
                   "(default: 0.995)")
    q.add_argument("--max-accuracy-loss", type=_fraction, default=0.01,
                   help="gate: most top-5 accuracy and macro AUROC (vs the ground truth) int8 may lose against fp32 "
                   "(default: 0.01; on N labelled windows one window is 1/N of top-5 accuracy)")
    q.add_argument("--accept-below-gate", action="store_true",
                   help="write the bundle even if a quantized model fails the gate (recorded in the manifest)")
    c = p.add_argument_group("contents")
    c.add_argument("--extra-labels", metavar="FILE", help="CSV or JSON of new labels to add without retraining")
    c.add_argument("--formats", type=_formats, default=("onnx",), metavar="onnx|tflite|onnx,tflite",
                   help="device models to ship: int8 ONNX for onnxruntime, int8 TFLite for LiteRT (needs the "
                   "tflite extra), or both; each passes the gate and fits the 3 MB budget (default: onnx)")
    c.add_argument("--fp32", action="store_true",
                   help="also ship the fp32 ONNX encoder, for comparisons (no device needs it; bigger bundle)")
    c.add_argument("--latency-runs", type=int, default=200, help="single-window runs per latency figure (0: skip)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling windows")
    p.add_argument("--quiet", action="store_true", help="no progress bars, only warnings and the summary")
    return p


def _gate_line(key: str, q: dict) -> str:
    """One line of gate v2 figures for a format's quantization section."""
    d, f = q.get("decisive") or {}, q.get("findings") or {}
    loss = (q.get("accuracy") or {}).get("loss") or {}

    def num(v, fmt: str = ".4f") -> str:  # noqa: ANN001
        return "-" if v is None else format(v, fmt)

    state = "passed" if q["passed"] else "BELOW GATE (accepted)"
    return (f"{key:<11} gate v2 {state} on {q['n_windows']} windows: cosine {q['cosine_mean']:.5f}; top-1 "
            f"{num(d.get('agreement'))} on {d.get('windows')} decisive (strict {q['agreement_top1']:.4f}, "
            f"{len(q.get('changed_windows', []))} changed); findings {num(f.get('agreement'))}; loss top-5 "
            f"{num(loss.get('top5'))}, AUROC {num(loss.get('macro_auroc'))}")


def _summary(result) -> str:  # noqa: ANN001 - export.pipeline.ExportResult
    m = result.manifest
    q, met = m["quantization"], m["metrics"]
    lat = met.get("latency_ms_per_window") or {}

    def pct(v) -> str:  # noqa: ANN001
        return "-" if v is None else f"{v:.3f}"

    sizes = ", ".join(f"{k} {v / 2**20:.2f} MB" for k, v in result.format_bytes.items())
    lines = [f"bundle   {result.folder}  ({result.size_bytes / 2**20:.2f} MB, {len(m['files'])} files; per format: "
             f"{sizes})"]
    if result.zip_path:
        lines.append(f"zip      {result.zip_path}")
    zero = [lb["id"] for lb in m["labels"] if lb.get("zero_shot")]
    lines.append(f"labels   {len(m['labels'])} ({sum(1 for lb in m['labels'] if lb['new'])} new; {len(zero)} zero-shot"
                 + (f": {', '.join(zero[:12])}{' ...' if len(zero) > 12 else ''}" if zero else "") + ")")
    sections = {q.get("format", "onnx_int8"): q}
    if "tflite" in q:
        sections["tflite_int8"] = q["tflite"]
    lines += [_gate_line(k, s) for k, s in sections.items()]
    for key in ("onnx_fp32", "onnx_int8", "tflite_int8"):
        if key in met:
            a = met[key]
            lines.append(f"{key:<11} top-1 {pct(a['top1'])}  top-5 {pct(a['top5'])}  macro AUROC {pct(a['macro_auroc'])}"
                         f"  new-label top-5 recall {pct(a['new_top5_recall'])}"
                         + (f"  latency {lat[key]:.3f} ms" if lat.get(key) is not None else ""))
    lines += [f"warning  {w}" for w in result.warnings]
    return "\n".join(lines)


def keygen_main(argv: list[str]) -> int:
    """``ecg-export keygen --out KEY``: a new Ed25519 key pair for signing bundles."""
    p = argparse.ArgumentParser(
        prog="ecg-export keygen",
        description="Write a new Ed25519 key pair: KEY (private, PEM, mode 0600: keep it on the export machine, "
        "never on a device, never in a repository) and KEY.pub (public: install it on each device with "
        "ecg-edge trust add KEY.pub). Sign bundles with ecg-export --sign-key KEY.",
        epilog="example:  ecg-export keygen --out ~/keys/ward3 --comment 'ward 3 export key'")
    p.add_argument("--out", required=True, metavar="KEY", help="private key file to write (KEY.pub too)")
    p.add_argument("--comment", default="", help="a note stored in the public key file")
    args = p.parse_args(argv)
    from .signing import SigningError, generate_keypair

    try:
        private, public, key_id = generate_keypair(args.out, args.comment)
    except SigningError as exc:
        print(f"ecg-export keygen: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"private key {private} (keep it secret, off devices)\npublic key  {public} (key id {key_id}): "
          "install it on devices with ecg-edge trust add")
    return 0


def redecide_main(argv: list[str]) -> int:
    """``ecg-export redecide BUNDLE ...``: new rules, thresholds or weight without retraining (export.redecide)."""
    from .redecide import redecide_main as run

    return run(argv)


SUBCOMMANDS = {"keygen": keygen_main, "redecide": redecide_main}  # ecg-export SUBCOMMAND ...; else a checkpoint


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("export").setLevel(logging.WARNING if args.quiet else logging.INFO)
    for noisy in ("torch.onnx", "torchao", "jax", "absl"):  # third-party chatter that is not about this export
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from .gate import Gate, GateError
    from .onnx_export import ExportError
    from .pipeline import ExportConfig, export_bundle

    cfg = ExportConfig(
        checkpoint=args.checkpoint, out=args.out, data=args.data, cache=args.cache, calib_folds=args.calib_folds,
        val_folds=args.val_folds, test_folds=args.test_folds, calib_windows=args.calib_windows,
        max_eval_windows=args.max_eval_windows, activations=args.activations, calibrate_method=args.calibrate_method,
        keep_fp32=args.fp32_layers,
        gate=Gate(min_cosine_mean=args.min_cosine, min_decisive_agreement=args.min_agreement,
                  min_finding_agreement=args.min_finding_agreement,
                  max_top5_loss=args.max_accuracy_loss, max_auroc_loss=args.max_accuracy_loss),
        accept_below_gate=args.accept_below_gate,
        extra_labels=args.extra_labels, formats=args.formats, fp32=args.fp32, zip=args.zip, name=args.name,
        latency_runs=max(0, args.latency_runs), seed=args.seed, overwrite=args.force, progress=not args.quiet)
    try:
        from .bundle_writer import check_sign_key
        from .signing import SigningError, local_key

        try:
            cfg.sign_key = str(args.sign_key or local_key())
        except SigningError as exc:
            raise ExportError(str(exc)) from None
        check_sign_key(cfg.sign_key)  # before the long export, not after it
        result = export_bundle(cfg)  # signed in its work folder, then swapped into place
    except (ExportError, OSError) as exc:
        logging.getLogger("export").debug("export failed", exc_info=True)
        message = " ".join(str(exc).split())  # one line, whatever the underlying tool printed
        if len(message) > 800:
            message = message[:800] + " ..."
        print(f"ecg-export: error: {message}", file=sys.stderr)
        return 3 if isinstance(exc, GateError) else 2
    except KeyboardInterrupt:
        print("ecg-export: interrupted", file=sys.stderr)
        return 130
    print(_summary(result) + (f"\nsigned   manifest.sig, key {result.key_id}" if result.key_id else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
