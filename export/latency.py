"""Single-window latency of an exported encoder, measured through the edge runtime's own backends.

The bedside device classifies one 10-second window at a time on one thread, so that is what is timed:
``edge.runtime.backends`` (``OnnxBackend`` / ``LiteRTBackend``, ``threads=1``), a few warm-up runs, then the
median of ``runs`` single-window calls. Numbers are for the machine that runs the export; they rank the
model variants (int8 vs fp32, uint8 vs int8 activations) but are not the board's.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np

__all__ = ["median_latency_ms", "machine"]


def median_latency_ms(path: str | Path, window: np.ndarray, backend: str = "onnx", runs: int = 200,
                      warmup: int = 10) -> float:
    """Median milliseconds per call of one window ``[1, 12, T]`` on one thread."""
    from edge.runtime.backends import get_backend

    x = np.ascontiguousarray(window.reshape(1, *window.shape[-2:]), dtype=np.float32)
    with get_backend(backend, path, threads=1) as model:
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0)


def machine() -> str:
    """A short description of the machine the latencies were measured on."""
    return f"{platform.machine()} {platform.processor() or platform.system()}".strip()
