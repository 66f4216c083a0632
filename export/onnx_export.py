"""The ECG encoder as an fp32 ONNX file: BatchNorm folded, dynamic batch, checked against torch.

The exported graph is the checkpoint's ECG tower (``model.ecg_encoder``: ResNet1d, projection, L2
norm) with every BatchNorm folded into its convolution (:func:`training.model.fuse_batchnorm`), so the
int8 model quantizes one conv per layer and LiteRT sees no transposes. Input ``ecg`` is
``float32[batch, 12, T]`` (``T`` fixed by the signal contract), output ``embedding`` is
``float32[batch, D]`` unit vectors.

Export follows the toolchain notes: ``torch.onnx.export(dynamo=True)`` with ``external_data=False`` (one
file), an example batch of at least 2 and the batch dimension declared dynamic. The exporter once fixed
the time length silently (``nn.MaxPool1d``), so the written file's input shape is read back and
checked, and the file is run by onnxruntime on real windows at two batch sizes and compared with torch.

The stem (conv, ReLU, max-pool) is written as 2-D operations over ``[B, 12, 1, T]`` (:class:`Stem2d`,
the same numbers): onnxruntime runs 2-D convolutions and pools with its blocked NCHWc kernels, 1-D
ones with im2col, and the stem stays fp32 in the int8 model, where it was the largest fp32 cost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from training.model import ExportableMaxPool1d, fuse_batchnorm

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "ExportError", "OnnxModelInfo", "Stem2d", "encoder_for_export", "export_onnx",
           "check_onnx_against_torch", "onnx_io"]

logger = logging.getLogger(__name__)

INPUT_NAME = "ecg"
OUTPUT_NAME = "embedding"


class ExportError(RuntimeError):
    """The export cannot go on: bad checkpoint, a model that does not match torch, a failed gate..."""


@dataclass
class OnnxModelInfo:
    """Names and shapes of an exported encoder, as the bundle manifest's ``model`` section lists them."""

    input_name: str
    output_name: str
    input_shape: list  # [None, 12, T]: None for the dynamic batch
    output_shape: list  # [None, D]
    opset: int

    def to_dict(self) -> dict:
        return {"input_name": self.input_name, "output_name": self.output_name, "input_shape": self.input_shape,
                "output_shape": self.output_shape, "opset": self.opset}


