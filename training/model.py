"""Models: the 1-D ResNet ECG encoder, the text-side projection, and the contrastive / supervised wrappers.

The ECG encoder is a 1-D ResNet with basic blocks (He et al. 2016, "Deep Residual Learning for Image
Recognition"), ResNet1d-18 in the reference study, followed by a linear projection into the shared
embedding space and an L2 normalisation. ``ECGEncoder`` is exactly the module that ``export/`` turns into
int8 ONNX / TFLite, so it uses only operations that export and quantize cleanly: Conv1d, BatchNorm1d
(folded away by :func:`fuse_batchnorm`), ReLU, max-pool, a mean over time, Linear and add. No in-place
ops, no ``F.normalize`` (its graph crashed ``onnxruntime.quantization.quant_pre_process``; the L2 norm is
written with ``rsqrt`` instead).

``ContrastiveModel`` follows open_clip's ``CLIP`` (Radford et al. 2021, "Learning Transferable Visual
Models From Natural Language Supervision"): ``encode_ecg`` / ``encode_text`` return unit vectors and a
learnable temperature ``logit_scale`` starts at log(1/0.07). An optional learnable ``logit_bias`` serves
the sigmoid loss (Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training").

Input everywhere: float32 ``[B, 12, T]``, leads I..V6, already through the signal contract in ``edge``
(T = 1000 for 10 s at 100 Hz, but any T long enough for the strides works).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = [
    "PRESETS",
    "ContrastiveModel",
    "ECGEncoder",
    "EncoderConfig",
    "ExportableMaxPool1d",
    "ProjectionHead",
    "ResNet1d",
    "SupervisedModel",
    "count_parameters",
    "fuse_batchnorm",
    "l2_normalize",
]


@dataclass
class EncoderConfig:
    """Everything needed to rebuild an :class:`ECGEncoder`; stored in checkpoints and bundle manifests."""

    arch: str = "resnet1d"  # encoder family; only "resnet1d" exists today
    in_leads: int = 12  # input channels (leads I..V6 in the signal contract's order)
    widths: tuple[int, ...] = (64, 128, 256, 512)  # channels of each stage (ResNet1d-18 reference)
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # basic blocks per stage; (2, 2, 2, 2) is ResNet-18
    stem_width: int = 64  # channels of the stem convolution
    stem_kernel: int = 15  # stem kernel (stride 2); 15 samples = 150 ms at 100 Hz
    kernel: int = 7  # kernel of the convolutions inside the blocks (odd)
    embed_dim: int = 256  # size of the shared ECG-text embedding space
    dropout: float = 0.0  # dropout on the pooled features, before the projection (training only)

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.blocks = tuple(int(b) for b in self.blocks)
        if self.arch != "resnet1d":
            raise ValueError(f"unknown encoder arch {self.arch!r} (known: 'resnet1d')")
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ValueError(f"widths {self.widths} and blocks {self.blocks} must be non-empty, same length")
        if self.kernel % 2 == 0 or self.stem_kernel % 2 == 0:
            raise ValueError("kernel and stem_kernel must be odd (same padding)")

    @property
    def feature_dim(self) -> int:
        """Size of the pooled trunk features (input of the projection / classifier head)."""
        return self.widths[-1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"], d["blocks"] = list(self.widths), list(self.blocks)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EncoderConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown EncoderConfig fields: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides) -> EncoderConfig:
        """A named preset (see :data:`PRESETS`), with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown encoder preset {name!r} (known: {', '.join(PRESETS)})")
        return cls(**{**PRESETS[name], **overrides})


# Named presets. resnet1d18 is the reference study's encoder; the smaller ones are for small devices.
PRESETS: dict[str, dict] = {
    "resnet1d18": dict(widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), stem_width=64),
    "resnet1d18-small": dict(widths=(32, 64, 128, 256), blocks=(2, 2, 2, 2), stem_width=32),
    "resnet1d10-tiny": dict(widths=(16, 32, 64, 128), blocks=(1, 1, 1, 1), stem_width=16),
}


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit vectors along the last dim, written with rsqrt so the ONNX graph quantizes cleanly."""
    return x * torch.rsqrt(torch.sum(x * x, dim=-1, keepdim=True) + eps)


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    # Conv and its BatchNorm live together in one Sequential so fuse_batchnorm can find every pair.
    conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm1d(c_out))


class ExportableMaxPool1d(nn.Module):
    """``nn.MaxPool1d`` computed as a 2-D pool over ``[B, C, 1, T]``: same numbers, but exportable.

    ``torch.export`` specialises the time length of ``max_pool1d`` to the example's, and
    ``torch.onnx.export(dynamo=True)`` then silently writes a fixed-T model; ``max_pool2d`` keeps T
    dynamic (ONNX: Unsqueeze, MaxPool, Squeeze).
    """

    def __init__(self, kernel_size: int, stride: int, padding: int = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.max_pool2d(x.unsqueeze(-2), (1, self.kernel_size), (1, self.stride), (0, self.padding))
        return y.squeeze(-2)


class BasicBlock(nn.Module):
    """Conv-BN-ReLU-Conv-BN plus shortcut (1x1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv_bn(c_in, c_out, kernel, stride)
        self.relu1 = nn.ReLU()
        self.conv2 = _conv_bn(c_out, c_out, kernel)
        if stride != 1 or c_in != c_out:
            self.shortcut: nn.Module = _conv_bn(c_in, c_out, 1, stride)
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu1(self.conv1(x)))
        return self.relu2(out + self.shortcut(x))


