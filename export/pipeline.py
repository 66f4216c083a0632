"""Checkpoint -> bundle, step by step (``ecg-export``; DESIGN.md, contract 3).

1. Load the checkpoint; take its ECG tower with BatchNorm folded (contrastive checkpoints only).
2. Label rows: the catalogue's text embeddings through the trained text tower, plus ``extra_labels``;
   labels never trained are marked ``zero_shot``.
3. Real windows through the signal contract: calibration (training folds), validation, test.
4. fp32 ONNX, checked against torch (the reference, shipped only with ``fp32``).
5. The int8 models of the requested ``formats``: static QDQ int8 ONNX (onnxruntime) and/or int8
   TFLite, calibrated on real windows. A bundle carries only the device formats asked for.
6. Per-label thresholds on the validation scores of the first format's int8 model.
7. Gate v2 (:mod:`export.gate`) for every format, on every validation and test window.
8. fp32 and int8 accuracy on the test folds; single-thread latency.
9. Write, verify (``edge.bundle.loader.load_bundle``), sign (``--sign-key`` or the local key) and swap the bundle
   into place atomically; optionally zip it.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edge.bundle.loader import sha256_file
from edge.cli.info import format_sizes
from training.label_catalogue import catalogue_of_checkpoint
from training.metrics import evaluate_scores
from training.prepare import measurement_dicts

from .bundle_writer import SIZE_BUDGET_BYTES, BundleDraft, check_destination, folder_size, zip_bundle
from .data import ExportWindows, load_export_windows
from .decision import choose_decision
from .formats import parse_formats
from .gate import Gate, GateError, agreement, failure_text, measure
from .labels import LabelSet, build_label_set, read_extra_labels
from .latency import machine, median_latency_ms
from .onnx_export import ExportError, check_onnx_against_torch, encoder_for_export, export_onnx
from .quantize import ACTIVATION_TYPES, CALIBRATION_METHODS, FP32_PARTS, QuantSettings, quantize_onnx
from .redecide import keep_decision_scores
from .thresholds import MAX_FPR, MIN_POSITIVES, NO_POSITIVES_PERCENTILE, TARGET_PRECISION, label_thresholds

__all__ = ["ExportConfig", "ExportResult", "embed_onnx", "export_bundle"]

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
    formats: tuple[str, ...] = ("onnx",)  # device models to ship: onnx (int8 ONNX), tflite (int8 TFLite)
    fp32: bool = False  # also ship the fp32 ONNX encoder (for comparisons; no device needs it)
    zip: bool = False  # also write <out>.zip
    name: str | None = None  # bundle name (default: the checkpoint's run folder name)
    latency_runs: int = 200  # single-window runs per latency measurement (0: skip)
    seed: int = 0  # sampling of calibration / evaluation windows
    overwrite: bool = False  # replace an existing --out
    sign_key: str | None = None  # Ed25519 private key that signs the bundle before it is swapped into place
    progress: bool = True  # progress bars


@dataclass
class ExportResult:
    """A written bundle: its folder, manifest, size, optional zip and any warnings."""

    folder: Path
    manifest: dict
    size_bytes: int
    zip_path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    format_bytes: dict[str, int] = field(default_factory=dict)  # per shipped int8 format: what a device needs
    key_id: str | None = None  # the key that signed it (None: unsigned)


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


def embed_onnx(path: Path, windows: np.ndarray, progress: bool, desc: str, batch: int = 64) -> np.ndarray:
    from edge.runtime.backends import OnnxBackend

    starts = range(0, len(windows), batch)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=desc, unit="batch", leave=False)
    with OnnxBackend.from_file(path, threads=1) as backend:
        return _unit(np.concatenate([backend(windows[i : i + batch]) for i in starts]))


def _unit(emb: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as ``edge.runtime.engine.Classifier.embed`` does before scoring.

    A full-int8 output is not exactly a unit vector, and the device's scores (and so its findings and
    thresholds) are taken on the normalised embedding."""
    emb = np.asarray(emb, dtype=np.float32)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def _accuracy(emb: np.ndarray, windows: ExportWindows, labels: LabelSet) -> dict:
    """Top-1, top-5, macro AUROC and new-label top-5 recall on the test windows, over all bundle labels."""
    scores = emb @ labels.embeddings.T
    targets = np.zeros_like(scores)
    targets[:, : windows.test_y.shape[1]] = windows.test_y  # extra labels have no targets in the data
    known = np.zeros_like(scores, dtype=bool)  # labels the windows' sources state (as ecg-eval counts them)
    known[:, : windows.test_y.shape[1]] = True if windows.test_known is None else windows.test_known > 0
    m = evaluate_scores(scores, targets, labels.ids, new_labels=labels.new_ids, known=known)
    new = m.get("new") or {}
    return {"top1": m["top1"], "top5": m["top5"], "macro_auroc": m["macro_auroc"],
            "new_top5_recall": new.get("top5_recall"), "new_labels_evaluated": new.get("labels", [])}


