"""What the bedside page shows, computed on the runtime side (``edge.views.webview`` serves it).

- :class:`TraceBuffer`: the newest ``TRACE_S`` seconds of the 12 leads (limb leads derived from I and II
  for 8-channel devices, ``edge.dsp.signal.to_twelve_leads``) decimated to about ``DISPLAY_FS`` Hz, addressed
  by display sample index so a page asks only for what is new; lost samples stay gaps (NaN / null).
- :func:`summarise_window`: a contract-5 line as the page needs it (``edge.views.present.summarise``: findings
  with their why in words, their cosine and the zero-shot flag of labels never trained, top labels,
  measurements, quality codes).
- :func:`lead_quality`: per-lead problems (electrode off, noise, missing) of a window's quality report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.dsp.signal import LEADS, SignalError, to_twelve_leads
from edge.views.present import summarise

__all__ = ["DISPLAY_FS", "TRACE_S", "TraceBuffer", "lead_quality", "summarise_window"]

DISPLAY_FS = 250.0  # target rate of the traces sent to the page
TRACE_S = 12.0  # seconds of trace kept for a page that (re)loads
_LIMB_DERIVED = {"III", "aVR", "aVL", "aVF"}


def lead_quality(quality: dict, device_leads: list[str] | None = None) -> dict[str, list[str]]:
    """Per-lead problems of a window's quality report: ``{lead: ["lead_off" | "noise" | "missing"]}``.

    ``lead_off`` and ``flat`` channels are electrodes off (電極外れ), ``saturated`` and ``implausible`` are
    noise (ノイズ), missing samples concern every lead (欠損). Limb leads the device does not record
    (III, aVR, aVL, aVF from I and II) inherit the problems of I and II.
    """
    out: dict[str, list[str]] = {lead: [] for lead in LEADS}

    def add(lead: str, what: str) -> None:
        if lead in out and what not in out[lead]:
            out[lead].append(what)

    for key, what in (
        ("lead_off", "lead_off"),
        ("flat", "lead_off"),
        ("saturated", "noise"),
        ("implausible", "noise"),
    ):
        for lead in quality.get(key) or []:
            add(lead, what)
    derived = _LIMB_DERIVED - set(device_leads or LEADS)
    for lead in derived:
        for source in ("I", "II"):
            for what in out[source]:
                add(lead, what)
    if quality.get("missing_samples"):
        for lead in LEADS:
            add(lead, "missing")
    return out


class TraceBuffer:
    """The newest ``TRACE_S`` seconds of the 12 leads at the display rate, addressed by display index."""

    def __init__(self, fs: float, leads: list[str]) -> None:
        self.source_fs = float(fs)
        self.step = max(1, int(round(fs / DISPLAY_FS)))
        self.fs = self.source_fs / self.step
        self.device_leads = list(leads)
        self.capacity = int(TRACE_S * self.fs)
        self.data = np.full((12, self.capacity), np.nan, np.float32)
        self.end: int | None = None  # display index one past the newest sample

    def add(self, x_mv: np.ndarray, first: int) -> None:
        """Raw device samples ``x_mv[C, n]`` starting at raw index ``first``."""
        offset = (-first) % self.step  # keep raw samples whose index is a multiple of the step
        x = x_mv[:, offset :: self.step]
        if x.shape[1] == 0:
            return
        try:
            twelve = to_twelve_leads(x, self.device_leads)
        except SignalError:
            return
        start = (first + offset) // self.step
        if self.end is None or start > self.end + self.capacity or start < self.end - self.capacity:
            self.data.fill(np.nan)
        elif start > self.end:  # a jump: the samples in between never arrived
            for i in range(self.end, start):
                self.data[:, i % self.capacity] = np.nan
        n = twelve.shape[1]
        idx = np.arange(start, start + n) % self.capacity
        self.data[:, idx] = twelve
        self.end = start + n if self.end is None else max(self.end, start + n)

    def since(self, cursor: int | None, limit_s: float = 4.0) -> dict:
        """Samples after display index ``cursor`` (at most ``limit_s`` s, all when unknown)."""
        if self.end is None:
            return {"fs": self.fs, "end": None, "start": None, "data": []}
        oldest = self.end - self.capacity
        begin = max(oldest, self.end - int(limit_s * self.fs)) if cursor is None else cursor
        begin = min(max(begin, oldest), self.end)
        idx = np.arange(begin, self.end) % self.capacity
        block = np.round(self.data[:, idx] * 100.0)  # 10 µV steps; NaN = missing
        data = [[None if v != v else int(v) for v in row] for row in block.tolist()]
        return {"fs": self.fs, "start": int(begin), "end": int(self.end), "unit_mv": 0.01, "data": data}


def summarise_window(
    line: dict,
    labels: Sequence[dict] = (),
    device_leads: Sequence[str] | None = None,
    all_scores: np.ndarray | None = None,
) -> dict:
    """What the page shows of one contract-5 line: findings (with scores and the zero-shot flag), top
    labels, measurements, quality in words and per lead. ``all_scores`` (the window's scores, in label
    order) gives the score of a finding outside the top five."""
    summary = summarise(line, labels)
    index = {lb["id"]: i for i, lb in enumerate(labels)}
    scores = {item.get("id"): item.get("score") for item in line.get("top") or []}
    findings = []
    for f in summary["findings"]:  # the cosine beside each finding (its bar); why says how it was decided
        score = scores.get(f["id"], _score(all_scores, index.get(f["id"])))
        findings.append({**f, "score": score})
    quality = line.get("quality") or {}
    measurements = summary["measurements"]
    top = summary["top"]
    fs = line.get("fs") or 1
    return {
        "t": line.get("t"),
        "window_start_s": None
        if line.get("window_start_sample") is None
        else round(line["window_start_sample"] / fs, 2),
        "skipped": bool(line.get("skipped")),
        "quality_ok": bool(quality.get("ok")),
        "quality": quality,
        "quality_text": summary["quality_words"],
        "lead_quality": lead_quality(quality, device_leads),
        "measurements": measurements,
        "hr_bpm": measurements.get("hr_bpm"),
        "top": top,
        "findings": findings,
        "withheld": summary["withheld"],  # id -> reason: statements needing a missing lead
        "rhythm": summary["rhythm"],
        "latency_ms": line.get("latency_ms"),
    }


def _score(scores: np.ndarray | None, index: int | None) -> float | None:
    if scores is None or index is None or index >= len(scores):
        return None
    return round(float(scores[index]), 6)
