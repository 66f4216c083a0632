"""Full-int8 TFLite encoder for LiteRT, without TensorFlow (the ``tflite`` extra).

Route (toolchain notes): the BatchNorm-folded ECG encoder is converted to an fp32 ``.tflite`` by
``litert-torch`` (``litert_torch.convert``), checked against torch with LiteRT's interpreter, then
quantized by ``ai-edge-quantizer`` with its ``static_wi8_ai8`` recipe (int8 weights and activations),
except the parts that ``keep_fp32`` names, as for the ONNX model: ``head`` (the pooling, projection
and L2 norm after the last block) and ``input`` (the stem convolution). Without the fp32 head the int8
output is not a unit vector (norms 0.98-1.13 measured), and the finding decisions differed from fp32
on 1.5 % of (window, label) pairs instead of 0.4 %. ai-edge-quantizer's calibrator keeps a moving average (smoothing 0.95) of each tensor's min/max, which
clipped on ECG, whose amplitude varies from window to window (cosine 0.9963 vs 0.99986); the calibrator
here keeps the true running min/max instead. The model has a fixed batch of 1 (the device classifies
one window at a time); ``edge.runtime.backends.LiteRTBackend`` runs it window by window.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .onnx_export import ExportError

__all__ = ["TFLITE_HELP", "FP32_SCOPES", "tflite_available", "convert_fp32", "check_tflite_against_torch",
           "quantize_tflite", "running_min_max", "embed_tflite"]

logger = logging.getLogger(__name__)

TFLITE_HELP = ("--formats tflite needs the tflite extra (litert-torch, ai-edge-quantizer, ai-edge-litert): "
               "pip install 'ecg-clip-ja[tflite]'")
# ai-edge-quantizer scopes (an op's output tensor names, ';'-joined, with a trailing ';') of the parts that
# keep_fp32 may leave in float; litert-torch names tensors after the torch module path.
FP32_SCOPES = {
    # the graph input (a virtual op named after it) and the stem's ops: later ops' fused names contain
    # the stem's name too, but never first
    "input": (r"^serving_default_args", r"^[^;]*_stem;"),
    "head": (r"^[^;]*ResNet1d_trunk;\d+;$", r"Linear_proj", r"^[^;/]*ECGEncoder;\d+;$", r"^serving_default_output"),
}


def tflite_available() -> str | None:
    """None when the TFLite route can run here, else the reason it cannot."""
    import importlib.util

    missing = [m for m in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert") if importlib.util.find_spec(m) is None]
    return f"{TFLITE_HELP} (missing: {', '.join(missing)})" if missing else None


@contextlib.contextmanager
def _quiet():
    """Silence the converters' own progress printing and debug-mode warnings (our logs and tqdm remain)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
        yield


def convert_fp32(encoder: nn.Module, example: np.ndarray, path: str | Path) -> Path:
    """Convert the (BatchNorm-folded) encoder to an fp32 ``.tflite`` with a batch of 1."""
    reason = tflite_available()
    if reason:
        raise ExportError(reason)
    import litert_torch

    x = torch.from_numpy(np.ascontiguousarray(example[:1], dtype=np.float32))
    logger.info("converting the ECG encoder to TFLite (litert-torch)")
    try:
        with _quiet():
            edge_model = litert_torch.convert(encoder.eval(), (x,))
            edge_model.export(str(path))
    except Exception as exc:  # the converter raises many unrelated classes
        raise ExportError(f"litert-torch could not convert the encoder: {exc}") from exc
    return Path(path)


def _embed(path: Path, windows: np.ndarray, progress: bool = False, desc: str = "") -> np.ndarray:
    from edge.runtime.backends import LiteRTBackend

    with LiteRTBackend.from_file(path, threads=1) as backend:
        items = range(len(windows))
        if progress:
            from tqdm import tqdm

            items = tqdm(items, desc=desc, unit="win", leave=False)
        return np.concatenate([backend(windows[i : i + 1]) for i in items])


def check_tflite_against_torch(encoder: nn.Module, path: Path, windows: np.ndarray, atol: float = 1e-4) -> float:
    """Max abs difference of the fp32 TFLite model and torch on ``windows``; ExportError above ``atol``."""
    windows = np.ascontiguousarray(windows, dtype=np.float32)
    with torch.no_grad():
        expected = encoder(torch.from_numpy(windows)).numpy()
    diff = float(np.abs(_embed(path, windows) - expected).max())
    if not np.isfinite(diff) or diff > atol:
        raise ExportError(f"the fp32 TFLite encoder differs from torch by {diff:.3g} (tolerance {atol:g})")
    logger.info("TFLite fp32 matches torch on %d windows (max abs diff %.2g)", len(windows), diff)
    return diff


