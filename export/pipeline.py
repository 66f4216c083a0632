"""Checkpoint -> bundle, step by step (``ecg-export``; DESIGN.md, contract 3).

1. Load the checkpoint; take its ECG tower with BatchNorm folded (contrastive checkpoints only).
2. Label rows: the catalogue's text embeddings through the trained text tower, plus ``extra_labels``.
3. Real windows through the signal contract: calibration (training folds), validation, test.
4. fp32 ONNX, checked against torch; static int8 QDQ with onnxruntime, calibrated on real windows.
5. The gate: int8 vs fp32 top-1 label agreement and embedding cosine on the test windows.
6. Per-label thresholds on the int8 model's validation scores; fp32 and int8 accuracy on the test folds;
   single-thread latency.
7. Optionally a full-int8 TFLite encoder through the same gate.
8. Write, verify (``edge.bundle.load_bundle``) and move the bundle into place; optionally zip it.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge.bundle import sha256_file
from edge.catalogue import load_catalogue
from training.metrics import evaluate_scores

from .bundle_writer import SIZE_BUDGET_BYTES, BundleDraft, check_destination, folder_size, zip_bundle
from .data import ExportWindows, load_export_windows
from .gate import Gate, GateError, agreement, near_ties
from .labels import LabelSet, build_label_set, read_extra_labels
from .latency import machine, median_latency_ms
from .onnx_export import ExportError, check_onnx_against_torch, encoder_for_export, export_onnx
from .quantize import ACTIVATION_TYPES, CALIBRATION_METHODS, FP32_PARTS, QuantSettings, quantize_onnx
from .thresholds import MAX_FPR, MIN_POSITIVES, NO_POSITIVES_PERCENTILE, TARGET_PRECISION, label_thresholds

__all__ = ["ExportConfig", "ExportResult", "export_bundle"]

logger = logging.getLogger(__name__)

TOOL = "ecg-export"
AUTO_METHODS = ("minmax", "percentile")  # tried by calibrate_method="auto" (entropy gave minmax's numbers, slower)


@dataclass
class ExportConfig:
    """Everything one export depends on; the CLI fills it from its arguments."""

    checkpoint: str  # checkpoint.pt written by ecg-train
    out: str  # bundle folder to write
    data: list[str] = field(default_factory=list)  # KIND=PATH datasets; empty: the checkpoint's own sources
    cache: str | None = None  # prepared-window cache (default: the run's cache if it matches, else the per-user cache)
    calib_folds: tuple[int, ...] | None = None  # calibration folds (None: the checkpoint's training folds)
    val_folds: tuple[int, ...] = (9,)  # folds for the decision thresholds
    test_folds: tuple[int, ...] = (10,)  # folds for the gate and the reported metrics
    calib_windows: int = 256  # calibration windows drawn from the calibration folds
    max_eval_windows: int | None = None  # cap on validation / test windows (None: all)
    activations: str = "uint8"  # int8 ONNX activation type: uint8, int8, or auto (measure both, keep the faster)
    calibrate_method: str = "auto"  # onnxruntime calibration: minmax, percentile, entropy, auto (best on validation)
    keep_fp32: tuple[str, ...] = FP32_PARTS  # int8 ONNX parts left in fp32: "input" (first conv), "head"
    gate: Gate = field(default_factory=Gate)  # minimum int8-vs-fp32 agreement
    accept_below_gate: bool = False  # write the bundle even below the gate (recorded in the manifest)
    extra_labels: str | None = None  # CSV/JSON of new labels appended at export time
    fp32: bool = False  # also ship the fp32 ONNX encoder
    tflite: bool = False  # also build and ship a full-int8 TFLite encoder
    zip: bool = False  # also write <out>.zip
    name: str | None = None  # bundle name (default: the checkpoint's run folder name)
    latency_runs: int = 200  # single-window runs per latency measurement (0: skip)
    seed: int = 0  # sampling of calibration / evaluation windows
    overwrite: bool = False  # replace an existing --out
    progress: bool = True  # progress bars


@dataclass
class ExportResult:
    """A written bundle: its folder, manifest, size, optional zip and any warnings."""

    folder: Path
    manifest: dict
    size_bytes: int
    zip_path: Path | None = None
    warnings: list[str] = field(default_factory=list)


def _clean(value):  # noqa: ANN001, ANN202 - any JSON-like value
    """NaN and infinities -> None (JSON has neither); numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _version(dist: str) -> str | None:
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        return None


def _embed_onnx(path: Path, windows: np.ndarray, progress: bool, desc: str, batch: int = 64) -> np.ndarray:
    from edge.backends import OnnxBackend

    starts = range(0, len(windows), batch)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=desc, unit="batch", leave=False)
    with OnnxBackend.from_file(path, threads=1) as backend:
        return np.concatenate([backend(windows[i : i + batch]) for i in starts])


