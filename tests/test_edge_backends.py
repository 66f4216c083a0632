"""Inference backends (edge.runtime.backends): ONNX int8 vs fp32 vs torch, LiteRT float and full-int8 I/O."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edge.dsp.signal import SignalConfig, preprocess
from edge.runtime.backends import BackendError, LiteRTBackend, OnnxBackend, get_backend, model_key_for
from firmware_bridge.synthetic import synthesize


def _inputs(n: int = 4, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rhythms = ["sinus", "afib", "rbbb", "pvc", "lbbb", "st_elevation"]
    return np.stack(
        [
            preprocess(
                synthesize(
                    rhythm=rhythms[i % len(rhythms)], fs=500, seed=int(rng.integers(1000)), duration_s=10.0
                ),
                500,
                SignalConfig(),
            )
            for i in range(n)
        ]
    )


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_onnx_fp32_matches_torch(tiny_encoder):
    torch = pytest.importorskip("torch")
    model, fp32, _ = tiny_encoder
    x = _inputs(3)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    with OnnxBackend.from_file(fp32) as backend:
        y = backend(x)
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-4)


def test_onnx_int8_agrees_with_fp32(tiny_encoder):
    _, fp32, int8 = tiny_encoder
    x = _inputs(6)
    with get_backend("onnx", fp32) as f, get_backend("onnx", int8, threads=2) as q:
        cos = _cos(f(x), q(x))
    assert cos.min() > 0.99, cos


def test_onnx_batch_equals_single_windows(tiny_encoder):
    _, _, int8 = tiny_encoder
    x = _inputs(3)
    backend = OnnxBackend.from_file(int8)
    batched = backend(x)
    single = np.concatenate([backend(x[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert backend.name == "onnx" and "encoder_int8" in repr(backend)
    backend.close()


def test_backend_errors(tmp_path, tiny_encoder):
    _, fp32, _ = tiny_encoder
    with pytest.raises(BackendError, match="unknown backend"):
        get_backend("tensorrt", fp32)
    with pytest.raises(BackendError, match="not found"):
        OnnxBackend.from_file(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match="cannot load"):
        OnnxBackend.from_file(bad)
    with OnnxBackend.from_file(fp32) as backend, pytest.raises(BackendError, match="batch, leads, samples"):
        backend(np.zeros((12, 1000), np.float32))
    assert model_key_for("onnx") == "onnx_int8" and model_key_for("onnx", "fp32") == "onnx_fp32"
    assert model_key_for("litert") == "tflite_int8"


def test_litert_missing_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(BackendError, match="pip install ai-edge-litert"):
        LiteRTBackend.from_file(tmp_path / "model.tflite")


# --- LiteRT on a hand-built .tflite (no converter needed): one FULLY_CONNECTED layer -----------------
def _fc_tflite(w: np.ndarray, in_shape: list[int], q: dict | None = None) -> bytes:
    """A TFLite flatbuffer computing ``x.reshape(B, -1) @ w.T``, float32 or full int8 (``q``: scales/zps).

    Field slots follow tensorflow/lite/schema/schema.fbs (Model, SubGraph, Tensor, Operator, Buffer).
    """
    flatbuffers = pytest.importorskip("flatbuffers")
    b = flatbuffers.Builder(1 << 16)

    def table(fields):
        b.StartObject(max((s for s, _, _ in fields), default=-1) + 1)
        prepend = {
            "off": lambda s, v: b.PrependUOffsetTRelativeSlot(s, v, 0),
            "i32": lambda s, v: b.PrependInt32Slot(s, v, -(1 << 30)),  # defaults never equal the
            "u32": lambda s, v: b.PrependUint32Slot(s, v, 0xFFFFFFFF),  # value, so every field
            "i8": lambda s, v: b.PrependInt8Slot(s, v, -128),
        }  # is written
        for slot, kind, value in fields:
            prepend[kind](slot, value)
        return b.EndObject()

    def offsets(items):
        b.StartVector(4, len(items), 4)
        for o in reversed(items):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    vec = b.CreateNumpyVector
    if q:
        weights = np.clip(np.rint(w / q["w_scale"]), -127, 127).astype(np.int8).view(np.uint8)
    else:
        weights = w.astype(np.float32).view(np.uint8).ravel()
    buffers = [table([]), table([]), table([(0, "off", vec(weights.ravel()))]), table([])]
    specs = [
        ("input", in_shape, (q["in_scale"], q["in_zp"]) if q else None),
        ("weights", list(w.shape), (q["w_scale"], 0) if q else None),
        ("output", [in_shape[0], w.shape[0]], (q["out_scale"], q["out_zp"]) if q else None),
    ]
    tensors = []
    for buf, (name, shape, qp) in enumerate(specs, start=1):
        fields = [
            (0, "off", vec(np.asarray(shape, np.int32))),
            (1, "i8", 9 if q else 0),
            (2, "u32", buf),
            (3, "off", b.CreateString(name)),
        ]
        if qp:
            scale, zp = vec(np.asarray([qp[0]], np.float32)), vec(np.asarray([qp[1]], np.int64))
            fields.append((4, "off", table([(2, "off", scale), (3, "off", zp)])))
        tensors.append(table(fields))
    op = table(
        [
            (0, "u32", 0),
            (1, "off", vec(np.asarray([0, 1, -1], np.int32))),
            (2, "off", vec(np.asarray([2], np.int32))),
        ]
    )
    subgraph = table(
        [
            (0, "off", offsets(tensors)),
            (1, "off", vec(np.asarray([0], np.int32))),
            (2, "off", vec(np.asarray([2], np.int32))),
            (3, "off", offsets([op])),
            (4, "off", b.CreateString("main")),
        ]
    )
    opcode = table([(0, "i8", 9), (2, "i32", 1), (3, "i32", 9)])  # FULLY_CONNECTED = 9
    model = table(
        [
            (0, "u32", 3),
            (1, "off", offsets([opcode])),
            (2, "off", offsets([subgraph])),
            (3, "off", b.CreateString("test")),
            (4, "off", offsets(buffers)),
        ]
    )
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def _litert():
    pytest.importorskip("ai_edge_litert", reason="LiteRT not installed (pip install ai-edge-litert)")


def test_litert_float_model(tmp_path):
    _litert()
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 12 * 20)).astype(np.float32) * 0.1
    path = tmp_path / "fc.tflite"
    path.write_bytes(_fc_tflite(w, [1, 12, 20]))
    x = rng.standard_normal((3, 12, 20)).astype(np.float32)
    with get_backend("litert", path) as backend:
        y = backend(x)  # a fixed batch of 1: run window by window
        assert backend.name == "litert" and not backend.channels_last
    np.testing.assert_allclose(y, x.reshape(3, -1) @ w.T, atol=1e-5)


def test_litert_full_int8_io_is_quantized_and_dequantized(tmp_path):
    _litert()
    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 12 * 20)).astype(np.float32) * 0.1
    q = {
        "in_scale": 0.05,
        "in_zp": 3,
        "w_scale": float(np.abs(w).max() / 127),
        "out_scale": 0.05,
        "out_zp": -5,
    }
    path = tmp_path / "fc_int8.tflite"
    path.write_bytes(_fc_tflite(w, [1, 12, 20], q))
    x = rng.standard_normal((2, 12, 20)).astype(np.float32)
    with LiteRTBackend.from_file(path, threads=2) as backend:
        y = backend(x)
    assert y.dtype == np.float32
    # The same arithmetic in numpy: quantize input, integer matmul, requantize, dequantize.
    qx = np.clip(np.rint(x / q["in_scale"]) + q["in_zp"], -128, 127)
    qw = np.clip(np.rint(w / q["w_scale"]), -127, 127)
    acc = (qx.reshape(2, -1) - q["in_zp"]) @ qw.T
    qy = np.clip(np.rint(acc * q["in_scale"] * q["w_scale"] / q["out_scale"]) + q["out_zp"], -128, 127)
    np.testing.assert_allclose(y, (qy - q["out_zp"]) * q["out_scale"], atol=q["out_scale"] + 1e-6)
    np.testing.assert_allclose(y, x.reshape(2, -1) @ w.T, atol=0.3)  # and close to the float result


def test_litert_channels_last_input(tmp_path):
    _litert()
    rng = np.random.default_rng(2)
    w = rng.standard_normal((4, 20 * 12)).astype(np.float32)
    path = tmp_path / "fc_nwc.tflite"
    path.write_bytes(_fc_tflite(w, [1, 20, 12]))
    x = rng.standard_normal((2, 12, 20)).astype(np.float32)
    with LiteRTBackend.from_file(path) as backend:
        assert backend.channels_last
        y = backend(x)
    np.testing.assert_allclose(y, x.transpose(0, 2, 1).reshape(2, -1) @ w.T, atol=1e-4)


def test_default_bundle_int8_same_output_without_qdq_propagation():
    """The ONNX backend switches off onnxruntime's QDQ propagation (max-pool in fp32 before quantizing):
    the int8 encoder's output must stay bit for bit the same as with onnxruntime's defaults."""
    from edge.bundle.loader import load_bundle

    bundle = load_bundle()  # the shipped default
    path = bundle.model_path("onnx_int8")
    rng = np.random.default_rng(0)
    windows = [preprocess(synthesize(rhythm=r, fs=500, seed=i, duration_s=10.0), 500, bundle.signal)
               for i, r in enumerate(("sinus", "afib", "wide_qrs", "st_elevation"))]
    x = np.concatenate([np.stack(windows), rng.normal(size=(12, 12, windows[0].shape[-1])).astype(np.float32) * 3])
    tuned = OnnxBackend.from_file(path)
    plain = OnnxBackend.from_file(path, disabled_optimizers=())
    try:
        assert np.array_equal(tuned(x), plain(x))
    finally:
        tuned.close()
        plain.close()
        bundle.close()