class Stem2d(nn.Module):
    """A folded stem ``Conv1d -> ReLU -> max-pool`` computed as 2-D operations on ``[B, C, 1, T]``."""

    def __init__(self, conv: nn.Conv1d, pool: ExportableMaxPool1d) -> None:
        super().__init__()
        if conv.dilation[0] != 1 or conv.groups != 1 or conv.bias is None:
            raise ExportError("Stem2d handles a plain folded Conv1d (bias, no dilation or groups)")
        self.weight = nn.Parameter(conv.weight.detach().unsqueeze(2).clone(), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.stride, self.padding = conv.stride[0], conv.padding[0]
        self.pool = (pool.kernel_size, pool.stride, pool.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(F.conv2d(x.unsqueeze(2), self.weight, self.bias, (1, self.stride), (0, self.padding)))
        k, s, p = self.pool
        return F.max_pool2d(h, (1, k), (1, s), (0, p)).squeeze(2)


def _stem_as_2d(encoder: nn.Module) -> None:
    """Replace ``encoder.trunk.stem`` (folded conv, Identity, ReLU, max-pool) by :class:`Stem2d` in place."""
    stem = getattr(getattr(encoder, "trunk", None), "stem", None)
    parts = [m for m in stem if not isinstance(m, nn.Identity)] if isinstance(stem, nn.Sequential) else []
    kinds = [type(m) for m in parts]
    if kinds != [nn.Conv1d, nn.ReLU, ExportableMaxPool1d]:
        logger.info("stem %s kept as it is", [k.__name__ for k in kinds])
        return
    encoder.trunk.stem = Stem2d(parts[0], parts[2])


def encoder_for_export(model: nn.Module, ckpt: dict) -> nn.Module:
    """The checkpoint's ECG tower with BatchNorm folded, in eval mode; refuses non-contrastive models."""
    if ckpt.get("kind") != "contrastive":
        raise ExportError(
            f"this checkpoint is a {ckpt.get('kind')!r} model; a bundle needs a contrastive model (ECG encoder "
            "+ text tower) so labels can be scored by their text embeddings. The supervised baseline has no "
            "text embeddings and cannot score new labels: train with --model contrastive")
    fused = fuse_batchnorm(model.ecg_encoder).eval()
    left = [name for name, m in fused.named_modules() if isinstance(m, nn.BatchNorm1d)]
    if left:
        raise ExportError(f"BatchNorm layers not folded into a convolution: {left[:5]}")
    _stem_as_2d(fused)
    return fused


def onnx_io(path: str | Path) -> OnnxModelInfo:
    """Input/output names and shapes of an ONNX file (``None`` for symbolic dimensions)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def dims(value_info) -> list:
        return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]

    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    inp, out = model.graph.input[0], model.graph.output[0]
    return OnnxModelInfo(inp.name, out.name, dims(inp), dims(out), int(opset))


def export_onnx(encoder: nn.Module, path: str | Path, example: np.ndarray) -> OnnxModelInfo:
    """Write ``encoder`` as one fp32 ONNX file with a dynamic batch; returns (and checks) its I/O.

    ``example`` is a few real model inputs ``[B >= 2, 12, T]``; ``T`` becomes the fixed time length.
    """
    path = Path(path)
    if example.ndim != 3 or example.shape[0] < 2:
        raise ExportError(f"the export example must be [batch >= 2, 12, T], got {example.shape}")
    x = torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32))
    batch = torch.export.Dim("batch", min=1, max=65536)
    logger.info("exporting the ECG encoder to ONNX (dynamo exporter)")
    try:
        torch.onnx.export(encoder, (x,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_shapes=({0: batch},), dynamo=True, external_data=False, verbose=False)
    except Exception as exc:  # the exporter raises many unrelated classes
        raise ExportError(f"torch.onnx.export failed: {exc}") from exc
    info = onnx_io(path)
    n_leads, n_samples = example.shape[1:]
    if info.input_shape[0] is not None or info.input_shape[1:] != [n_leads, n_samples]:
        raise ExportError(f"exported input shape {info.input_shape}, expected [batch (dynamic), {n_leads}, {n_samples}]")
    with torch.no_grad():
        dim = int(encoder(x[:1]).shape[1])
    if info.output_shape[1:] != [dim]:
        raise ExportError(f"exported output shape {info.output_shape}, expected [batch, {dim}]")
    return info


def check_onnx_against_torch(encoder: nn.Module, path: str | Path, windows: np.ndarray, atol: float = 1e-4) -> float:
    """Run the ONNX file with onnxruntime on ``windows`` (whole batch and batch 1) and compare with torch.

    Returns the largest absolute difference; raises :class:`ExportError` above ``atol``.
    """
    from edge.runtime.backends import OnnxBackend

    windows = np.ascontiguousarray(windows, dtype=np.float32)
    with torch.no_grad():
        expected = encoder(torch.from_numpy(windows)).numpy()
    with OnnxBackend.from_file(path, threads=1) as backend:
        batched = backend(windows)
        single = backend(windows[:1])
    diff = float(max(np.abs(batched - expected).max(), np.abs(single - expected[:1]).max()))
    if not np.isfinite(diff) or diff > atol:
        raise ExportError(f"the ONNX encoder differs from torch by {diff:.3g} (tolerance {atol:g}) on "
                          f"{len(windows)} real windows: the export is wrong")
    logger.info("ONNX fp32 matches torch on %d windows (max abs diff %.2g)", len(windows), diff)
    return diff