def _accuracy(emb: np.ndarray, windows: ExportWindows, labels: LabelSet) -> dict:
    """Top-1, top-5, macro AUROC and new-label top-5 recall on the test windows, over all bundle labels."""
    scores = emb @ labels.embeddings.T
    targets = np.zeros_like(scores)
    targets[:, : windows.test_y.shape[1]] = windows.test_y  # extra labels have no targets in the data
    m = evaluate_scores(scores, targets, labels.ids, new_labels=labels.new_ids)
    new = m.get("new") or {}
    return {"top1": m["top1"], "top5": m["top5"], "macro_auroc": m["macro_auroc"],
            "new_top5_recall": new.get("top5_recall"), "new_labels_evaluated": new.get("labels", [])}


def _quantize_best(cfg: ExportConfig, draft: BundleDraft, fp32: Path, windows: ExportWindows, refs: dict,
                   labels: LabelSet) -> tuple[Path, dict, np.ndarray, dict]:
    """The int8 ONNX model: activation type by speed, calibration method by validation agreement, then the
    chosen model measured on the test windows (which never take part in a choice)."""
    acts = ACTIVATION_TYPES if cfg.activations == "auto" else (cfg.activations,)
    methods = AUTO_METHODS if cfg.calibrate_method == "auto" else (cfg.calibrate_method,)
    made: dict[tuple[str, str], Path] = {}

    def make(act: str, method: str) -> Path:
        if (act, method) not in made:
            path = draft.scratch_path(f"encoder_int8_{act}_{method}.onnx")
            quantize_onnx(fp32, path, windows.calib, QuantSettings(act, calibrate_method=method,
                                                                   keep_fp32=tuple(cfg.keep_fp32)), cfg.progress)
            made[act, method] = path
        return made[act, method]

    speed = {}
    if len(acts) > 1:  # int8 and uint8 activations give the same accuracy; they differ in speed
        speed = {a: median_latency_ms(make(a, methods[0]), windows.test_x[0], runs=max(cfg.latency_runs, 50))
                 for a in acts}
        logger.info("latency per window by activation type: %s", {a: f"{v:.3f} ms" for a, v in speed.items()})
    act = min(acts, key=lambda a: speed.get(a, 0.0))
    on_val = {}
    if len(methods) > 1:
        for method in methods:
            q = _embed_onnx(make(act, method), windows.val_x, cfg.progress, f"int8 ({method}) on validation windows")
            on_val[method] = {k: v for k, v in agreement(refs["val"], q, labels.embeddings).items()
                              if k != "disagreements"}
        logger.info("calibration methods on the validation windows: %s", on_val)
    method = max(methods, key=lambda m: (on_val[m]["agreement_top1"], on_val[m]["cosine_mean"]) if on_val else 0)
    path = make(act, method)
    q = _embed_onnx(path, windows.test_x, cfg.progress, "int8 on test windows")
    numbers = agreement(refs["test"], q, labels.embeddings, labels.ids)
    passed, summary = cfg.gate.check(numbers, f"int8 ONNX ({act} activations, {method} calibration)")
    ties = near_ties(refs["test"], q, labels.embeddings)
    if not passed and numbers["disagreements"]:
        noise = ties["noise_abs_quantiles"]["p99"]
        within = sum(d["fp32_margin"] <= noise for d in numbers["disagreements"])
        summary += (f"; {within} of the {len(numbers['disagreements'])} top-1 changes are near-ties within the int8 "
                    f"noise (fp32 margin <= {noise:.4f}, the 99th percentile of the change int8 makes to a "
                    f"window's top-2 score difference); {ties['within_noise']:.1%} of the windows are such "
                    f"near-ties in fp32")
    logger.info(summary)
    section = {
        "mode": "static QDQ (onnxruntime quantize_static after quant_pre_process)",
        "tool": f"onnxruntime {_version('onnxruntime')}",
        **QuantSettings(act, calibrate_method=method, keep_fp32=tuple(cfg.keep_fp32)).to_dict(),
        "calibration_windows": int(len(windows.calib)),
        "calibration_folds": windows.folds["calibration"],
        **numbers,
        "near_ties": ties,
        "gate": {**cfg.gate.to_dict(), "reference": "fp32 ONNX", "folds": windows.folds["test"]},
        "passed": passed,
        "accepted_below_gate": False,
    }
    if speed:
        section["activation_choice"] = {"by": "median single-thread latency on this machine",
                                        **{a: {"latency_ms": v} for a, v in speed.items()}}
    if on_val:
        section["calibration_choice"] = {"by": f"top-1 agreement, then cosine, on validation folds "
                                               f"{windows.folds['validation']}", **on_val}
    return path, section, q, {"summary": summary}


