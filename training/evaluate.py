"""Scoring ECG windows against every label with a trained model, and the evaluation report.

The contrastive model scores a window by the cosine similarity of its embedding with each label's text
embedding, so labels held out of training (new labels) are scored zero-shot the same way. The
supervised baseline scores with its logits and cannot score labels it has no output for.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .metrics import evaluate_scores

__all__ = [
    "embed_windows",
    "label_embeddings",
    "score_windows",
    "evaluate_model",
    "write_per_label_csv",
    "bundle_scores",
    "evaluate_bundle",
]

UNSCORABLE = -1e4  # score for labels a supervised model has no output for (ranked last)


@torch.no_grad()
def embed_windows(fn, windows: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Apply ``fn`` (a module or callable on ``[B, 12, T]``) to windows in batches; returns numpy."""
    out = []
    for i in range(0, len(windows), batch_size):
        x = torch.from_numpy(np.asarray(windows[i : i + batch_size], dtype=np.float32))
        out.append(fn(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


@torch.no_grad()
def label_embeddings(model: nn.Module, text_input: torch.Tensor) -> np.ndarray:
    """Unit-norm text embeddings ``[L, D]`` of the labels whose text input is given."""
    model = model.module if hasattr(model, "module") else model
    return model.encode_text(text_input).float().cpu().numpy()


def score_windows(model: nn.Module, ckpt: dict, windows: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Scores ``[N, len(ckpt['label_ids'])]`` for every label of the checkpoint's label set."""
    model = model.module if hasattr(model, "module") else model
    was_training = model.training
    model.eval()
    try:
        if ckpt["kind"] == "supervised":
            logits = embed_windows(model, windows, batch_size)
            scores = np.full((len(windows), len(ckpt["label_ids"])), UNSCORABLE, dtype=np.float32)
            col = {lid: j for j, lid in enumerate(ckpt["label_ids"])}
            for k, lid in enumerate(ckpt["train_label_ids"]):
                scores[:, col[lid]] = logits[:, k]
            return scores
        ecg = embed_windows(model.encode_ecg, windows, batch_size)
        text = label_embeddings(model, ckpt["text_input"])
        return ecg @ text.T
    finally:
        model.train(was_training)


def evaluate_model(
    model: nn.Module,
    ckpt: dict,
    windows: np.ndarray,
    targets: np.ndarray,
    names: Sequence[str] | None = None,
    known: np.ndarray | None = None,
) -> dict:
    """Top-1, top-5, macro AUROC and the per-label table; held-out labels reported as new labels.

    ``known`` (``[N, L]``, see :mod:`training.datasets.known`) leaves labels a window's sources cannot
    state out of its ranking and of the labels' AUROC."""
    scores = score_windows(model, ckpt, windows)
    new = list(ckpt.get("holdout_label_ids", []))
    if ckpt["kind"] == "supervised":
        # A supervised head cannot score labels it never had; report them as unscorable, not as new.
        keep = [j for j, lid in enumerate(ckpt["label_ids"]) if lid in set(ckpt["train_label_ids"])]
        targets = targets.copy()
        mask = np.zeros(targets.shape[1], dtype=bool)
        mask[keep] = True
        targets[:, ~mask] = 0
        new = []
    return evaluate_scores(scores, targets, ckpt["label_ids"], new_labels=new, names=names, known=known)


def write_per_label_csv(metrics: dict, path: str | Path) -> None:
    """The per-label table as CSV (UTF-8 with BOM so spreadsheet software shows the Japanese names)."""
    from .csv_safe import safe_dict

    rows = metrics["per_label"]
    with Path(path).open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(safe_dict(r) for r in rows)  # label names from a hospital catalogue: no formulas


def bundle_scores(bundle, windows: np.ndarray, model_key: str = "onnx_int8", backend: str | None = None,
                  threads: int = 1, batch_size: int = 64) -> np.ndarray:
    """Scores ``[N, n_bundle_labels]`` of model-input windows with a bundle's encoder (the device's path)."""
    from edge.runtime.backends import get_backend

    backend = backend or ("litert" if model_key.startswith("tflite") else "onnx")
    net = get_backend(backend, bundle.model_path(model_key), threads=threads)
    try:
        emb = np.concatenate([net(np.asarray(windows[i : i + batch_size], dtype=np.float32))
                              for i in range(0, len(windows), batch_size)])
    finally:
        net.close()
    return emb @ bundle.embeddings.T


def evaluate_bundle(bundle, windows: np.ndarray, targets: np.ndarray, target_ids: Sequence[str],
                    model_key: str = "onnx_int8", known: np.ndarray | None = None,
                    measurements: Sequence[dict | None] | None = None) -> dict:
    """Evaluate a bundle on windows whose multi-hot ``targets`` are over ``target_ids`` (the catalogue).

    Bundle labels not in ``target_ids`` (labels added at export) have no ground truth: they are unknown
    everywhere (scored, never counted as hits or misses); labels marked ``new`` in the bundle are
    reported as new labels. ``decisions`` judges the findings at the bundle's thresholds after the
    consistency rules (:func:`training.decisions.decision_metrics`).
    """
    from edge.interpret.findings import FindingRules

    from .decisions import decision_metrics

    cosine = bundle_scores(bundle, windows, model_key)
    # As on the device: the ranking moves measurement-defined labels by the bundle's criteria weight
    # (edge.runtime.engine.Classifier._ranked); findings are decided on the cosine scores with the measurements.
    rules, weight = FindingRules.from_manifest(bundle.labels, bundle.manifest)
    meas = list(measurements) if measurements is not None else [None] * len(cosine)
    scores = np.stack([rules.adjust(s, m, weight) for s, m in zip(cosine, meas, strict=True)]) if len(cosine) else cosine
    col = {lid: j for j, lid in enumerate(target_ids)}
    t = np.zeros((len(windows), len(bundle.labels)), dtype=np.float32)
    k_mask = np.zeros((len(windows), len(bundle.labels)), dtype=bool)
    for k, lb in enumerate(bundle.labels):
        if lb["id"] in col:
            t[:, k] = targets[:, col[lb["id"]]]
            k_mask[:, k] = True if known is None else known[:, col[lb["id"]]] > 0
    new = [lb["id"] for lb in bundle.labels if lb.get("new") and lb["id"] in col]
    metrics = evaluate_scores(scores, t, bundle.label_ids, new_labels=new, names=[lb["ja"] for lb in bundle.labels],
                              known=k_mask)
    metrics["decisions"] = decision_metrics(cosine, t, np.asarray(bundle.thresholds), bundle.labels, k_mask,
                                            measurements=measurements, rules=rules)
    metrics["criteria_weight"] = weight
    metrics["measured_windows"] = int(sum(1 for m in meas if m))
    return metrics
