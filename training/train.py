"""The training loop: contrastive ECG-text model (or the supervised baseline), readable top to bottom.

1. Prepare (or reuse) the cached windows of the given datasets through the signal contract.
2. Build the label set from the catalogue; held-out labels are removed from training entirely
   (their targets and their texts) and later scored zero-shot through their text embeddings.
3. Train with AdamW, linear warm-up then cosine decay, batch augmentation, early stopping on the
   validation folds' macro AUROC; seeds fixed; DistributedDataParallel when started by ``torchrun``.
4. Reload the best weights, evaluate on the test folds, write the run folder: ``checkpoint.pt``,
   ``metrics.json``, ``per_label.csv``, ``history.json``, ``config.json`` and plots.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from edge.dsp.signal import SignalConfig

from .augment import AugmentConfig, augment_batch
from .checkpoint import build_model, save_checkpoint
from .datasets import parse_source
from .evaluate import evaluate_model, score_windows, write_per_label_csv
from .label_catalogue import load_training_catalogue
from .loss import bce_loss, clip_loss, multi_positive_clip_loss, priority_targets, sigmoid_pairwise_loss
from .metrics import per_label_auroc
from .model import EncoderConfig
from .prepare import DUPLICATES_FILE, PreparedDataset, Source, fingerprint, prepare
from .text_side import TextConfig, text_input_for, text_spec

__all__ = ["TrainConfig", "train", "get_lr"]

logger = logging.getLogger(__name__)

LOSSES = ("multi_positive", "clip", "sigmoid")
POSITIVE_ORDERS = ("uniform", "rarest-first")


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as ``config.json`` in the run folder."""

    sources: list[str] = field(default_factory=list)  # datasets as KIND=PATH (ptbxl=..., cinc2021=..., ...)
    out_dir: str = "runs/run"  # run folder
    cache_dir: str | None = None  # prepared-window cache (default: <out_dir>/../cache/<key of the inputs>)
    catalogue: str | None = None  # label catalogue JSON (training.label_catalogue); None: the shipped 98 labels
    model: str = "contrastive"  # "contrastive" or "supervised" (BCE baseline, same encoder)
    encoder: str = "resnet1d18"  # encoder preset (training.model.PRESETS)
    embed_dim: int = 256  # shared embedding size
    dropout: float = 0.1  # dropout before the ECG projection / classifier
    text: TextConfig = field(default_factory=TextConfig)  # text side (frozen encoder or trainable bytes)
    loss: str = "multi_positive"  # contrastive loss: multi_positive, clip (the study's), sigmoid
    temperature: float = 0.07  # initial CLIP temperature (learnable, as in the study)
    positive_order: str = "uniform"  # multi_positive targets: uniform, or rarest-first (see loss.priority_targets)
    priority_ratio: float = 2.0  # rarest-first: weight ratio between consecutive positives of an ECG
    epochs: int = 30  # maximum epochs
    batch_size: int = 64  # windows per step (per process under DDP)
    lr: float = 2e-3  # peak learning rate
    min_lr: float = 1e-5  # final learning rate of the cosine schedule
    weight_decay: float = 0.01  # AdamW weight decay
    warmup_epochs: float = 1.0  # linear warm-up length
    patience: int = 8  # epochs without validation improvement before stopping
    max_minutes: float | None = None  # wall-clock budget; training stops after the epoch that crosses it
    seed: int = 0  # seeds python, numpy and torch
    train_folds: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)  # PTB-XL strat_fold convention
    val_folds: tuple[int, ...] = (9,)
    test_folds: tuple[int, ...] = (10,)
    holdout_labels: tuple[str, ...] = ()  # label ids/terms removed from training, evaluated zero-shot
    exclude_keys: tuple[str, ...] = ()  # record-key prefixes left out of every fold (leave-one-source-out)
    ptbxl_rate: int = 100  # PTB-XL files to read: 100 or 500 Hz
    signal: SignalConfig = field(default_factory=SignalConfig)  # the signal contract for this model
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    num_threads: int | None = None  # torch intra-op threads (None: torch default)
    on_error: str = "raise"  # bad records: raise, or skip and count them

    def to_dict(self) -> dict:
        d = asdict(self)
        d["signal"] = self.signal.to_dict()
        return d