def _hints(cfg: ExportConfig, fmt: str, n_calib: int) -> str:
    """What to try after a gate failure, for this format and these settings."""
    tips = [f"--calib-windows {max(2 * n_calib, 512)}"]
    if fmt == "onnx_int8":
        if set(cfg.keep_fp32) != set(FP32_PARTS):
            tips.append("--fp32-layers input,head")
        if cfg.calibrate_method != "auto":
            tips.append("--calibrate-method auto")
    else:
        tips.append("--formats onnx")
    return ", ".join(tips)


def _gate(cfg: ExportConfig, fmt: str, what: str, ref: np.ndarray, q: np.ndarray, windows: ExportWindows,
          labels: LabelSet, thresholds: np.ndarray, n_calib: int) -> dict:
    """Gate v2 on every validation and test window: the manifest fields; GateError unless passed or accepted."""
    where = ([{"split": "validation", "record": k} for k in windows.val_keys]
             + [{"split": "test", "record": k} for k in windows.test_keys])
    targets = np.concatenate([windows.val_y, windows.test_y])
    m = measure(ref, q, labels.embeddings, thresholds, targets, labels.ids, labels.new_ids,
                where if len(where) == len(ref) else None, cfg.gate)
    passed, conditions = cfg.gate.check(m)
    failed = [k for k, c in conditions.items() if not c["passed"]]
    m["gate"] = {**cfg.gate.to_dict(), "reference": "fp32 ONNX",
                 "windows": {"validation": int(len(windows.val_x)), "test": int(len(windows.test_x))},
                 "folds": {"validation": windows.folds["validation"], "test": windows.folds["test"]},
                 "conditions": conditions}
    d = m["decisive"]
    summary = (f"{what} vs fp32 on {m['n_windows']} validation and test windows: cosine {m['cosine_mean']:.5f}, "
               f"top-1 agreement {m['agreement_top1']:.4f} strict / "
               + ("-" if d["agreement"] is None else f"{d['agreement']:.4f}")
               + f" on {d['windows']} decisive windows (int8 noise {m['int8_noise']:.4f}), finding decisions "
               + ("-" if m["findings"]["agreement"] is None else f"{m['findings']['agreement']:.4f}"))
    logger.info(summary)
    m.update(passed=passed, failed_conditions=failed, accepted_below_gate=False)
    if not passed:
        message = (f"{what} failed gate v2 on {m['n_windows']} validation and test windows: "
                   f"{failure_text(m, conditions)}. Try {_hints(cfg, fmt, n_calib)}; or --accept-below-gate "
                   f"to write it anyway (recorded in the manifest); docs/int8-gate.md")
        if not cfg.accept_below_gate:
            raise GateError(message, m)
        m["accepted_below_gate"] = True
        logger.warning("accepted below the gate (--accept-below-gate): %s", message)
    return m


