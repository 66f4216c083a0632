"""Unit tests for training.model: shapes, unit norms, BN folding, ONNX export and int8 quantization."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from training.model import (  # noqa: E402
    PRESETS,
    ContrastiveModel,
    ECGEncoder,
    EncoderConfig,
    ExportableMaxPool1d,
    ProjectionHead,
    SupervisedModel,
    count_parameters,
    fuse_batchnorm,
    l2_normalize,
)

TINY = "resnet1d10-tiny"


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, as after training."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=g) * 0.4 - 0.2)
    return model


def _ecg_like(n: int, t: int = 1000, seed: int = 0) -> np.ndarray:
    """Random-ish normalised 12-lead windows: per-lead sinusoids at heart-rate frequencies plus noise."""
    rng = np.random.default_rng(seed)
    time = np.arange(t) / 100.0
    f = rng.uniform(0.8, 2.0, (n, 12, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 12, 1))
    amp = rng.uniform(0.5, 2.0, (n, 12, 1))
    x = amp * np.sin(2 * np.pi * f * time + phase) + 0.3 * rng.standard_normal((n, 12, t))
    return x.astype(np.float32)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# --- config ---------------------------------------------------------------------------------------------


def test_config_round_trip_and_presets():
    for name in PRESETS:
        cfg = EncoderConfig.preset(name)
        assert EncoderConfig.from_dict(cfg.to_dict()) == cfg
    assert EncoderConfig.preset("resnet1d18") == EncoderConfig()  # the default is the reference encoder
    assert EncoderConfig.preset(TINY, embed_dim=64).embed_dim == 64
    with pytest.raises(ValueError):
        EncoderConfig.preset("resnet1d50")
    with pytest.raises(ValueError):
        EncoderConfig.from_dict({"widths": [8], "blocks": [1], "bogus": 1})
    with pytest.raises(ValueError):
        EncoderConfig(widths=(8, 16), blocks=(1,))


# --- shapes and norms -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_encoder_shapes_and_unit_norm(name):
    torch.manual_seed(0)
    enc = ECGEncoder(EncoderConfig.preset(name)).eval()
    with torch.no_grad():
        for t in (1000, 500):
            z = enc(torch.randn(3, 12, t))
            assert z.shape == (3, 256)
            torch.testing.assert_close(z.norm(dim=-1), torch.ones(3), atol=1e-5, rtol=0)


def test_resnet1d18_parameter_count_is_about_8_9_million():
    n = count_parameters(ECGEncoder(EncoderConfig.preset("resnet1d18")))
    assert 8_800_000 < n < 8_950_000  # 8,868,736 with kernel 7, stem 15, embed 256
    assert count_parameters(ECGEncoder(EncoderConfig.preset(TINY))) < 300_000


def test_l2_normalize_matches_reference_and_is_safe_at_zero():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    torch.testing.assert_close(l2_normalize(x), torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


@pytest.mark.parametrize("t", [1000, 501, 7])
def test_exportable_max_pool_equals_max_pool1d(t):
    x = torch.randn(2, 5, t)
    torch.testing.assert_close(ExportableMaxPool1d(3, 2, 1)(x), nn.MaxPool1d(3, 2, 1)(x), atol=0, rtol=0)


def test_projection_head_linear_and_mlp():
    feats = torch.randn(5, 32)
    for head in (ProjectionHead(32, 16), ProjectionHead(32, 16, hidden_dim=64)):
        z = head(feats)
        assert z.shape == (5, 16)
        torch.testing.assert_close(z.norm(dim=-1), torch.ones(5), atol=1e-5, rtol=0)
    assert isinstance(ProjectionHead(32, 16).net, nn.Linear)


def test_contrastive_model_forward_and_logit_scale():
    cfg = EncoderConfig.preset(TINY, embed_dim=16)
    model = ContrastiveModel(ECGEncoder(cfg), ProjectionHead(32, 16))
    out = model(torch.randn(2, 12, 1000), torch.randn(7, 32))
    assert out["ecg"].shape == (2, 16) and out["text"].shape == (7, 16)
    assert math.isclose(out["logit_scale"].item(), 1 / 0.07, rel_tol=1e-5)
    assert "logit_bias" not in out
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1000.0))
    assert model.scale().item() == pytest.approx(100.0)  # clamped when used
    # Any text tower works; its output is normalised by encode_text.
    model = ContrastiveModel(ECGEncoder(cfg), nn.Linear(32, 16), init_logit_bias=-10.0)
    out = model(torch.randn(2, 12, 1000), torch.randn(3, 32))
    torch.testing.assert_close(out["text"].norm(dim=-1), torch.ones(3), atol=1e-5, rtol=0)
    assert out["logit_bias"].item() == -10.0
    assert model.encode_text(torch.randn(4, 32)).shape == (4, 16)


def test_supervised_model_logits_and_embedding():
    cfg = EncoderConfig.preset(TINY)
    model = SupervisedModel(cfg, n_labels=98).eval()
    x = torch.randn(2, 12, 1000)
    with torch.no_grad():
        assert model(x).shape == (2, 98)
        z = model.encode_ecg(x)
        assert z.shape == (2, cfg.feature_dim)
        torch.testing.assert_close(z.norm(dim=-1), torch.ones(2), atol=1e-5, rtol=0)
        torch.testing.assert_close(model.embedding_module()(x), z)


# --- BatchNorm folding ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [TINY, "resnet1d18-small"])
def test_fuse_batchnorm_keeps_outputs_and_removes_bn(name):
    torch.manual_seed(0)
    enc = _randomize_bn(ECGEncoder(EncoderConfig.preset(name))).eval()
    fused = fuse_batchnorm(enc)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm1d) for m in enc.modules())  # the original is untouched
    x = torch.from_numpy(_ecg_like(3))
    with torch.no_grad():
        torch.testing.assert_close(fused(x), enc(x), atol=1e-5, rtol=0)


# --- ONNX export and int8 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """The tiny encoder (eval, realistic BN stats) exported once with dynamic batch and time."""
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    enc = _randomize_bn(ECGEncoder(EncoderConfig.preset(TINY))).eval()
    path = tmp_path_factory.mktemp("onnx") / "encoder.onnx"
    example = torch.from_numpy(_ecg_like(2, seed=1))  # batch >= 2, or the exporter may fix shapes
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("time", min=64)}
    torch.onnx.export(
        enc,
        (example,),
        str(path),
        dynamo=True,
        external_data=False,
        verbose=False,
        input_names=["ecg"],
        output_names=["embedding"],
        dynamic_shapes=(dims,),
    )
    return enc, path


def _session(path):
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


# Both ONNX tests are "slow" because of the shared export (about 5 s); quantizing then takes 0.3 s.
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")
def test_onnx_export_round_trip(tiny_onnx):
    enc, path = tiny_onnx
    sess = _session(path)
    for batch, t in ((1, 1000), (3, 1000), (2, 500)):
        x = _ecg_like(batch, t, seed=batch + t)
        (got,) = sess.run(None, {"ecg": x})
        with torch.no_grad():
            want = enc(torch.from_numpy(x)).numpy()
        assert got.shape == (batch, 256)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")
def test_int8_qdq_static_quantization_keeps_embeddings(tiny_onnx, tmp_path):
    pytest.importorskip("sympy")
    quant = pytest.importorskip("onnxruntime.quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    enc, path = tiny_onnx
    pre, q8 = tmp_path / "pre.onnx", tmp_path / "int8.onnx"
    quant_pre_process(str(path), str(pre))

    class Reader(quant.CalibrationDataReader):
        def __init__(self, windows: np.ndarray) -> None:
            self._it = iter([{"ecg": w[None]} for w in windows])

        def get_next(self):
            return next(self._it, None)

    quant.quantize_static(
        str(pre),
        str(q8),
        Reader(_ecg_like(32, seed=2)),
        quant_format=quant.QuantFormat.QDQ,
        per_channel=True,
        activation_type=quant.QuantType.QUInt8,
        weight_type=quant.QuantType.QInt8,
    )
    assert q8.stat().st_size < path.stat().st_size / 2
    x = _ecg_like(8, seed=3)
    (got,) = _session(q8).run(None, {"ecg": x})
    with torch.no_grad():
        want = enc(torch.from_numpy(x)).numpy()
    assert _cosine(got, want).min() > 0.99
