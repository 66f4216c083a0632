"""The device formats a bundle may carry (``ecg-export --formats``), each an int8 encoder.

``onnx``: the int8 ONNX model for onnxruntime (``manifest["models"]["onnx_int8"]``); ``tflite``: the
int8 TFLite model for LiteRT (``tflite_int8``). A bundle carries only the formats asked for, and the
board's size budget applies to each format on its own (:func:`edge.cli.info.format_sizes`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .onnx_export import ExportError

__all__ = ["FORMATS", "FORMAT_MODELS", "parse_formats"]

FORMATS = ("onnx", "tflite")
FORMAT_MODELS = {"onnx": "onnx_int8", "tflite": "tflite_int8"}  # format -> manifest["models"] key


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"onnx"``, ``"tflite"``, ``"onnx,tflite"`` -> the device formats, in bundle order; ExportError otherwise."""
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    bad = [t for t in items if t not in FORMATS]
    if bad or not items:
        raise ExportError(f"formats must be onnx, tflite or onnx,tflite, got {text!r}")
    return tuple(f for f in FORMATS if f in items)