def _quantize_onnx(cfg: ExportConfig, draft: BundleDraft, fp32: Path, windows: ExportWindows, refs: dict,
                   labels: LabelSet) -> tuple[Path, dict, np.ndarray]:
    """The int8 ONNX model: activation type by speed, calibration method by validation agreement.

    Returns its path, the manifest fields that describe how it was made, and its embeddings of the
    validation then test windows."""
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
    on_val, q_val = {}, {}
    if len(methods) > 1:
        for method in methods:
            q_val[method] = embed_onnx(make(act, method), windows.val_x, cfg.progress,
                                        f"int8 ({method}) on validation windows")
            on_val[method] = {k: v for k, v in agreement(refs["val"], q_val[method], labels.embeddings).items()
                              if k != "disagreements"}
        logger.info("calibration methods on the validation windows: %s", on_val)
    method = max(methods, key=lambda m: (on_val[m]["agreement_top1"], on_val[m]["cosine_mean"]) if on_val else 0)
    path = make(act, method)
    val = q_val.get(method)
    if val is None:
        val = embed_onnx(path, windows.val_x, cfg.progress, "int8 on validation windows")
    q = np.concatenate([val, embed_onnx(path, windows.test_x, cfg.progress, "int8 on test windows")])
    section = {
        "mode": "static QDQ (onnxruntime quantize_static after quant_pre_process)",
        "tool": f"onnxruntime {_version('onnxruntime')}",
        **QuantSettings(act, calibrate_method=method, keep_fp32=tuple(cfg.keep_fp32)).to_dict(),
        "calibration_windows": int(len(windows.calib)),
        "calibration_folds": windows.folds["calibration"],
    }
    if speed:
        section["activation_choice"] = {"by": "median single-thread latency on this machine",
                                        **{a: {"latency_ms": v} for a, v in speed.items()}}
    if on_val:
        section["calibration_choice"] = {"by": f"strict top-1 agreement, then cosine, on validation folds "
                                               f"{windows.folds['validation']}", **on_val}
    return path, section, q


def _tflite(cfg: ExportConfig, draft: BundleDraft, encoder, windows: ExportWindows) -> tuple[dict, np.ndarray]:  # noqa: ANN001
    """The int8 TFLite model in the bundle; the fields that describe it and its validation + test embeddings."""
    from .tflite import check_tflite_against_torch, convert_fp32, embed_tflite, quantize_tflite

    fp32 = convert_fp32(encoder, windows.test_x[:1], draft.scratch_path("encoder_fp32.tflite"))
    diff = check_tflite_against_torch(encoder, fp32, windows.test_x[:8])
    info = quantize_tflite(fp32, draft.path("tflite_int8"), windows.calib, progress=cfg.progress,
                           keep_fp32=tuple(cfg.keep_fp32))
    q = _unit(embed_tflite(draft.path("tflite_int8"), np.concatenate([windows.val_x, windows.test_x]),
                           progress=cfg.progress))
    section = {"mode": "int8 TFLite (litert-torch fp32 conversion, ai-edge-quantizer static_wi8_ai8)",
               "converter": f"litert-torch {_version('litert-torch')}", "fp32_max_abs_diff_vs_torch": diff, **info,
               "tool": f"ai-edge-quantizer {_version('ai-edge-quantizer')}",
               "calibration_folds": windows.folds["calibration"]}
    return section, q


