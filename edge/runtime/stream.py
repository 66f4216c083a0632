"""Windows of a live stream, classified as they complete (DESIGN.md, contracts 1 and 5).

:class:`StreamClassifier` keeps a ring of the newest samples addressed by their index in the device stream,
marks lost samples missing, and hands every complete window to :meth:`edge.runtime.engine.Classifier.classify_window`
- the same path as a file - so the stream and ``ecg-edge classify`` give the same results for the same samples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from edge.dsp.signal import default_lead_names
from edge.runtime.engine import Classifier
from edge.runtime.result import Result
from edge.dsp.ring import SampleRing

__all__ = ["StreamClassifier"]

logger = logging.getLogger(__name__)


class StreamClassifier:
    """Windows of a live stream: feed samples as they arrive, get a :class:`Result` every hop.

    Samples are addressed by their index in the device stream (``first_sample``). Windows of the
    bundle's ``window_s`` start at multiples of the hop (aligned to sample 0 of the stream, so a
    recording classified from a file gives the same windows), and each is classified as soon as its
    last sample has arrived. Missing samples (a gap in ``first_sample`` or :meth:`mark_missing`) are
    NaN in the ring, so windows that contain them are reported with ``quality.ok = false``.
    """

    def __init__(
        self,
        classifier: Classifier,
        fs: float,
        leads: Sequence[str] | None = None,
        n_channels: int | None = None,
        hop_s: float = 2.0,
        window_s: float | None = None,
        rail_mv: float | None = None,
        align: bool = True,
    ) -> None:
        if leads is None:
            if n_channels is None:
                raise ValueError("give the channel names (leads) or n_channels")
            leads = default_lead_names(n_channels)
        self.classifier = classifier
        self.fs = float(fs)
        self.leads = list(leads)
        self.window = int(round((window_s or classifier.signal.window_s) * self.fs))
        self.hop = int(round(hop_s * self.fs))
        if self.window < 1 or self.hop < 1:
            raise ValueError("window and hop must last at least one sample")
        self.rail_mv = rail_mv
        self.align = align
        self.ring = SampleRing(len(self.leads), self.window + max(self.hop, int(self.fs)))
        self.next_start: int | None = None
        self.windows = 0  # windows classified or reported since creation
        self.windows_ok = 0
        self.missing_samples = 0  # samples marked missing since creation

    @property
    def end(self) -> int | None:
        """Index one past the newest sample received (None before the first)."""
        return self.ring.end

    def reset(self) -> None:
        """Forget the stream (a device restarted its counter): the next feed starts afresh."""
        self.ring.reset()
        self.next_start = None

    def _begin(self, first_sample: int) -> None:
        self.ring.reset()
        self.ring.start_at(first_sample)
        start = first_sample
        if self.align:
            start = -(-first_sample // self.hop) * self.hop  # first multiple of the hop at or after it
        self.next_start = start

    def feed(
        self, samples_mv: np.ndarray, first_sample: int | None = None, lead_off: int | np.ndarray = 0
    ) -> list[Result]:
        """Add samples ``[n, C]`` (or ``[C, n]``) in mV starting at ``first_sample``; return finished windows.

        ``first_sample`` defaults to right after the previous block; a forward jump marks the samples
        in between missing, and samples already received are ignored. ``lead_off`` is the channel bit
        mask of the whole block or an array of one mask per sample.
        """
        x = np.asarray(samples_mv, dtype=np.float32)
        c = len(self.leads)
        if x.ndim != 2 or c not in x.shape:
            raise ValueError(f"samples of shape {x.shape} for {c} channels")
        x = x.T if x.shape[1] == c else x  # -> [C, n]; [n, C] wins when n == C
        n = x.shape[1]
        if first_sample is None:
            first_sample = self.ring.end if self.ring.end is not None else 0
        first_sample = int(first_sample)
        results: list[Result] = []
        if self.next_start is None:
            self._begin(first_sample)
        elif first_sample > self.ring.end:
            results += self.mark_missing(self.ring.end, first_sample - self.ring.end)
        elif first_sample < self.ring.end:
            skip = self.ring.end - first_sample
            if skip >= n:
                return results
            logger.debug("ignoring %d samples received twice", skip)
            x = x[:, skip:]
            lead_off = lead_off[skip:] if isinstance(lead_off, np.ndarray) else lead_off
            n -= skip
        masks = lead_off if isinstance(lead_off, np.ndarray) else int(lead_off)
        done = 0
        while done < n:
            k = min(n - done, self._until_window_end())
            part = masks[done : done + k] if isinstance(masks, np.ndarray) else masks
            self.ring.write(x[:, done : done + k], part)
            done += k
            results += self._emit_ready()
        return results

    def mark_missing(self, start: int, count: int) -> list[Result]:
        """Samples ``[start, start + count)`` were lost: store them as NaN (only those not yet received)."""
        if count <= 0:
            return []
        if self.next_start is None:
            self._begin(int(start))
        stop = int(start) + int(count)
        results: list[Result] = []
        while self.ring.end < stop:  # samples between the newest one and stop are all missing
            k = min(stop - self.ring.end, self._until_window_end())
            self.ring.write_missing(k)
            self.missing_samples += k
            results += self._emit_ready()
        return results

    def _until_window_end(self) -> int:
        """Samples still to write before the pending window is complete (at least 1)."""
        return max(1, self.next_start + self.window - self.ring.end)

    def _emit_ready(self) -> list[Result]:
        results = []
        while self.ring.end >= self.next_start + self.window:
            start = self.next_start
            self.next_start += self.hop
            if start < self.ring.start:  # can only happen after a jump larger than the ring
                continue
            x, masks = self.ring.read(start, start + self.window)
            result = self.classifier.classify_window(
                x, self.fs, self.leads, lead_off=masks, rail_mv=self.rail_mv
            )
            result.window_start_sample = start
            self.windows += 1
            self.windows_ok += int(not result.skipped)
            results.append(result)
        return results
