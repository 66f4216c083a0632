"""A fixed-size ring buffer of the most recent samples of a live ECG stream, indexed by sample number.

The stream classifier keeps the last ``capacity`` samples of every channel here, in millivolts, with
the lead-off bit mask of each sample beside them. Missing samples are stored as NaN (DESIGN.md,
contract 4: lost samples are marked missing, never invented). Writes and reads are whole numpy slices
(at most two per call, where the ring wraps), so the cost per sample is a memory copy, not a Python
loop. Samples are addressed by their absolute index in the device's stream (``first_sample``
unwrapped), so a window is ``read(start, stop)`` whatever happened to the ring in between.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SampleRing"]


class SampleRing:
    """The last ``capacity`` samples of ``n_channels`` channels: float32 ``[C, capacity]`` plus masks."""

    def __init__(self, n_channels: int, capacity: int) -> None:
        if n_channels < 1 or capacity < 1:
            raise ValueError("n_channels and capacity must be positive")
        self.n_channels = n_channels
        self.capacity = capacity
        self.data = np.full((n_channels, capacity), np.nan, dtype=np.float32)
        self.masks = np.zeros(capacity, dtype=np.uint16)
        self.end: int | None = None  # absolute index one past the newest sample; None before any
        self.written = 0  # samples written since the last reset (missing ones included)

    def reset(self, start: int | None = None) -> None:
        """Forget everything; the next write lands at absolute index ``start`` (set by ``start_at``)."""
        self.data.fill(np.nan)
        self.masks.fill(0)
        self.end = start
        self.written = 0

    def start_at(self, index: int) -> None:
        """Set the absolute index of the next sample of an empty ring."""
        if self.end is not None and self.written:
            raise ValueError("start_at() on a ring that holds samples; reset() it first")
        self.end = int(index)

    @property
    def start(self) -> int | None:
        """Absolute index of the oldest sample still held."""
        if self.end is None:
            return None
        return self.end - min(self.written, self.capacity)

    def _slices(self, begin: int, n: int) -> list[tuple[slice, slice]]:
        """(ring slice, source slice) pairs covering ``n`` samples from absolute index ``begin``."""
        pos = begin % self.capacity
        first = min(n, self.capacity - pos)
        out = [(slice(pos, pos + first), slice(0, first))]
        if first < n:
            out.append((slice(0, n - first), slice(first, n)))
        return out

    def write(self, block: np.ndarray, masks: np.ndarray | int = 0) -> None:
        """Append ``block[C, n]`` (mV, NaN = missing) with per-sample lead-off masks at ``end``."""
        if self.end is None:
            raise ValueError("start_at() must be called before the first write")
        n = block.shape[1]
        if block.shape[0] != self.n_channels:
            raise ValueError(f"block has {block.shape[0]} channels, ring holds {self.n_channels}")
        if n > self.capacity:  # only the newest capacity samples can be kept
            self.end += n - self.capacity
            self.written += n - self.capacity
            block = block[:, -self.capacity :]
            masks = masks[-self.capacity :] if isinstance(masks, np.ndarray) else masks
            n = self.capacity
        for dst, src in self._slices(self.end, n):
            self.data[:, dst] = block[:, src]
            self.masks[dst] = masks[src] if isinstance(masks, np.ndarray) else masks
        self.end += n
        self.written += n

    def write_missing(self, n: int) -> None:
        """Append ``n`` missing samples (NaN, no lead-off bits) without building an array for them."""
        if self.end is None:
            raise ValueError("start_at() must be called before the first write")
        if n >= self.capacity:
            self.data.fill(np.nan)
            self.masks.fill(0)
        else:
            for dst, _ in self._slices(self.end, n):
                self.data[:, dst] = np.nan
                self.masks[dst] = 0
        self.end += n
        self.written += n

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Copy of samples ``[start, stop)`` as (float32 ``[C, stop - start]``, uint16 masks)."""
        if self.end is None or stop > self.end or start < self.start or stop < start:
            raise IndexError(
                f"samples [{start}, {stop}) are not in the ring (holds [{self.start}, {self.end}))"
            )
        n = stop - start
        x = np.empty((self.n_channels, n), dtype=np.float32)
        m = np.empty(n, dtype=np.uint16)
        for src, dst in self._slices(start, n):
            x[:, dst] = self.data[:, src]
            m[dst] = self.masks[src]
        return x, m