def running_min_max(qsv: dict, new_qsv: dict) -> dict:
    """QSV update keeping the true minimum and maximum seen over all calibration windows."""
    if not qsv:
        return new_qsv
    return {**new_qsv, "min": np.minimum(qsv["min"], new_qsv["min"]), "max": np.maximum(qsv["max"], new_qsv["max"])}


def _recipe(keep_fp32: tuple[str, ...]):  # noqa: ANN202 - an ai-edge-quantizer recipe (list of dicts)
    from ai_edge_quantizer import qtyping, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    bad = [p for p in keep_fp32 if p not in FP32_SCOPES]
    if bad:
        raise ExportError(f"unknown fp32 part(s) {bad}: use {', '.join(FP32_SCOPES)}")
    manager = recipe_manager.RecipeManager()
    manager.add_static_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=8,
                              weight_num_bits=8, algorithm_key=AlgorithmName.MIN_MAX_UNIFORM_QUANT)
    for part in keep_fp32:  # later entries win over the ".*" one
        for regex in FP32_SCOPES[part]:
            manager.add_quantization_config(regex=regex, operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                            algorithm_key=AlgorithmName.NO_QUANTIZE)
    return manager.get_quantization_recipe()


def _float_ops(path: Path) -> tuple[int, int]:
    """``(ops with a float output, all ops)`` of a ``.tflite`` (DEQUANTIZE excluded: it only feeds float ops)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    dtypes = {t["index"]: t["dtype"] for t in interp.get_tensor_details()}
    ops = [o for o in interp._get_ops_details() if o["op_name"] not in ("DEQUANTIZE", "QUANTIZE")]
    return sum(1 for o in ops if any(dtypes.get(i) == np.float32 for i in o["outputs"])), len(ops)


def quantize_tflite(fp32_path: str | Path, out_path: str | Path, windows: np.ndarray, progress: bool = False,
                    keep_fp32: tuple[str, ...] = ("input", "head")) -> dict:
    """int8 (``static_wi8_ai8``) model of ``fp32_path`` but for the ``keep_fp32`` parts, calibrated on
    ``windows`` with running min/max."""
    reason = tflite_available()
    if reason:
        raise ExportError(reason)
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import calibrator, quantizer, recipe_manager

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    interp = Interpreter(model_path=str(fp32_path))
    signatures = interp.get_signature_list()
    if len(signatures) != 1:
        raise ExportError(f"expected one signature in {fp32_path.name}, found {list(signatures)}")
    key, sig = next(iter(signatures.items()))
    (input_name,) = sig["inputs"]
    rp = _recipe(tuple(keep_fp32))
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(rp)
    logger.info("quantizing the TFLite encoder (static_wi8_ai8, %s in float, running min/max on %d windows)",
                ", ".join(keep_fp32) or "nothing", len(windows))
    items = range(len(windows))
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc="TFLite calibration", unit="win", leave=False)
    try:
        with _quiet():
            calib = calibrator.Calibrator(fp32_path.read_bytes(), num_threads=1, qsv_update_func=running_min_max)
        for i in items:  # one window per call: the calibrator keeps its statistics across calls
            sample = {input_name: np.ascontiguousarray(windows[i : i + 1], dtype=np.float32)}
            with _quiet():
                calib.calibrate({key: [sample]}, manager)
        with _quiet():
            qt = quantizer.Quantizer(str(fp32_path), rp)
            result = qt.quantize(calib.get_model_qsvs(), enable_progress_report=False)
            result.export_model(str(out_path), overwrite=True)
    except Exception as exc:
        raise ExportError(f"ai-edge-quantizer failed: {exc}") from exc
    float_ops, all_ops = _float_ops(out_path)
    return {"recipe": "static_wi8_ai8", "keep_fp32": list(keep_fp32), "float_ops": float_ops, "ops": all_ops,
            "activation_type": "int8", "weight_type": "int8", "calibrate_method": "running min/max",
            "calibration_windows": int(len(windows)), "input_shape": [1, *windows.shape[1:]]}


def embed_tflite(path: Path, windows: np.ndarray, progress: bool = False) -> np.ndarray:
    """Embeddings of ``windows`` by a ``.tflite`` encoder through the edge runtime's LiteRT backend."""
    return _embed(Path(path), np.ascontiguousarray(windows, dtype=np.float32), progress, "TFLite int8")
