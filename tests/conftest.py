"""Shared test fixtures.

Real ECG data is never part of the repository: tests that need it use the one ``shared_data`` fixture,
which finds ``../shared/data`` beside the checkout (as in CI) or the folder named by ``ECG_DATA_DIR``,
and skips the test when neither exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Trusted keys, the export's local signing key and the bundle rollback state live in this configuration
# folder (edge.bundle.signing.config_dir): one per test session, never the user's ~/.config.
if not os.environ.get("ECG_CLIP_JA_CONFIG"):
    import atexit
    import shutil
    import tempfile

    os.environ["ECG_CLIP_JA_CONFIG"] = tempfile.mkdtemp(prefix="ecg-clip-ja-test-config-")
    atexit.register(shutil.rmtree, os.environ["ECG_CLIP_JA_CONFIG"], True)


def _shared_data_dir() -> Path:
    env = os.environ.get("ECG_DATA_DIR")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real ECG data (``ptbxl/``, ``cinc2021/``, ``ptbxl_processed/``, ``wfdb_samples/``)."""
    root = _shared_data_dir()
    if not (root / "ptbxl" / "ptbxl_database.csv").is_file():
        pytest.skip(f"real ECG data not found at {root} (set ECG_DATA_DIR)")
    return root


# --- edge runtime: a tiny but complete bundle ---------------------------------------------------------
def _calibration_windows(n: int, seed: int = 0):
    """Model inputs from the synthetic ECG generator, through the one signal contract function."""
    import numpy as np

    from edge.dsp.signal import SignalConfig, preprocess
    from firmware_bridge.synthetic import RHYTHMS, synthesize

    rhythms = [r for r in RHYTHMS if r != "wide_qrs"]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = synthesize(
            rhythm=rhythms[i % len(rhythms)], fs=500, seed=int(rng.integers(1 << 30)), duration_s=10.0
        )
        out.append(preprocess(x * float(rng.uniform(0.5, 2.0)), 500, SignalConfig()))
    return np.stack(out)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """``(torch module, fp32 ONNX path, int8 ONNX path)`` of a seeded resnet1d10-tiny ECG encoder.

    Exported as in the toolchain notes (dynamo, one file, batch-2 example, dynamic batch) and quantized
    static QDQ (uint8 activations, int8 per-channel weights) on synthetic ECG windows.
    """
    torch = pytest.importorskip("torch")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from training.model import ECGEncoder, EncoderConfig

    folder = tmp_path_factory.mktemp("tiny_encoder")
    torch.manual_seed(0)
    model = ECGEncoder(EncoderConfig.preset("resnet1d10-tiny", embed_dim=64)).eval()
    calib = _calibration_windows(16)
    with torch.no_grad():  # give BatchNorm realistic running statistics, then freeze
        model.train()
        for _ in range(3):
            model(torch.from_numpy(calib))
        model.eval()
    fp32 = folder / "encoder_fp32.onnx"
    example = (torch.from_numpy(calib[:2]),)
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(
        model,
        example,
        str(fp32),
        input_names=["ecg"],
        output_names=["embedding"],
        dynamic_shapes={"x": {0: batch}},
        dynamo=True,
        external_data=False,
        verbose=False,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"ecg": calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.items, None)

    int8 = folder / "encoder_int8.onnx"
    quantize_static(
        str(fp32),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return model, fp32, int8


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_encoder):
    """A complete bundle folder (contract 3) around the tiny encoder; returns its Path.

    Labels: the shipped catalogue plus two new (zero-shot) labels, random unit text embeddings, thresholds
    spread so that some labels are findings. int8 and fp32 ONNX, no TFLite. (To be replaced by the real
    export pipeline; keep the contract: a verified bundle folder.)
    """
    import json
    import shutil

    import numpy as np

    from edge.bundle.loader import write_manifest
    from edge.dsp.signal import SignalConfig

    model, fp32, int8 = tiny_encoder
    folder = tmp_path_factory.mktemp("tiny_bundle")
    shutil.copy(fp32, folder / "encoder_fp32.onnx")
    shutil.copy(int8, folder / "encoder_int8.onnx")
    doc = json.loads((REPO_ROOT / "edge" / "data" / "labels.json").read_text(encoding="utf-8"))
    labels = [{k: lb[k] for k in ("id", "ja", "en", "category")} | {"new": False} for lb in doc["labels"]]
    labels += [
        {
            "id": "TEST_NEW1",
            "ja": "試験用新規ラベル",
            "en": "test new label",
            "category": "other",
            "new": True,
        },
        {
            "id": "TEST_NEW2",
            "ja": "試験用ラベル二",
            "en": "second test label",
            "category": "other",
            "new": True,
        },
    ]
    rng = np.random.default_rng(1)
    dim = model.cfg.embed_dim
    emb = rng.standard_normal((len(labels), dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    np.save(folder / "label_embeddings.npy", emb)
    for lb, th in zip(labels, rng.uniform(0.05, 0.3, len(labels)), strict=True):
        lb["threshold"] = round(float(th), 4)
    (folder / "labels.json").write_text(json.dumps(labels, ensure_ascii=False, indent=1), encoding="utf-8")
    signal = SignalConfig()
    write_manifest(
        folder,
        {
            "name": "tiny-test",
            "created": "2026-01-01T00:00:00+00:00",
            "models": {
                "onnx_int8": "encoder_int8.onnx",
                "onnx_fp32": "encoder_fp32.onnx",
                "tflite_int8": None,
            },
            "signal": signal.to_dict(),
            "model": {
                "input_name": "ecg",
                "output_name": "embedding",
                "input_shape": ["batch", 12, signal.n_samples],
                "output_shape": ["batch", dim],
                "encoder": model.cfg.to_dict(),
            },
            "embedding_dim": dim,
            "logit_scale": 14.2857,
            "labels": labels,
            "label_embeddings": "label_embeddings.npy",
            "quantization": {
                "mode": "static QDQ, uint8 activations, int8 per-channel weights",
                "calibration_windows": 16,
            },
            "text_encoder": {"name": "random unit vectors (test fixture)", "dim": dim},
            "provenance": {"training_data": "none: random weights (test fixture)", "code_version": "test"},
            "metrics": {},
        },
    )
    # Signed with the session's local export key, which this test machine trusts (devices refuse unsigned).
    from export.signing import local_key, sign_manifest

    sign_manifest(folder, local_key())
    return folder


# --- export: a tiny trained contrastive checkpoint --------------------------------------------------
from dataclasses import dataclass  # noqa: E402 - this section was appended for the export tests


@dataclass(frozen=True)
class TinyCheckpoint:
    """A trained checkpoint and the synthetic dataset (manifest CSV) it was trained on."""

    path: Path  # checkpoint.pt
    manifest: Path  # manifest.csv: splits train/val/test = folds 1/9/10
    labels: tuple[str, ...]  # catalogue ids present in the data
    holdout: tuple[str, ...]  # labels held out of training (zero-shot, "new" in bundles)


TINY_RHYTHM_LABELS = {"sinus": "SR", "afib": "AFIB", "wide_qrs": "CLBBB", "st_elevation": "STE"}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> TinyCheckpoint:
    """A 2-epoch ``resnet1d10-tiny`` contrastive model (``hashing`` text encoder, 32-d, STE held out) trained
    on synthetic 20-s ECGs: per rhythm 4 training, 2 validation and 2 test records, 2 windows each."""
    pytest.importorskip("torch")
    import numpy as np

    from firmware_bridge.synthetic import synthesize
    from training.cli import train_main

    root = tmp_path_factory.mktemp("tiny_checkpoint")
    data = root / "data"
    data.mkdir()
    rows = ["path,labels,fs,patient_id,split"]
    splits = ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    i = 0
    for rhythm, label in TINY_RHYTHM_LABELS.items():
        for split in splits:
            x = synthesize(rhythm=rhythm, duration_s=20.0, fs=250, seed=100 + i)
            np.save(data / f"r{i}.npy", x.astype(np.float32))
            rows.append(f"r{i}.npy,{label},250,p{i},{split}")
            i += 1
    manifest = data / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    run = root / "run"
    args = [
        "--data",
        f"manifest={manifest}",
        "--out",
        str(run),
        "--encoder",
        "resnet1d10-tiny",
        "--embed-dim",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--text-encoder",
        "hashing",
        "--quiet",
        "--train-folds",
        "1",
        "--val-folds",
        "9",
        "--test-folds",
        "10",
        "--cache",
        str(root / "cache"),
        "--holdout-labels",
        "STE",
    ]
    assert train_main(args) == 0
    return TinyCheckpoint(run / "checkpoint.pt", manifest, tuple(TINY_RHYTHM_LABELS.values()), ("STE",))


# --- test layers (README "Tests"): unit, integration (no hardware), real data -------------------------
# Modules that cross a process or device boundary without hardware: a pty or loop:// serial stream, a local HTTP
# server, a subprocess, a compiled C program, a browser, a wheel install. Everything else is a unit test.
INTEGRATION_MODULES = frozenset({
    "test_cli_usability", "test_edge_cli", "test_edge_runtime", "test_firmware_c", "test_firmware_cli",
    "test_firmware_simulator", "test_hostile_output", "test_hostile_stream", "test_hostile_webview",
    "test_log_rotation", "test_page_states", "test_steady_device", "test_webview", "test_webview_browser",
    "test_webview_scales", "test_wheel",
})


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ANN001 - pytest's hook
    """Mark every test with its layer: ``shared_data`` (uses the real-data fixture), else ``integration``
    (a module of :data:`INTEGRATION_MODULES`), else ``unit``. ``slow`` stays as each test declares it."""
    for item in items:
        module = Path(str(item.fspath)).stem
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)
        elif module in INTEGRATION_MODULES:
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)