def export_bundle(cfg: ExportConfig) -> ExportResult:
    """Run the whole export; raises :class:`ExportError` (or :class:`GateError`) with a one-line reason."""
    from training.checkpoint import code_version, load_checkpoint

    formats = parse_formats(cfg.formats)
    if cfg.activations not in (*ACTIVATION_TYPES, "auto"):
        raise ExportError(f"activations must be one of {ACTIVATION_TYPES} or auto, got {cfg.activations!r}")
    if cfg.calibrate_method not in (*CALIBRATION_METHODS, "auto"):
        raise ExportError(f"calibrate_method must be one of {CALIBRATION_METHODS} or auto, got {cfg.calibrate_method!r}")
    if "tflite" in formats:
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
    catalogue = catalogue_of_checkpoint(ckpt)  # the shipped labels, or the hospital's (ecg-train --catalogue)
    extra = read_extra_labels(cfg.extra_labels) if cfg.extra_labels else []
    labels = build_label_set(model, ckpt, catalogue, extra)
    windows = load_export_windows(ckpt, checkpoint, catalogue, cfg.data, cfg.cache, cfg.calib_folds, cfg.val_folds,
                                  cfg.test_folds, cfg.calib_windows, cfg.max_eval_windows, cfg.seed, cfg.progress)
    untrained = labels.mark_untrained(windows.train_positives)
    draft = BundleDraft(cfg.out, overwrite=cfg.overwrite)
    try:
        fp32 = draft.path("onnx_fp32") if cfg.fp32 else draft.scratch_path("encoder_fp32.onnx")
        io = export_onnx(encoder, fp32, windows.test_x[:2] if len(windows.test_x) >= 2 else windows.calib[:2])
        diff = check_onnx_against_torch(encoder, fp32, np.concatenate([windows.test_x[:16], windows.calib[:16]]))
        refs = {"val": embed_onnx(fp32, windows.val_x, cfg.progress, "fp32 on validation windows"),
                "test": embed_onnx(fp32, windows.test_x, cfg.progress, "fp32 on test windows")}
        ref = np.concatenate([refs["val"], refs["test"]])
        n_val = len(windows.val_x)
        built: dict[str, tuple[dict, np.ndarray]] = {}  # model key -> (manifest fields, val + test embeddings)
        if "onnx" in formats:
            int8, section, q = _quantize_onnx(cfg, draft, fp32, windows, refs, labels)
            built["onnx_int8"] = (section, q)
        primary = "onnx_int8" if "onnx" in formats else "tflite_int8"
        if primary == "tflite_int8":
            built["tflite_int8"] = _tflite(cfg, draft, encoder, windows)
        # The device's thresholds: chosen on the validation scores of the int8 model it runs.
        q_val = built[primary][1][:n_val]
        threshold_report: dict = {}
        thresholds, by_f1 = label_thresholds(q_val @ labels.embeddings.T, windows.val_y, windows.val_known,
                                             report=threshold_report)
        thresholds = np.round(thresholds.astype(np.float64), 6)
        # How the measurements enter the decision (export.decision): rules and criteria weight, on validation.
        val_meas = (None if windows.val_measurements is None
                    else measurement_dicts(windows.val_measurements[:n_val], windows.measurement_keys))
        decision = choose_decision(q_val @ labels.embeddings.T, windows.val_y, windows.val_known, val_meas,
                                   labels.entries)
        # Every validation and test window's scores, kept so ecg-export redecide can change the decision later.
        decision["scores"] = keep_decision_scores(draft.work, built[primary][1], ref, windows, labels)
        what = {"onnx_int8": "the int8 ONNX encoder", "tflite_int8": "the int8 TFLite encoder"}
        gates = {primary: _gate(cfg, primary, what[primary], ref, built[primary][1], windows, labels, thresholds,
                                len(windows.calib))}
        if primary == "onnx_int8":
            draft.add_model("onnx_int8", int8)
            if "tflite" in formats:
                built["tflite_int8"] = _tflite(cfg, draft, encoder, windows)
                gates["tflite_int8"] = _gate(cfg, "tflite_int8", what["tflite_int8"], ref, built["tflite_int8"][1],
                                             windows, labels, thresholds, len(windows.calib))
        if "tflite" in formats:
            draft.add_model("tflite_int8")
        if cfg.fp32:
            draft.add_model("onnx_fp32")
        entries = [{**e, "threshold": float(t)} for e, t in zip(labels.entries, thresholds, strict=True)]
        metrics = {"folds": windows.folds["test"], "n_windows": int(len(windows.test_x)),
                   "onnx_fp32": _accuracy(refs["test"], windows, labels),
                   **{key: _accuracy(q[n_val:], windows, labels) for key, (_, q) in built.items()},
                   "checkpoint_test": (ckpt.get("metrics") or {}).get("test")}
        latency = {"threads": 1, "runs": cfg.latency_runs, "machine": machine()}
        if cfg.latency_runs:
            if "onnx_int8" in built:
                latency["onnx_int8"] = median_latency_ms(int8, windows.test_x[0], runs=cfg.latency_runs)
            latency["onnx_fp32"] = median_latency_ms(fp32, windows.test_x[0], runs=cfg.latency_runs)
            if "tflite_int8" in built:
                latency["tflite_int8"] = median_latency_ms(draft.path("tflite_int8"), windows.test_x[0], "litert",
                                                           cfg.latency_runs)
        metrics["latency_ms_per_window"] = latency if cfg.latency_runs else None
        sections = {key: {**built[key][0], **gates[key]} for key in built}
        quant = {**sections[primary], "format": primary, "formats": list(built)}
        if primary == "onnx_int8" and "tflite_int8" in sections:
            quant["tflite"] = sections["tflite_int8"]
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
                           "scores": f"cosine, {what[primary].removeprefix('the ')}", "folds": windows.folds["validation"],
                           "n_windows": int(len(windows.val_x)),
                           "no_positives": f"{NO_POSITIVES_PERCENTILE:g}th percentile of the label's validation scores",
                           "false_positive_bound": f"at most {MAX_FPR:.0%} of validation windows without the label "
                                                   f"(1 % with fewer than {MIN_POSITIVES} positives)",
                           "labels_without_positives": [e["id"] for e, f in zip(entries, by_f1, strict=True) if not f],
                           "zero_shot": "labels never trained (zero_shot) follow the same rules; their scores come "
                                        "from the text embedding alone and were never validated on trained positives"},
            "decision": decision,
            "text_encoder": {"name": ckpt["text"].get("encoder"), **ckpt["text"],
                             "note": "label embeddings are precomputed; the device runs no text model"},
            "metrics": metrics,
            "provenance": {
                "tool": f"{TOOL} (ecg-clip-ja {_version('ecg-clip-ja') or 'source'})", "created": now,
                "checkpoint": checkpoint.name, "checkpoint_sha256": sha256_file(checkpoint),
                "checkpoint_created": ckpt.get("created"), "code_version": ckpt.get("code_version"),
                "export_code_version": export_code, "training_data": ckpt.get("data"),
                "holdout_labels": list(ckpt.get("holdout_label_ids") or []),
                "extra_labels": [lb.id for lb in extra], "labels_without_training_examples": untrained,
                "export_data": windows.describe(),
                "versions": {d: _version(d) for d in ("torch", "onnx", "onnxruntime", "litert-torch",
                                                       "ai-edge-quantizer", "ai-edge-litert")},
                "export_config": {k: v for k, v in asdict(cfg).items() if k not in ("progress", "sign_key")},
            },
        }
        manifest = draft.finish(_clean(manifest), _clean(entries), labels.embeddings, sign_key=cfg.sign_key)
    except BaseException:
        draft.discard()
        raise
    out = Path(cfg.out)
    result = ExportResult(out, manifest, folder_size(out), warnings=list(labels.warnings), key_id=draft.key_id)
    result.format_bytes = format_sizes(manifest, (out / "manifest.json").stat().st_size)
    for key, size in result.format_bytes.items():
        if size > SIZE_BUDGET_BYTES:
            result.warnings.append(f"the {key} bundle is {size / 2**20:.2f} MB, over the "
                                   f"{SIZE_BUDGET_BYTES / 2**20:.0f} MB budget of the bedside board")
    if cfg.zip:
        result.zip_path = zip_bundle(out)
    return result