class ResNet1d(nn.Module):
    """1-D ResNet trunk: ``[B, in_leads, T] -> [B, widths[-1]]`` (global average over time).

    Stem: conv (stride 2) + BN + ReLU + max-pool (stride 2); then one stage per width, the first block of
    every stage after the first downsampling by 2. The time axis shrinks by 2 ** (len(widths) + 1).
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Sequential(
            *_conv_bn(cfg.in_leads, cfg.stem_width, cfg.stem_kernel, stride=2),
            nn.ReLU(),
            ExportableMaxPool1d(kernel_size=3, stride=2, padding=1),
        )
        stages, c_in = [], cfg.stem_width
        for i, (width, n_blocks) in enumerate(zip(cfg.widths, cfg.blocks, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(c_in, width, cfg.kernel, stride)]
            blocks += [BasicBlock(width, width, cfg.kernel) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages(self.stem(x))
        return h.mean(dim=-1)  # global average pool; any T


class ECGEncoder(nn.Module):
    """ResNet1d + dropout + linear projection + L2 norm: ``[B, 12, T] -> [B, embed_dim]`` unit vectors.

    This is the module that gets exported for the device.
    """

    def __init__(self, cfg: EncoderConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or EncoderConfig()
        self.trunk = ResNet1d(self.cfg)
        self.dropout = nn.Dropout(self.cfg.dropout)
        self.proj = nn.Linear(self.cfg.feature_dim, self.cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2_normalize(self.proj(self.dropout(self.trunk(x))))


class ProjectionHead(nn.Module):
    """Text side: maps text features ``[n, in_dim]`` to unit vectors ``[n, embed_dim]``.

    ``hidden_dim=None`` gives one Linear layer; an int gives a 2-layer MLP (Linear-GELU-Dropout-Linear).
    """

    def __init__(
        self, in_dim: int, embed_dim: int = 256, hidden_dim: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.in_dim, self.embed_dim, self.hidden_dim = in_dim, embed_dim, hidden_dim
        if hidden_dim is None:
            self.net: nn.Module = nn.Linear(in_dim, embed_dim)
        else:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden_dim),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden_dim, embed_dim),
            )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return l2_normalize(self.net(features))


class ContrastiveModel(nn.Module):
    """CLIP-style pair of towers with a learnable temperature (open_clip ``CLIP`` layout).

    ``text_tower`` is any module mapping a text input tensor to ``[n, embed_dim]`` features: a
    :class:`ProjectionHead` over frozen text-encoder features, or a trainable text encoder followed by a
    projection. Its output is L2-normalised here, whether or not it already was.
    """

    def __init__(
        self,
        ecg_encoder: ECGEncoder,
        text_tower: nn.Module,
        init_logit_scale: float = math.log(1 / 0.07),
        max_logit_scale: float = 100.0,
        init_logit_bias: float | None = None,
    ) -> None:
        super().__init__()
        self.ecg_encoder = ecg_encoder
        self.text_tower = text_tower
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.max_logit_scale = float(max_logit_scale)
        # A bias only exists for the sigmoid loss (SigLIP initialises scale log(10), bias -10).
        self.logit_bias = (
            None if init_logit_bias is None else nn.Parameter(torch.tensor(float(init_logit_bias)))
        )

    def scale(self) -> torch.Tensor:
        """The multiplier actually applied to cosine similarities: exp(logit_scale), at most 100."""
        return self.logit_scale.exp().clamp(max=self.max_logit_scale)

    def encode_ecg(self, x: torch.Tensor) -> torch.Tensor:
        return self.ecg_encoder(x)

    def encode_text(self, text_input: torch.Tensor) -> torch.Tensor:
        return l2_normalize(self.text_tower(text_input))

    def forward(self, x: torch.Tensor, text_input: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"ecg": self.encode_ecg(x), "text": self.encode_text(text_input), "logit_scale": self.scale()}
        if self.logit_bias is not None:
            out["logit_bias"] = self.logit_bias
        return out


class SupervisedModel(nn.Module):
    """Supervised baseline: the same ResNet1d trunk + a linear head to ``n_labels`` logits (train with BCE)."""

    def __init__(self, cfg: EncoderConfig, n_labels: int) -> None:
        super().__init__()
        self.cfg, self.n_labels = cfg, n_labels
        self.trunk = ResNet1d(cfg)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.feature_dim, n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.trunk(x)))

    def encode_ecg(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised penultimate features ``[B, widths[-1]]``."""
        return l2_normalize(self.trunk(x))

    def embedding_module(self) -> nn.Module:
        """A module whose ``forward`` is :meth:`encode_ecg`, ready for the same export path as ECGEncoder."""
        return _Embedder(self.trunk)


class _Embedder(nn.Module):
    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2_normalize(self.trunk(x))


def fuse_batchnorm(module: nn.Module) -> nn.Module:
    """An eval-mode copy of ``module`` with every Conv1d followed by BatchNorm1d folded into one Conv1d.

    Pairs are found inside ``nn.Sequential`` containers (the models here keep every conv with its BN in
    one); the folded BN is replaced by ``nn.Identity``. The input module is not modified.
    """
    fused = copy.deepcopy(module).eval()
    for seq in fused.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in zip(names, names[1:], strict=False):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv1d) and isinstance(bn, nn.BatchNorm1d):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
    return fused


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