def _gate_or_fail(cfg: ExportConfig, section: dict, summary: str, what: str) -> None:
    if section["passed"]:
        return
    if not cfg.accept_below_gate:
        numbers = {k: section[k] for k in ("n_windows", "agreement_top1", "cosine_mean", "cosine_min", "disagreements")}
        raise GateError(f"{what} failed the gate: {summary}. If the top-1 changes are near-ties, "
                        f"see --tie-margin; else try more --calib-windows or --fp32-layers; or pass "
                        f"--accept-below-gate to write the bundle anyway (recorded in the manifest)", numbers)
    section["accepted_below_gate"] = True
    logger.warning("%s is below the gate and accepted (--accept-below-gate): %s", what, summary)


def _tflite(cfg: ExportConfig, draft: BundleDraft, encoder, windows: ExportWindows, ref: np.ndarray,  # noqa: ANN001
            labels: LabelSet) -> tuple[dict, dict, float | None]:
    from .tflite import check_tflite_against_torch, convert_fp32, embed_tflite, quantize_tflite

    fp32 = convert_fp32(encoder, windows.test_x[:1], draft.scratch_path("encoder_fp32.tflite"))
    diff = check_tflite_against_torch(encoder, fp32, windows.test_x[:8])
    info = quantize_tflite(fp32, draft.path("tflite_int8"), windows.calib, progress=cfg.progress)
    q = embed_tflite(draft.path("tflite_int8"), windows.test_x, progress=cfg.progress)
    numbers = agreement(ref, q, labels.embeddings, labels.ids)
    passed, summary = cfg.gate.check(numbers, "int8 TFLite")
    logger.info(summary)
    section = {"mode": "full int8 TFLite (litert-torch fp32 conversion, ai-edge-quantizer static_wi8_ai8)",
               "converter": f"litert-torch {_version('litert-torch')}", "fp32_max_abs_diff_vs_torch": diff, **info,
               "tool": f"ai-edge-quantizer {_version('ai-edge-quantizer')}", **numbers,
               "gate": {**cfg.gate.to_dict(), "reference": "fp32 ONNX", "folds": windows.folds["test"]},
               "passed": passed, "accepted_below_gate": False}
    _gate_or_fail(cfg, section, summary, "the int8 TFLite encoder")
    draft.add_model("tflite_int8")
    latency = median_latency_ms(draft.path("tflite_int8"), windows.test_x[0], "litert", cfg.latency_runs) \
        if cfg.latency_runs else None
    return section, _accuracy(q, windows, labels), latency


