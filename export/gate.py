"""The int8 gate (v2, DESIGN.md contract 3) between a quantized encoder and its fp32 original.

As in onnxruntime-inference-examples' quantization debugging (``run_qdq_debug.py``), quantization is
judged by comparing outputs on real held-out windows, here on what the device does with them. The gate
runs over every window of the validation and test folds and passes when all of these hold:

1. ``cosine``: mean cosine between the int8 and fp32 embeddings >= 0.999;
2. ``decisive_top1``: top-1 label agreement >= 99 % on the *decisive* windows, those whose fp32 top-1
   margin (top-1 score minus runner-up) exceeds the int8 noise: the 99th percentile of |int8 - fp32| on
   the top-2 score difference, measured on the same windows. A window tied within that noise (usually
   two true labels of one ECG, 洞調律 / 正常心電図) may flip for no clinical reason; it is still counted
   in the strict agreement and listed, but it cannot fail the gate;
3. ``findings``: per-(window, label) finding decisions (score >= the bundle's threshold) agree on
   >= 99.5 % of the pairs (labels without a threshold make no decisions and are left out);
4. ``top5`` and ``macro_auroc``: against the ground truth, int8 loses at most 0.01 of top-5 accuracy
   and of macro AUROC (labels never trained are scored but not counted, as in ``training.metrics``).

Strict top-1 agreement, every changed window and the near-tie analysis (:func:`near_ties`) are measured
and recorded whatever the outcome. A model below the gate is refused unless the user accepts it
explicitly (``--accept-below-gate``), and then the bundle records that it was accepted below the gate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .onnx_export import ExportError

__all__ = ["GATE_VERSION", "Gate", "GateError", "agreement", "failure_text", "measure", "near_ties", "pass_probability",
           "wilson_interval"]

GATE_VERSION = 2


class GateError(ExportError):
    """A quantized model failed the gate; ``numbers`` holds the measurements."""

    def __init__(self, message: str, numbers: dict) -> None:
        super().__init__(message)
        self.numbers = numbers


@dataclass
class Gate:
    """The conditions of gate v2; the defaults are the contract's."""

    min_cosine_mean: float = 0.999  # mean cosine between quantized and fp32 embeddings
    min_decisive_agreement: float = 0.99  # top-1 agreement on windows whose fp32 margin exceeds the int8 noise
    noise_quantile: float = 0.99  # the int8 noise: this quantile of |change| of the top-2 score difference
    min_finding_agreement: float = 0.995  # agreement of per-(window, label) finding decisions
    max_top5_loss: float = 0.01  # top-5 accuracy vs the ground truth: fp32 minus quantized
    max_auroc_loss: float = 0.01  # macro AUROC vs the ground truth: fp32 minus quantized

    def to_dict(self) -> dict:
        return {"version": GATE_VERSION, **asdict(self)}

    def conditions(self, m: dict) -> dict:
        """Each condition of the gate on the numbers :func:`measure` returned: measured, required, passed."""
        acc = m["accuracy"]

        def at_least(value: float | None, required: float) -> dict:
            # Nothing to measure (no decisive window, no labelled window): the condition cannot fail.
            ok = value is None or bool(value >= required)
            return {"measured": value, "required": f">= {required:g}", "passed": ok,
                    "short_by": None if ok else float(required - value)}

        def loss(name: str, limit: float) -> dict:
            value = acc["loss"].get(name)
            ok = value is None or bool(value <= limit + 1e-12)
            return {"measured": value, "required": f"loss <= {limit:g}", "passed": ok,
                    "short_by": None if ok else float(value - limit),
                    "fp32": acc["fp32"].get(name), "quantized": acc["quantized"].get(name)}

        return {
            "cosine": at_least(m["cosine_mean"], self.min_cosine_mean),
            "decisive_top1": at_least(m["decisive"]["agreement"], self.min_decisive_agreement),
            "findings": at_least(m["findings"]["agreement"], self.min_finding_agreement),
            "top5": loss("top5", self.max_top5_loss),
            "macro_auroc": loss("macro_auroc", self.max_auroc_loss),
        }

    def check(self, m: dict) -> tuple[bool, dict]:
        """``(passed, conditions)`` for the numbers :func:`measure` returned."""
        conds = self.conditions(m)
        return all(c["passed"] for c in conds.values()), conds


