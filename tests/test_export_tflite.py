"""``ecg-export --formats tflite``: the int8 LiteRT encoder, end to end (skipped only without the tflite extra)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")
pytest.importorskip("ai_edge_litert")

# The tiny model's gate: the contract's cosine and top-1, room for one of 24 windows in accuracy and 0.98
# finding agreement (see test_export.py); tests/test_export_real.py holds a real model to the contract's values.
FAST = ["--latency-runs", "5", "--quiet", "--max-accuracy-loss", "0.05", "--min-finding-agreement", "0.98"]


def _check_gate_v2(section: dict, windows: int = 32) -> None:
    gate = section["gate"]
    assert gate["version"] == 2 and section["n_windows"] == windows and section["passed"] is True
    assert set(gate["conditions"]) == {"cosine", "decisive_top1", "findings", "top5", "macro_auroc"}
    assert all(c["passed"] for c in gate["conditions"].values())
    assert 0.999 <= section["cosine_mean"] <= 1 and section["findings"]["agreement"] >= gate["min_finding_agreement"]


@pytest.mark.slow
def test_tflite_only_bundle_is_small_and_passes_gate_v2(tiny_checkpoint, tmp_path, capsys):
    from edge.bundle.loader import load_bundle
    from edge.cli.info import format_sizes
    from edge.cli.main import main as edge_main
    from edge.runtime.backends import LiteRTBackend
    from edge.runtime.engine import Classifier
    from export.bundle_writer import SIZE_BUDGET_BYTES
    from export.cli import main
    from firmware_bridge.synthetic import synthesize

    out = tmp_path / "b"
    assert main([str(tiny_checkpoint.path), "--out", str(out), "--formats", "tflite", *FAST]) == 0
    assert "tflite_int8 gate v2 passed" in capsys.readouterr().out
    # Only the device model asked for: no int8 ONNX, no fp32 model, within the budget.
    # (decision_scores.npz: what ecg-export redecide reads; manifest.sig: signed by default with the local key)
    assert sorted(p.name for p in out.iterdir()) == ["decision_scores.npz", "encoder_int8.tflite",
                                                     "label_embeddings.npy", "labels.json", "manifest.json",
                                                     "manifest.sig"]
    with load_bundle(out) as bundle:
        m = bundle.manifest
        assert m["models"] == {"onnx_int8": None, "onnx_fp32": None, "tflite_int8": "encoder_int8.tflite"}
        sizes = format_sizes(m, (out / "manifest.json").stat().st_size)
        assert list(sizes) == ["tflite_int8"] and sizes["tflite_int8"] < SIZE_BUDGET_BYTES
        t = m["quantization"]
        assert t["format"] == "tflite_int8" and t["formats"] == ["tflite_int8"] and "tflite" not in t
        assert t["recipe"] == "static_wi8_ai8" and t["calibrate_method"] == "running min/max"
        assert t["keep_fp32"] == ["input", "head"] and 0 < t["float_ops"] < t["ops"]
        assert t["fp32_max_abs_diff_vs_torch"] < 1e-4
        _check_gate_v2(t)
        assert m["thresholds"]["scores"] == "cosine, int8 TFLite encoder"  # thresholds on the model it runs
        assert set(m["metrics"]["tflite_int8"]) >= {"top1", "top5", "macro_auroc"} and "onnx_int8" not in m["metrics"]
        assert m["metrics"]["latency_ms_per_window"]["tflite_int8"] > 0
        with LiteRTBackend.from_file(bundle.model_path("tflite_int8")) as backend:
            x = np.random.default_rng(0).normal(size=(2, 12, 1000)).astype(np.float32)
            emb = backend(x)
        assert emb.shape == (2, 32)
        # The head (projection and L2 norm) runs in float: a unit vector, as fp32 gives.
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    # The runtime picks LiteRT by itself for a bundle that has only the .tflite.
    with Classifier.from_bundle(out) as clf:
        result = clf.classify_window(synthesize(rhythm="sinus", duration_s=10.0, fs=500, seed=5), fs=500)
    assert len(result.top) == 5 and all("zero_shot" in t for t in result.top)
    assert edge_main(["info", "--bundle", str(out)]) == 0
    info = capsys.readouterr().out
    assert "formats     tflite_int8 -> --backend litert (LiteRT)" in info and "onnx_int8 ->" not in info
    assert "tflite_int8: gate v2 passed, vs fp32 on 32 windows (16 validation + 16 test)" in info


@pytest.mark.slow
def test_both_formats_each_pass_gate_v2_and_agree(tiny_checkpoint, tmp_path):
    from edge.bundle.loader import load_bundle
    from edge.runtime.engine import Classifier
    from export.cli import main
    from firmware_bridge.synthetic import synthesize

    out = tmp_path / "b"
    assert main([str(tiny_checkpoint.path), "--out", str(out), "--formats", "onnx,tflite", *FAST]) == 0
    with load_bundle(out) as bundle:
        m = bundle.manifest
    assert m["models"]["onnx_int8"] == "encoder_int8.onnx" and m["models"]["tflite_int8"] == "encoder_int8.tflite"
    q = m["quantization"]
    assert q["format"] == "onnx_int8" and q["formats"] == ["onnx_int8", "tflite_int8"]
    _check_gate_v2(q)
    _check_gate_v2(q["tflite"])
    assert m["thresholds"]["scores"] == "cosine, int8 ONNX encoder"
    # The runtime runs it through either backend, and int8 ONNX and TFLite agree on the ranking.
    x = synthesize(rhythm="sinus", duration_s=10.0, fs=500, seed=5)
    with Classifier.from_bundle(out, backend="litert") as clf:
        lite = clf.classify_window(x, fs=500)
    with Classifier.from_bundle(out, backend="onnx") as clf:
        onnx = clf.classify_window(x, fs=500)
    assert lite.top[0]["id"] == onnx.top[0]["id"]
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["quantization"]["tflite"]["passed"] is True
