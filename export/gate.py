"""The numeric gate between a quantized encoder and its fp32 original.

As in onnxruntime-inference-examples' quantization debugging (``run_qdq_debug.py``), quantization is
judged by comparing outputs on real held-out windows, here on what the device actually does with
them: the top-1 label (argmax of the cosine similarity with the label embeddings) must be the same for
at least ``min_top1_agreement`` of the windows, and the mean cosine between the int8 and fp32
embeddings must be at least ``min_cosine_mean``. A model below the gate is refused unless the user
accepts it explicitly, and then the bundle records that it was accepted below the gate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .onnx_export import ExportError

__all__ = ["Gate", "GateError", "agreement"]


class GateError(ExportError):
    """A quantized model failed the gate; ``numbers`` holds the measurements."""

    def __init__(self, message: str, numbers: dict) -> None:
        super().__init__(message)
        self.numbers = numbers


@dataclass
class Gate:
    """Minimum agreement of a quantized encoder with fp32 on the test windows."""

    min_top1_agreement: float = 0.99  # fraction of windows with the same top-1 label as fp32
    min_cosine_mean: float = 0.999  # mean cosine between quantized and fp32 embeddings

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self, numbers: dict, what: str = "int8 model") -> tuple[bool, str]:
        """``(passed, one-line summary)`` for the numbers :func:`agreement` measured."""
        failed = []
        if not numbers["agreement_top1"] >= self.min_top1_agreement:
            failed.append(f"top-1 agreement {numbers['agreement_top1']:.4f} < {self.min_top1_agreement}")
        if not numbers["cosine_mean"] >= self.min_cosine_mean:
            failed.append(f"mean cosine {numbers['cosine_mean']:.5f} < {self.min_cosine_mean}")
        summary = (f"{what} vs fp32 on {numbers['n_windows']} test windows: top-1 agreement "
                   f"{numbers['agreement_top1']:.4f}, embedding cosine mean {numbers['cosine_mean']:.5f} "
                   f"(min {numbers['cosine_min']:.5f})")
        if failed:
            return False, f"{summary}; below the gate: {', '.join(failed)}"
        return True, summary


def agreement(reference: np.ndarray, quantized: np.ndarray, label_embeddings: np.ndarray) -> dict:
    """Top-1 label agreement and embedding cosines of ``quantized`` vs ``reference`` (both ``[N, D]``)."""
    if reference.shape != quantized.shape or len(reference) == 0:
        raise ExportError(f"cannot compare embeddings of shapes {reference.shape} and {quantized.shape}")
    ref = reference.astype(np.float64)
    q = quantized.astype(np.float64)
    cos = np.sum(ref * q, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(q, axis=1) + 1e-12)
    top_ref = np.argmax(ref @ label_embeddings.T, axis=1)
    top_q = np.argmax(q @ label_embeddings.T, axis=1)
    return {
        "n_windows": int(len(ref)),
        "agreement_top1": float(np.mean(top_ref == top_q)),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
    }
