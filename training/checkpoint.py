"""Self-describing checkpoints: everything needed to rebuild the model travels with the weights.

As in nanoGPT (``model_args``) and open_clip (preprocess config with weights), a checkpoint stores the
encoder config, the signal contract, the label set (and which labels were held out), the text spec,
the precomputed text input of every label, the weights, metrics and provenance. It holds only tensors
and plain Python values, so ``torch.load(..., weights_only=True)`` loads it.
"""

from __future__ import annotations

import datetime as _dt
import math
import subprocess
from pathlib import Path

import torch
from torch import nn

from edge.dsp.signal import SignalConfig

from .model import ContrastiveModel, ECGEncoder, EncoderConfig, SupervisedModel
from .text_side import build_text_tower

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "build_model", "code_version"]

CHECKPOINT_FORMAT = "ecg-clip-ja/checkpoint/1"


def code_version() -> str:
    """The git commit of the code (with ``+dirty`` when the tree has changes), or ``unknown``."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def build_model(ckpt: dict) -> nn.Module:
    """Rebuild the (untrained) model a checkpoint describes."""
    enc_cfg = EncoderConfig.from_dict(ckpt["encoder"])
    if ckpt["kind"] == "supervised":
        return SupervisedModel(enc_cfg, len(ckpt["train_label_ids"]))
    bias = 0.0 if ckpt.get("loss") == "sigmoid" else None
    scale = math.log(1 / float(ckpt.get("init_temperature") or 0.07))
    return ContrastiveModel(ECGEncoder(enc_cfg), build_text_tower(ckpt["text"]), init_logit_scale=scale,
                            init_logit_bias=bias)


def save_checkpoint(path: str | Path, model: nn.Module, **info) -> Path:
    """Write ``model``'s weights with ``info`` (kind, encoder, signal, label_ids, text, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = model.module if hasattr(model, "module") else model  # unwrap DDP
    payload = {
        "format": CHECKPOINT_FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        **info,
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint
    return path


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, dict]:
    """``(model in eval mode, checkpoint dict)``; raises ValueError for files that are not checkpoints."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a loadable checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an ecg-clip-ja checkpoint (format {ckpt.get('format') if isinstance(ckpt, dict) else None})")
    model = build_model(ckpt)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    ckpt["signal_config"] = SignalConfig.from_dict(ckpt["signal"])
    return model, ckpt