def get_lr(step: int, total: int, warmup: int, lr: float, min_lr: float) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``total`` steps (nanoGPT's get_lr)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    ratio = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (lr - min_lr)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _dist_setup() -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank() if world > 1 else 0), world


def _resolve_holdout(cfg: TrainConfig, catalogue) -> list[str]:
    ids = []
    for term in cfg.holdout_labels:
        try:
            ids.append(catalogue.resolve(term).id)
        except KeyError as exc:
            raise ValueError(f"--holdout-labels: {exc.args[0] if exc.args else term}") from None
    return list(dict.fromkeys(ids))


def _prepare(cfg: TrainConfig, catalogue, rank: int, progress: bool = True) -> PreparedDataset:
    sources = []
    for text in cfg.sources:
        kind, path = parse_source(text)
        options = (("rate", cfg.ptbxl_rate),) if kind == "ptbxl" else ()
        sources.append(Source(kind, path, options))
    # Default: one folder per set of inputs under <out>/../cache, so runs on other data or another catalogue
    # never overwrite each other's windows (runs on the same inputs share them).
    key = fingerprint(sources, cfg.signal, catalogue, on_error=cfg.on_error)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else Path(cfg.out_dir).parent / "cache" / key
    if rank == 0:
        ds = prepare(sources, cache, cfg.signal, catalogue, on_error=cfg.on_error, progress=progress)
    if dist.is_initialized():
        dist.barrier()
    return ds if rank == 0 else PreparedDataset(cache)


def label_priority(targets: np.ndarray) -> np.ndarray:
    """Order of a label among an ECG's positives for ``rarest-first``: its training frequency (rarest first)."""
    return targets.astype(bool).sum(axis=0).astype(np.float64)


def _loss(cfg: TrainConfig, out: dict, y: torch.Tensor, generator: torch.Generator,
          priority: torch.Tensor | None = None, known: torch.Tensor | None = None) -> dict:
    if cfg.loss == "multi_positive":
        row = None if priority is None else priority_targets(y, priority, cfg.priority_ratio)
        return multi_positive_clip_loss(out["ecg"], out["text"], out["logit_scale"], y, row, known)
    if cfg.loss == "sigmoid":
        return sigmoid_pairwise_loss(out["ecg"], out["text"], out["logit_scale"], out["logit_bias"], y, known=known)
    # The study's CLIP loss: one positive label drawn per ECG, the batch's labels as the text side.
    weights = y.float() + 1e-12 * (y.sum(dim=1, keepdim=True) == 0)
    pick = torch.multinomial(weights, 1, generator=generator).squeeze(1)
    return clip_loss(out["ecg"], out["text"][pick], out["logit_scale"], pick, known=known)


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Train, evaluate on the test folds, write the run folder; returns the test metrics (rank 0)."""
    if cfg.model not in ("contrastive", "supervised"):
        raise ValueError(f"model must be contrastive or supervised, got {cfg.model!r}")
    if cfg.model == "contrastive" and cfg.loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {cfg.loss!r}")
    if cfg.positive_order not in POSITIVE_ORDERS:
        raise ValueError(f"positive_order must be one of {POSITIVE_ORDERS}, got {cfg.positive_order!r}")
    if cfg.positive_order != "uniform" and not (cfg.model == "contrastive" and cfg.loss == "multi_positive"):
        raise ValueError("positive_order applies to the multi_positive contrastive loss only")
    if not 0 < cfg.temperature <= 1:
        raise ValueError(f"temperature must be in (0, 1], got {cfg.temperature}")
    if not cfg.priority_ratio >= 1:
        raise ValueError(f"priority_ratio must be >= 1, got {cfg.priority_ratio}")
    if not cfg.sources:
        raise ValueError("no data sources given")
    rank, world = _dist_setup()
    _seed_everything(cfg.seed)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out_dir = Path(cfg.out_dir)
    catalogue = load_training_catalogue(cfg.catalogue)
    holdout = _resolve_holdout(cfg, catalogue)
    ds = _prepare(cfg, catalogue, rank, progress)
    if ds.label_ids != list(catalogue.ids):
        raise ValueError(f"{ds.folder} was prepared with another label catalogue")

    label_ids = list(catalogue.ids)
    train_cols = np.array([j for j, lid in enumerate(label_ids) if lid not in set(holdout)])
    train_idx = ds.indices(cfg.train_folds)
    val_idx, test_idx = ds.indices(cfg.val_folds), ds.indices(cfg.test_folds)
    if cfg.exclude_keys:  # e.g. ("challenge2020:E", "cinc2021:E"): a hospital the model must never see
        kept = np.array([not k.startswith(tuple(cfg.exclude_keys)) for k in ds.keys])
        train_idx, val_idx, test_idx = (i[kept[i]] for i in (train_idx, val_idx, test_idx))
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"no training or validation windows in folds {cfg.train_folds} / {cfg.val_folds}")
    windows = np.asarray(ds.windows, dtype=np.float32)  # small enough to hold in memory
    targets = ds.labels.astype(np.float32)
    known = ds.known.astype(bool)  # labels each window's sources state; the rest are left out (datasets.known)

    text = text_spec(cfg.text, cfg.embed_dim) if cfg.model == "contrastive" else None
    embed_dim = text["embed_dim"] if text else cfg.embed_dim  # a frozen text space fixes the size
    enc_cfg = EncoderConfig.preset(cfg.encoder, embed_dim=embed_dim, dropout=cfg.dropout)
    info = {
        "kind": cfg.model,
        "encoder": enc_cfg.to_dict(),
        "signal": cfg.signal.to_dict(),
        "label_ids": label_ids,
        "catalogue": catalogue.to_list(),  # the whole catalogue: eval and export rebuild the same labels
        "label_ja": [lb.ja for lb in catalogue.labels],
        "label_en": [lb.en for lb in catalogue.labels],
        "train_label_ids": [label_ids[j] for j in train_cols],
        "holdout_label_ids": holdout,
        "loss": cfg.loss if cfg.model == "contrastive" else "bce",
        "init_temperature": cfg.temperature,
        "data": {"sources": ds.meta["sources"], "fingerprint": ds.meta["fingerprint"], "cache": str(ds.folder.resolve()),
                 "train_folds": list(cfg.train_folds),
                 "val_folds": list(cfg.val_folds), "test_folds": list(cfg.test_folds), "n_train": int(len(train_idx)),
                 "exclude_keys": list(cfg.exclude_keys)},
        "train_config": cfg.to_dict(),
    }
    if cfg.model == "contrastive":
        info["text"] = text
        info["text_input"] = text_input_for(info["text"], catalogue.labels)
    model = build_model(info)
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)

    steps_per_epoch = max(1, len(train_idx) // (cfg.batch_size * world))
    total_steps, warmup = steps_per_epoch * cfg.epochs, int(cfg.warmup_epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(cfg.seed + 1000 * rank)
    aug = AugmentConfig(**{**asdict(cfg.augment), "fs": cfg.signal.fs})
    text_input = info.get("text_input")
    train_cols_t = torch.from_numpy(train_cols)
    priority = None
    if cfg.positive_order == "rarest-first":
        priority = torch.from_numpy(label_priority(targets[train_idx][:, train_cols]))
        info["positive_order"] = {"order": cfg.positive_order, "ratio": cfg.priority_ratio,
                                  "train_frequency": dict(zip([label_ids[j] for j in train_cols],
                                                              priority.int().tolist(), strict=True))}
    history, best, best_state, bad_epochs, step = [], -1.0, None, 0, 0
    t0 = time.monotonic()
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        copies = ds.folder / DUPLICATES_FILE  # every copy of an ECG found by key or content (training.prepare)
        if copies.is_file():
            shutil.copyfile(copies, out_dir / DUPLICATES_FILE)
        logger.info("training %s (%s, %d params) on %d windows, validating on %d", cfg.model, cfg.encoder,
                    sum(p.numel() for p in model.parameters()), len(train_idx), len(val_idx))
    for epoch in range(cfg.epochs):
        model.train()
        perm = np.random.default_rng(cfg.seed + epoch).permutation(train_idx)
        perm = perm[rank::world][: steps_per_epoch * cfg.batch_size]
        batches = range(steps_per_epoch)
        if progress and rank == 0:
            from tqdm import tqdm

            batches = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", leave=False)
        losses = []
        for b in batches:
            idx = np.sort(perm[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            x = augment_batch(torch.from_numpy(windows[idx]), aug, gen)
            y = torch.from_numpy(targets[idx])[:, train_cols_t]
            k = torch.from_numpy(known[idx])[:, train_cols_t]
            lr = get_lr(step, total_steps, warmup, cfg.lr, cfg.min_lr)
            for group in opt.param_groups:
                group["lr"] = lr
            if cfg.model == "supervised":
                loss = bce_loss(ddp_model(x), y, known=k)["loss"]
            else:
                out = ddp_model(x, text_input)
                out["text"] = out["text"][train_cols_t]  # held-out labels never enter training
                loss = _loss(cfg, out, y, gen, priority, k)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(loss.item())
            step += 1
        # Validation: macro AUROC over the trained labels present in the validation folds.
        val_scores = score_windows(model, info, windows[val_idx])[:, train_cols]
        aucs = per_label_auroc(val_scores, targets[val_idx][:, train_cols], known[val_idx][:, train_cols])
        val_auc = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else 0.0
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_macro_auroc": val_auc,
                        "lr": lr, "minutes": (time.monotonic() - t0) / 60})
        if rank == 0:
            logger.info("epoch %d: loss %.4f, val macro AUROC %.4f", epoch + 1, history[-1]["train_loss"], val_auc)
        if val_auc > best:
            best, bad_epochs = val_auc, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        stop = bad_epochs >= cfg.patience or (cfg.max_minutes is not None and (time.monotonic() - t0) / 60 > cfg.max_minutes)
        if world > 1:
            flag = torch.tensor([int(stop)])
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        if stop:
            break

    model.load_state_dict(best_state)
    model.eval()
    result: dict = {}
    if rank == 0:
        names = [lb.ja for lb in catalogue.labels]
        result = (evaluate_model(model, info, windows[test_idx], targets[test_idx], names, known[test_idx])
                  if len(test_idx) else {})
        val_metrics = evaluate_model(model, info, windows[val_idx], targets[val_idx], names, known[val_idx])
        info["metrics"] = {"test": _summary(result), "val": _summary(val_metrics), "best_val_macro_auroc": best}
        info["history"] = history
        save_checkpoint(out_dir / "checkpoint.pt", model, **info)
        (out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        (out_dir / "history.json").write_text(json.dumps(history, indent=2), encoding="utf-8")
        report = {"test": result, "val": val_metrics, "epochs_run": len(history), "best_val_macro_auroc": best,
                  "minutes": (time.monotonic() - t0) / 60, "n_train": int(len(train_idx)),
                  "n_val": int(len(val_idx)), "n_test": int(len(test_idx))}
        (out_dir / "metrics.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        if result:
            write_per_label_csv(result, out_dir / "per_label.csv")
        from .plots import plot_history, plot_per_label

        plot_history(history, out_dir / "loss_curves.png")
        if result:
            plot_per_label(result, out_dir / "per_label_top5.png")
    if world > 1:
        dist.barrier()
    return result


def _summary(metrics: dict) -> dict:
    """The headline numbers of an evaluation (no per-label table)."""
    return {k: v for k, v in metrics.items() if k != "per_label"}