def failure_text(m: dict, conditions: dict) -> str:
    """What failed, by how much, in one short clause per failed condition."""
    out = []
    for name, c in conditions.items():
        if c["passed"]:
            continue
        need = c["required"]
        if name == "cosine":
            out.append(f"mean embedding cosine {c['measured']:.5f}, needs {need} (short by {c['short_by']:.5f})")
        elif name == "decisive_top1":
            d = m["decisive"]
            out.append(f"top-1 agreement on decisive windows {c['measured']:.4f}, needs {need} ({d['changes']} of "
                       f"{d['windows']} windows whose fp32 margin exceeds the int8 noise {m['int8_noise']:.4f} changed)")
        elif name == "findings":
            f = m["findings"]
            out.append(f"finding decisions agree on {c['measured']:.4f}, needs {need} "
                       f"({f['changed']} of {f['pairs']} window-label pairs differ)")
        else:
            what = "top-5 accuracy" if name == "top5" else "macro AUROC"
            out.append(f"{what} {c['quantized']:.4f} vs fp32 {c['fp32']:.4f}: loss {c['measured']:.4f}, needs {need}")
    return "; ".join(out)


def _cosines(reference: np.ndarray, quantized: np.ndarray) -> np.ndarray:
    ref, q = reference.astype(np.float64), quantized.astype(np.float64)
    return np.sum(ref * q, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(q, axis=1) + 1e-12)


def agreement(reference: np.ndarray, quantized: np.ndarray, label_embeddings: np.ndarray,
              label_ids: list[str] | None = None) -> dict:
    """Strict top-1 label agreement and embedding cosines of ``quantized`` vs ``reference`` (both ``[N, D]``).

    ``disagreements`` lists every window whose top-1 label changed: the two labels and the fp32 margin
    between their scores (small margins are near-ties).
    """
    if reference.shape != quantized.shape or len(reference) == 0:
        raise ExportError(f"cannot compare embeddings of shapes {reference.shape} and {quantized.shape}")
    cos = _cosines(reference, quantized)
    scores = reference.astype(np.float64) @ label_embeddings.T.astype(np.float64)
    top_ref = np.argmax(scores, axis=1)
    top_q = np.argmax(quantized.astype(np.float64) @ label_embeddings.T.astype(np.float64), axis=1)
    names = label_ids or [str(j) for j in range(label_embeddings.shape[0])]
    rows = np.arange(len(reference))
    margin = scores[rows, top_ref] - scores[rows, top_q]
    changed = np.flatnonzero(top_ref != top_q)
    return {
        "n_windows": int(len(reference)),
        "agreement_top1": float(np.mean(top_ref == top_q)),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "disagreements": [{"fp32_top1": names[top_ref[i]], "quantized_top1": names[top_q[i]],
                           "fp32_margin": round(float(margin[i]), 6)} for i in changed],
    }


def _top5_auroc(scores: np.ndarray, targets: np.ndarray, label_ids: list[str], zero_shot: list[str]) -> dict:
    from training.metrics import evaluate_scores

    m = evaluate_scores(scores, targets, label_ids, new_labels=zero_shot)
    return {k: (None if m[k] is None or not np.isfinite(m[k]) else float(m[k])) for k in ("top5", "macro_auroc")}