def export_bundle(cfg: ExportConfig) -> ExportResult:
    """Run the whole export; raises :class:`ExportError` (or :class:`GateError`) with a one-line reason."""
    from training.checkpoint import code_version, load_checkpoint

    if cfg.activations not in (*ACTIVATION_TYPES, "auto"):
        raise ExportError(f"activations must be one of {ACTIVATION_TYPES} or auto, got {cfg.activations!r}")
    if cfg.calibrate_method not in (*CALIBRATION_METHODS, "auto"):
        raise ExportError(f"calibrate_method must be one of {CALIBRATION_METHODS} or auto, got {cfg.calibrate_method!r}")
    if cfg.tflite:
        from .tflite import tflite_available

        if reason := tflite_available():
            raise ExportError(reason)
    check_destination(cfg.out, cfg.overwrite)
    export_code = code_version()  # before anything is written: a bundle inside the repository makes the tree dirty
    checkpoint = Path(cfg.checkpoint)
    try:
        model, ckpt = load_checkpoint(checkpoint)
    except (FileNotFoundError, ValueError) as exc:
        raise ExportError(str(exc)) from None
    encoder = encoder_for_export(model, ckpt)
    catalogue = load_catalogue()
    extra = read_extra_labels(cfg.extra_labels) if cfg.extra_labels else []
    labels = build_label_set(model, ckpt, catalogue, extra)
    windows = load_export_windows(ckpt, checkpoint, catalogue, cfg.data, cfg.cache, cfg.calib_folds, cfg.val_folds,
                                  cfg.test_folds, cfg.calib_windows, cfg.max_eval_windows, cfg.seed, cfg.progress)
    draft = BundleDraft(cfg.out, overwrite=cfg.overwrite)
    try:
        fp32 = draft.path("onnx_fp32") if cfg.fp32 else draft.scratch_path("encoder_fp32.onnx")
        io = export_onnx(encoder, fp32, windows.test_x[:2] if len(windows.test_x) >= 2 else windows.calib[:2])
        diff = check_onnx_against_torch(encoder, fp32, np.concatenate([windows.test_x[:16], windows.calib[:16]]))
        ref = _embed_onnx(fp32, windows.test_x, cfg.progress, "fp32 on test windows")
        refs = {"test": ref, "val": _embed_onnx(fp32, windows.val_x, cfg.progress, "fp32 on validation windows")}
        int8, quant, q_test, info = _quantize_best(cfg, draft, fp32, windows, refs, labels)
        _gate_or_fail(cfg, quant, info["summary"], "the int8 ONNX encoder")
        draft.add_model("onnx_int8", int8)
        if cfg.fp32:
            draft.add_model("onnx_fp32")

        q_val = _embed_onnx(int8, windows.val_x, cfg.progress, "int8 on validation windows")
        threshold_report: dict = {}
        thresholds, by_f1 = label_thresholds(q_val @ labels.embeddings.T, windows.val_y, windows.val_known,
                                             report=threshold_report)
        entries = [{**e, "threshold": round(float(t), 6)} for e, t in zip(labels.entries, thresholds, strict=True)]
        metrics = {"folds": windows.folds["test"], "n_windows": int(len(windows.test_x)),
                   "onnx_fp32": _accuracy(ref, windows, labels), "onnx_int8": _accuracy(q_test, windows, labels),
                   "checkpoint_test": (ckpt.get("metrics") or {}).get("test")}
        latency = {"threads": 1, "runs": cfg.latency_runs, "machine": machine()}
        if cfg.latency_runs:
            latency["onnx_int8"] = median_latency_ms(int8, windows.test_x[0], runs=cfg.latency_runs)
            latency["onnx_fp32"] = median_latency_ms(fp32, windows.test_x[0], runs=cfg.latency_runs)
        if cfg.tflite:
            quant["tflite"], metrics["tflite_int8"], latency["tflite_int8"] = _tflite(cfg, draft, encoder, windows,
                                                                                      ref, labels)
        metrics["latency_ms_per_window"] = latency if cfg.latency_runs else None
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        manifest = {
            "name": cfg.name or checkpoint.resolve().parent.name,
            "created": now,
            "signal": dict(ckpt["signal"]),  # copied from the checkpoint, never re-declared
            "model": {**io.to_dict(), "encoder": dict(ckpt["encoder"]), "batchnorm_folded": True,
                      "fp32_max_abs_diff_vs_torch": diff, "output": "unit ECG embedding (L2-normalised)"},
            "embedding_dim": int(labels.embeddings.shape[1]),
            "logit_scale": float(model.scale().detach()),
            "quantization": quant,
            "thresholds": {"method": f"lowest cut with validation precision >= {TARGET_PRECISION:g} (else max F1), on the "
                                     "windows where the label is known (export.thresholds)",
                           "target_precision": TARGET_PRECISION,
                           "per_label": {labels.entries[j]["id"]: r for j, r in threshold_report.items()},
                           "scores": "cosine, int8 ONNX encoder", "folds": windows.folds["validation"],
                           "n_windows": int(len(windows.val_x)),
                           "no_positives": f"{NO_POSITIVES_PERCENTILE:g}th percentile of the label's validation scores",
                           "false_positive_bound": f"at most {MAX_FPR:.0%} of validation windows without the label "
                                                   f"(1 % with fewer than {MIN_POSITIVES} positives)",
                           "labels_without_positives": [e["id"] for e, f in zip(entries, by_f1, strict=True) if not f]},
            "text_encoder": {"name": ckpt["text"].get("encoder"), **ckpt["text"],
                             "note": "label embeddings are precomputed; the device runs no text model"},
            "metrics": metrics,
            "provenance": {
                "tool": f"{TOOL} (ecg-clip-ja {_version('ecg-clip-ja') or 'source'})", "created": now,
                "checkpoint": checkpoint.name, "checkpoint_sha256": sha256_file(checkpoint),
                "checkpoint_created": ckpt.get("created"), "code_version": ckpt.get("code_version"),
                "export_code_version": export_code, "training_data": ckpt.get("data"),
                "holdout_labels": list(ckpt.get("holdout_label_ids") or []),
                "extra_labels": [lb.id for lb in extra], "export_data": windows.describe(),
                "versions": {d: _version(d) for d in ("torch", "onnx", "onnxruntime", "litert-torch",
                                                       "ai-edge-quantizer", "ai-edge-litert")},
                "export_config": {k: v for k, v in asdict(cfg).items() if k not in ("progress",)},
            },
        }
        manifest = draft.finish(_clean(manifest), _clean(entries), labels.embeddings)
    except BaseException:
        draft.discard()
        raise
    out = Path(cfg.out)
    result = ExportResult(out, manifest, folder_size(out))
    if result.size_bytes > SIZE_BUDGET_BYTES:
        result.warnings.append(f"bundle is {result.size_bytes / 2**20:.2f} MB, over the {SIZE_BUDGET_BYTES / 2**20:.0f} MB "
                               "budget of the bedside board" + (" (--fp32 ships the fp32 encoder too)" if cfg.fp32 else ""))
    if cfg.zip:
        result.zip_path = zip_bundle(out)
    return result
