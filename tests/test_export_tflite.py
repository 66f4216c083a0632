"""``ecg-export --tflite``: the full-int8 LiteRT encoder, end to end (skipped only without the tflite extra)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")
pytest.importorskip("ai_edge_litert")


@pytest.mark.slow
def test_tflite_bundle_end_to_end(tiny_checkpoint, tmp_path):
    from edge.backends import LiteRTBackend
    from edge.bundle import load_bundle
    from edge.engine import Classifier
    from export.cli import main
    from firmware_bridge.synthetic import synthesize

    out = tmp_path / "b"
    assert main([str(tiny_checkpoint.path), "--out", str(out), "--tflite", "--latency-runs", "5", "--quiet"]) == 0
    with load_bundle(out) as bundle:
        m = bundle.manifest
        assert m["models"]["tflite_int8"] == "encoder_int8.tflite" and "encoder_int8.tflite" in m["files"]
        t = m["quantization"]["tflite"]
        assert t["recipe"] == "static_wi8_ai8" and t["calibrate_method"] == "running min/max"
        assert t["fp32_max_abs_diff_vs_torch"] < 1e-4 and t["n_windows"] == 16
        assert 0 <= t["agreement_top1"] <= 1 and 0.99 < t["cosine_mean"] <= 1 and t["passed"] is True
        assert set(m["metrics"]["tflite_int8"]) >= {"top1", "top5", "macro_auroc"}
        assert m["metrics"]["latency_ms_per_window"]["tflite_int8"] > 0
        # Full int8 inside: int8 input and output tensors with their scales.
        with LiteRTBackend.from_file(bundle.model_path("tflite_int8")) as backend:
            assert backend._in_q is not None and backend._out_q is not None
            x = np.random.default_rng(0).normal(size=(2, 12, 1000)).astype(np.float32)
            emb = backend(x)
        assert emb.shape == (2, 32)
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=0.05)
    # The runtime runs it through its LiteRT backend, and int8 ONNX and TFLite agree on the ranking.
    x = synthesize(rhythm="sinus", duration_s=10.0, fs=500, seed=5)
    with Classifier.from_bundle(out, backend="litert") as clf:
        lite = clf.classify_window(x, fs=500)
    with Classifier.from_bundle(out, backend="onnx") as clf:
        onnx = clf.classify_window(x, fs=500)
    assert lite.top[0]["id"] == onnx.top[0]["id"]
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["quantization"]["passed"] is True