def measure(reference: np.ndarray, quantized: np.ndarray, label_embeddings: np.ndarray, thresholds: np.ndarray,
            targets: np.ndarray, label_ids: list[str], zero_shot: list[str] = (), windows: list[dict] | None = None,
            gate: Gate | None = None) -> dict:
    """Everything gate v2 looks at, for embeddings ``[N, D]`` of the same windows by fp32 and int8.

    ``thresholds`` are the bundle's per-label decision thresholds (NaN/inf: the label makes no decisions);
    ``targets`` the ground truth ``[N, <= L]`` (columns of the first labels; later ones, e.g. labels
    added at export, have none); ``zero_shot`` the ids of labels never trained; ``windows`` one
    ``{"split", "record"}`` per row, to name the changed windows.
    """
    gate = gate or Gate()
    if reference.shape != quantized.shape or len(reference) == 0:
        raise ExportError(f"cannot compare embeddings of shapes {reference.shape} and {quantized.shape}")
    n, n_labels = len(reference), label_embeddings.shape[0]
    # Scores as the device takes them: on unit embeddings (edge.runtime.engine.Classifier.embed).
    reference = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    quantized = quantized / np.maximum(np.linalg.norm(quantized, axis=1, keepdims=True), 1e-12)
    emb = label_embeddings.astype(np.float64)
    s_ref, s_q = reference.astype(np.float64) @ emb.T, quantized.astype(np.float64) @ emb.T
    cos = _cosines(reference, quantized)
    rows = np.arange(n)
    order = np.argsort(-s_ref, axis=1, kind="stable")
    a, b = order[:, 0], order[:, 1]
    margin = s_ref[rows, a] - s_ref[rows, b]
    noise = (s_q[rows, a] - s_q[rows, b]) - margin
    noise_level = float(np.quantile(np.abs(noise), gate.noise_quantile))
    top_q = np.argmax(s_q, axis=1)
    same = top_q == a
    decisive = margin > noise_level
    names = list(label_ids)
    where = windows or [{"split": None, "record": None}] * n
    changed = [{**where[i], "fp32_top1": names[a[i]], "quantized_top1": names[top_q[i]],
                "fp32_margin": round(float(margin[i]), 6), "decisive": bool(decisive[i])}
               for i in np.flatnonzero(~same)]
    th = np.asarray(thresholds, dtype=np.float64)
    decides = np.isfinite(th)
    d_ref, d_q = s_ref[:, decides] >= th[decides], s_q[:, decides] >= th[decides]
    differ = d_ref != d_q
    by_label = {names[j]: int(c) for j, c in zip(np.flatnonzero(decides), differ.sum(axis=0), strict=True) if c}
    full = np.zeros((n, n_labels), dtype=np.float32)
    full[:, : targets.shape[1]] = targets
    acc_ref = _top5_auroc(s_ref, full, names, list(zero_shot))
    acc_q = _top5_auroc(s_q, full, names, list(zero_shot))
    m = {
        "n_windows": int(n),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "agreement_top1": float(same.mean()),  # strict: every window
        "int8_noise": noise_level,
        "int8_noise_quantile": gate.noise_quantile,
        "decisive": {"windows": int(decisive.sum()), "changes": int((~same & decisive).sum()),
                     "agreement": float(same[decisive].mean()) if decisive.any() else None},
        "findings": {"labels": int(decides.sum()), "pairs": int(differ.size), "changed": int(differ.sum()),
                     "agreement": float(1.0 - differ.mean()) if differ.size else None, "changed_by_label": by_label},
        "accuracy": {"fp32": acc_ref, "quantized": acc_q,
                     "loss": {k: (None if acc_ref[k] is None or acc_q[k] is None else float(acc_ref[k] - acc_q[k]))
                              for k in acc_ref}},
        "changed_windows": changed,
        "near_ties": near_ties(reference, quantized, label_embeddings),
    }
    return m


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
    """How strict top-1 agreement follows from the fp32 near-ties and the quantization noise.

    For each window, ``margin`` is the fp32 score of its top-1 label minus that of its runner-up, and
    ``noise`` is how much quantization changed that same difference. A window can only change its top-1
    label when its margin is within the noise, so the strict agreement a quantized model can reach is
    set by how many windows the fp32 model itself scores as near-ties. Returns:

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
      strict gate on a test fold of that size would be.
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
