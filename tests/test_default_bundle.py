"""The default bundle shipped in edge/bundles/default: intact, small, and as good as its model card says."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from edge.bundle.loader import default_bundle_path, load_bundle, verify_bundle

BUNDLE = default_bundle_path()
CARD = BUNDLE.parent / "MODEL_CARD.md"

pytestmark = pytest.mark.skipif(not (BUNDLE / "manifest.json").is_file(), reason="no default bundle built yet")


def test_manifest_matches_its_files_and_budget():
    manifest = verify_bundle(BUNDLE)
    on_disk = {p.name for p in BUNDLE.iterdir() if p.is_file() and p.name != "manifest.json"}
    assert on_disk == set(manifest["files"]), "files on disk and in the manifest differ"
    assert sum(f["bytes"] for f in manifest["files"].values()) <= 3_000_000
    assert manifest["quantization"]["cosine_mean"] >= 0.999
    with load_bundle() as bundle:  # the default is what ecg-edge uses without --bundle
        assert len(bundle.labels) >= 98 and bundle.embeddings.shape[0] == len(bundle.labels)
        np.testing.assert_allclose(np.linalg.norm(bundle.embeddings, axis=1), 1.0, atol=1e-4)


def test_model_card_states_the_manifest_figures():
    manifest = json.loads((BUNDLE / "manifest.json").read_text(encoding="utf-8"))
    card = CARD.read_text(encoding="utf-8")
    stated = manifest["metrics"]["onnx_int8"]
    for key in ("top1", "top5"):
        assert f"**{stated[key]:.3f}**" in card, key
    assert "not a certified medical device" in card and "Wagner" in card


# Figures across CPUs (issue 25, item 12): the manifest's figures are measured where the export ran (the bundle of
# 2026-12-07 on the AVX2-only EPYC; the one before on an AVX-512 machine); onnxruntime's int8 kernels differ by
# instruction set (AVX2 without VNNI adds u8 x s8 products pairwise into 16 bits with
# saturation). Measured by bench/bench_isa.py (BENCHMARKS.md, section bench_isa) on an AVX2-only AMD EPYC, fold 10
# (N = 137) and the gate's 273 windows: against the kernel-free QDQ reference the AVX2 kernels change a cosine
# score by at most 0.0074 (u8 x u8 kernels: 0.0039), no top-1 label, 2 of 26,754 finding decisions; top-1 and
# top-5 equal the manifest's, macro AUROC 0.79132 vs 0.79147 (-0.00015). Tolerances from those figures:
KERNEL_SCORE_ENVELOPE = 0.015  # 2x the largest measured score change of any kernel from the reference
AUROC_TOLERANCE = 0.001  # ~6.5x the measured AVX2 - AVX-512 gap; one rank swap in the rarest label moves it ~1.2e-4
WINDOWS_TOLERATED = 1  # top-1 / top-5: one window of N may change (0 measured): a near-tie within the envelope


@pytest.mark.slow
def test_default_bundle_reproduces_its_figures_on_fold_10(shared_data):
    import onnxruntime as ort

    from edge.interpret.catalogue import load_catalogue
    from edge.runtime.backends import OnnxBackend
    from training.evaluate import bundle_scores, evaluate_bundle
    from training.prepare import Source, default_cache_dir, prepare

    with load_bundle() as bundle:
        # The datasets the export measured on (its manifest), read from the shared data folder.
        kinds = [s["kind"] for s in bundle.manifest["provenance"]["export_data"]["sources"]]
        sources = [Source(k, shared_data / k) for k in kinds]
        ds = prepare(sources, default_cache_dir(sources, bundle.signal), bundle.signal, progress=False)
        idx = ds.indices([10])
        windows = np.asarray(ds.windows[idx], np.float32)
        metrics = evaluate_bundle(bundle, windows, ds.labels[idx].astype(np.float32),
                                  load_catalogue().ids, known=np.asarray(ds.known[idx]))
        stated = bundle.manifest["metrics"]["onnx_int8"]
        # This CPU's int8 kernels stay within the measured envelope of the kernel-free QDQ reference.
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        path = bundle.model_path("onnx_int8")
        reference = OnnxBackend(path, ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]))
        ref_scores = np.concatenate([reference(windows[i : i + 64]) for i in range(0, len(windows), 64)])
        ref_scores = ref_scores @ bundle.embeddings.T
        device_scores = bundle_scores(bundle, windows)
    n = len(windows)
    assert np.abs(device_scores - ref_scores).max() <= KERNEL_SCORE_ENVELOPE
    for key in ("top1", "top5"):
        assert abs(metrics[key] - stated[key]) <= WINDOWS_TOLERATED / n + 1e-9, (key, metrics[key], stated[key])
    assert metrics["macro_auroc"] == pytest.approx(stated["macro_auroc"], abs=AUROC_TOLERANCE)
    card = CARD.read_text(encoding="utf-8")
    assert f"top-1 accuracy **{stated['top1']:.3f}**" in card


@pytest.mark.slow
def test_raw_ptbxl_records_through_the_device_path_match(shared_data):
    """ecg-edge's Classifier on raw fold-10 WFDB files gives the scores of the evaluated windows."""
    wfdb = pytest.importorskip("wfdb")
    import csv

    from edge.runtime.engine import Classifier

    rows = [r for r in csv.DictReader((shared_data / "ptbxl" / "ptbxl_database.csv").open(encoding="utf-8"))
            if r["strat_fold"] == "10"][:12]
    with Classifier.from_bundle() as clf:
        for row in rows:
            rec = wfdb.rdrecord(str(shared_data / "ptbxl" / row["filename_hr"]))
            result = clf.classify_window(rec.p_signal.T, rec.fs, leads=[n.upper() for n in rec.sig_name])
            assert result.quality["ok"] and len(result.top) == 5
            rec100 = wfdb.rdrecord(str(shared_data / "ptbxl" / row["filename_lr"]))
            low = clf.classify_window(rec100.p_signal.T, rec100.fs, leads=rec100.sig_name)
            # 500 Hz and 100 Hz files of the same ECG: the same leading findings.
            assert result.top[0]["id"] in {t["id"] for t in low.top[:3]}


@pytest.mark.slow
def test_demo_runs_without_data(tmp_path, monkeypatch):
    from edge.cli.demo import main

    monkeypatch.setenv("ECG_DATA_DIR", str(tmp_path / "nothing"))
    out = tmp_path / "demo.jsonl"
    assert main(["--duration", "13", "--out", str(out)]) == 0
    every = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    lines = [x for x in every if "event" not in x]  # event lines (device_changed) come too (contract 5)
    assert lines and all(re.match(r"\d{4}-", x["t"]) and len(x["top"]) == 5 for x in lines)
