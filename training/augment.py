"""Training-time augmentation of model-input windows (after the signal contract), on whole batches.

Every transform keeps the lead-first ``[B, 12, T]`` layout and acts in normalised units, mimicking what
bedside recordings do to a clean window: a shorter stretch of signal (crop), another gain, noise,
baseline wander the band-pass did not fully remove, and electrodes that fall off (lead dropout).
Heart rate is never changed (no time stretching): rate is a diagnosis here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

__all__ = ["AugmentConfig", "augment_batch"]


@dataclass
class AugmentConfig:
    """Probabilities and strengths of each transform; ``enabled=False`` turns all off."""

    enabled: bool = True
    crop_p: float = 0.3  # probability a window keeps only a random 80-100 % stretch, rest zeroed
    crop_min: float = 0.8  # shortest kept fraction of the window
    amplitude_p: float = 0.5  # probability of a per-lead gain change
    amplitude_range: tuple[float, float] = (0.8, 1.2)  # gain range (normalised units)
    noise_p: float = 0.5  # probability of additive white noise
    noise_std: float = 0.05  # noise std, in units of the per-lead std (z-scores)
    wander_p: float = 0.3  # probability of a slow sinusoidal baseline drift
    wander_amp: float = 0.2  # drift amplitude (z-score units)
    wander_hz: tuple[float, float] = (0.05, 0.5)  # drift frequency range, Hz
    lead_dropout_p: float = 0.1  # probability per window of zeroing 1-3 leads (electrode off)
    # share of the dropped windows that get a bedside pattern instead of 1-3 random leads: one arm electrode
    # off on an 8-channel device (only II of the limb leads left) or inconsistent limb leads (chest leads only),
    # as the runtime zeroes them (edge.dsp.quality.usable_twelve); 0 keeps the random draws of older runs
    lead_dropout_patterns: float = 0.0
    fs: float = 100.0  # sampling rate of the windows, Hz (for the wander frequency)

    def to_dict(self) -> dict:
        return asdict(self)


def _where(p: float, b: int, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(b, generator=generator) < p).float()


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augmented copy of a float batch ``[B, L, T]``; deterministic for a seeded ``generator``."""
    if not cfg.enabled:
        return x
    g = generator or torch.Generator().manual_seed(torch.seed() % (2**63))
    b, n_leads, t = x.shape
    x = x.clone()
    if cfg.crop_p > 0:
        sel = _where(cfg.crop_p, b, g).bool()
        keep = (cfg.crop_min + (1 - cfg.crop_min) * torch.rand(b, generator=g)) * t
        start = torch.rand(b, generator=g) * (t - keep)
        pos = torch.arange(t).float()
        inside = (pos[None] >= start[:, None]) & (pos[None] < (start + keep)[:, None])
        mask = torch.where(sel[:, None], inside, torch.ones_like(inside))
        x = x * mask[:, None, :].float()
    if cfg.amplitude_p > 0:
        lo, hi = cfg.amplitude_range
        gain = lo + (hi - lo) * torch.rand(b, n_leads, 1, generator=g)
        sel = _where(cfg.amplitude_p, b, g)[:, None, None]
        x = x * (sel * gain + (1 - sel))
    if cfg.noise_p > 0:
        sel = _where(cfg.noise_p, b, g)[:, None, None]
        x = x + sel * cfg.noise_std * torch.randn(x.shape, generator=g)
    if cfg.wander_p > 0:
        lo, hi = cfg.wander_hz
        freq = lo + (hi - lo) * torch.rand(b, n_leads, 1, generator=g)
        phase = 2 * math.pi * torch.rand(b, n_leads, 1, generator=g)
        tt = torch.arange(t).float()[None, None] / cfg.fs
        sel = _where(cfg.wander_p, b, g)[:, None, None]
        x = x + sel * cfg.wander_amp * torch.sin(2 * math.pi * freq * tt + phase)
    if cfg.lead_dropout_p > 0:
        sel = _where(cfg.lead_dropout_p, b, g).bool()
        n_drop = torch.randint(1, 4, (b,), generator=g)
        ranks = torch.rand(b, n_leads, generator=g).argsort(dim=1).argsort(dim=1)
        drop = (ranks < n_drop[:, None]) & sel[:, None]
        if cfg.lead_dropout_patterns > 0 and n_leads == 12:
            pattern = _where(cfg.lead_dropout_patterns, b, g).bool() & sel
            limb_only_ii = torch.tensor([True, False, True, True, True, True] + [False] * 6)
            all_limb = torch.tensor([True] * 6 + [False] * 6)
            which = torch.rand(b, generator=g) < 0.5
            patterned = torch.where(which[:, None], limb_only_ii[None], all_limb[None])
            drop = torch.where(pattern[:, None], patterned, drop)
        x = x * (~drop)[:, :, None].float()
    return x
