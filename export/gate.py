"""The numeric gate between a quantized encoder and its fp32 original.

As in onnxruntime-inference-examples' quantization debugging (``run_qdq_debug.py``), quantization is
judged by comparing outputs on real held-out windows, here on what the device actually does with
them: the top-1 label (argmax of the cosine similarity with the label embeddings) must be the same for
at least ``min_top1_agreement`` of the windows, and the mean cosine between the int8 and fp32
embeddings must be at least ``min_cosine_mean``. A model below the gate is refused unless the user
accepts it explicitly, and then the bundle records that it was accepted below the gate.

Top-1 agreement is sensitive to near-ties: a contrastive model over 98 labels with parents and children
(洞調律 / 正常心電図, 心筋梗塞 / 下壁心筋梗塞) often scores its two best labels within 0.002 of each
other, and any quantization noise swaps them. Each disagreement is therefore recorded with the fp32
margin between the two labels, and ``tie_margin`` (default 0: the strict gate) lets a swap between labels
whose fp32 scores are within that margin count as agreement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .onnx_export import ExportError

__all__ = ["Gate", "GateError", "agreement", "agreement_within", "near_ties", "pass_probability", "wilson_interval"]


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
    tie_margin: float = 0.0  # a top-1 swap between labels within this fp32 score margin still agrees

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self, numbers: dict, what: str = "int8 model") -> tuple[bool, str]:
        """``(passed, one-line summary)`` for the numbers :func:`agreement` measured."""
        failed = []
        top1 = numbers["agreement_top1"] if self.tie_margin <= 0 else agreement_within(numbers, self.tie_margin)
        label = "top-1 agreement" if self.tie_margin <= 0 else f"top-1 agreement (ties within {self.tie_margin:g})"
        if not top1 >= self.min_top1_agreement:
            failed.append(f"{label} {top1:.4f} < {self.min_top1_agreement}")
        if not numbers["cosine_mean"] >= self.min_cosine_mean:
            failed.append(f"mean cosine {numbers['cosine_mean']:.5f} < {self.min_cosine_mean}")
        swaps = numbers.get("disagreements", [])
        margins = ", ".join(f"{d['fp32_top1']}->{d['quantized_top1']} ({d['fp32_margin']:.4f})" for d in swaps[:5])
        summary = (f"{what} vs fp32 on {numbers['n_windows']} test windows: top-1 agreement "
                   f"{numbers['agreement_top1']:.4f}" + (f" ({label} {top1:.4f})" if self.tie_margin > 0 else "")
                   + f", embedding cosine mean {numbers['cosine_mean']:.5f} (min {numbers['cosine_min']:.5f})"
                   + (f"; top-1 changes (fp32 score margin): {margins}" if margins else ""))
        if failed:
            return False, f"{summary}; below the gate: {', '.join(failed)}"
        return True, summary


def agreement_within(numbers: dict, tie_margin: float) -> float:
    """Top-1 agreement counting swaps between labels within ``tie_margin`` in fp32 as agreement."""
    misses = sum(1 for d in numbers.get("disagreements", []) if d["fp32_margin"] > tie_margin)
    return 1.0 - misses / max(1, numbers["n_windows"])


def agreement(reference: np.ndarray, quantized: np.ndarray, label_embeddings: np.ndarray,
              label_ids: list[str] | None = None) -> dict:
    """Top-1 label agreement and embedding cosines of ``quantized`` vs ``reference`` (both ``[N, D]``).

    ``disagreements`` lists every window whose top-1 label changed: the two labels and the fp32 margin
    between their scores (small margins are near-ties).
    """
    if reference.shape != quantized.shape or len(reference) == 0:
        raise ExportError(f"cannot compare embeddings of shapes {reference.shape} and {quantized.shape}")
    ref = reference.astype(np.float64)
    q = quantized.astype(np.float64)
    cos = np.sum(ref * q, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(q, axis=1) + 1e-12)
    scores = ref @ label_embeddings.T.astype(np.float64)
    top_ref = np.argmax(scores, axis=1)
    top_q = np.argmax(q @ label_embeddings.T.astype(np.float64), axis=1)
    names = label_ids or [str(j) for j in range(label_embeddings.shape[0])]
    rows = np.arange(len(ref))
    margin = scores[rows, top_ref] - scores[rows, top_q]
    changed = np.flatnonzero(top_ref != top_q)
    return {
        "n_windows": int(len(ref)),
        "agreement_top1": float(np.mean(top_ref == top_q)),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "disagreements": [{"fp32_top1": names[top_ref[i]], "quantized_top1": names[top_q[i]],
                           "fp32_margin": round(float(margin[i]), 6)} for i in changed],
    }


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % for ``z = 1.96``)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def pass_probability(windows: int, allowed: int, rate: float) -> float:
    """Probability that at most ``allowed`` of ``windows`` change, each independently with ``rate`` (binomial)."""
    from math import comb

    r = min(max(rate, 0.0), 1.0)
    return float(sum(comb(windows, k) * r**k * (1 - r) ** (windows - k) for k in range(allowed + 1)))


def near_ties(reference: np.ndarray, quantized: np.ndarray, label_embeddings: np.ndarray, gate_windows: int | None = None,
              min_agreement: float = 0.99) -> dict:
    """How top-1 agreement follows from the fp32 near-ties and the quantization noise.

    For each window, ``margin`` is the fp32 score of its top-1 label minus that of its runner-up, and
    ``noise`` is how much quantization changed that same difference. A window can only change its top-1
    label when its margin is within the noise, so the agreement a quantized model can reach is set by
    how many windows the fp32 model itself scores as near-ties. Returns:

    - ``margin_quantiles``: fp32 margins at 1, 5, 10 and 50 %;
    - ``noise_abs_quantiles``: |noise| at 50, 95 and 99 %;
    - ``within_noise``: fraction of windows whose fp32 margin is below the 99th percentile of |noise|;
    - ``agreement_beyond_noise``: top-1 agreement on the other windows;
    - ``expected_change_rate``: the rate of top-1 changes predicted from the margins and the pooled noise
      distribution (each window's margin against every window's noise); a lower-variance estimate than
      counting the few changes that happened;
    - ``agreement_ci95``: Wilson interval of the counted agreement;
    - ``p_pass_strict``: with ``gate_windows``, the probability that a model with the expected change
      rate keeps at least ``min_agreement`` on that many windows (binomial), i.e. how reproducible a
      strict gate on a test fold of that size is.
    """
    ref = reference.astype(np.float64)
    q = quantized.astype(np.float64)
    emb = label_embeddings.astype(np.float64)
    s_ref, s_q = ref @ emb.T, q @ emb.T
    order = np.argsort(-s_ref, axis=1)
    rows = np.arange(len(ref))
    a, b = order[:, 0], order[:, 1]
    margin = s_ref[rows, a] - s_ref[rows, b]
    noise = (s_q[rows, a] - s_q[rows, b]) - margin
    p99 = float(np.quantile(np.abs(noise), 0.99))
    same = s_q.argmax(axis=1) == a
    beyond = margin >= p99
    # P(noise_j < -margin_i) over all pairs (i, j), by sorting: no N x N matrix.
    sorted_noise = np.sort(noise)
    expected = float(np.mean(np.searchsorted(sorted_noise, -margin, side="left") / len(noise)))
    out = {
        "n_windows": int(len(ref)),
        "margin_quantiles": {f"p{k}": float(np.quantile(margin, k / 100)) for k in (1, 5, 10, 50)},
        "noise_abs_quantiles": {f"p{k}": float(np.quantile(np.abs(noise), k / 100)) for k in (50, 95, 99)},
        "within_noise": float(np.mean(~beyond)),
        "agreement_beyond_noise": float(np.mean(same[beyond])) if beyond.any() else float("nan"),
        "expected_change_rate": expected,
        "agreement_ci95": wilson_interval(int(same.sum()), len(ref)),
    }
    if gate_windows:
        allowed = int(np.floor(gate_windows * (1 - min_agreement) + 1e-9))
        out["p_pass_strict"] = {"windows": int(gate_windows), "allowed_changes": allowed,
                                "probability": pass_probability(gate_windows, allowed, expected)}
    return out
