"""What the bedside page shows, computed on the runtime side (``edge.views.webview`` serves it).

- :class:`TraceBuffer`: the newest ``TRACE_S`` seconds of the 12 leads (limb leads derived from I and II
  for 8-channel devices, ``edge.dsp.signal.to_twelve_leads``) decimated to about ``DISPLAY_FS`` Hz, addressed
  by display sample index so a page asks only for what is new; lost samples stay gaps (NaN / null).
- :func:`summarise_window`: a contract-5 line as the page needs it (findings with scores and the
  zero-shot flag of labels never trained, top labels, measurements, quality in words).
- :func:`lead_quality`: per-lead problems (electrode off, noise, missing) of a window's quality report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.dsp.signal import LEADS, SignalError, to_twelve_leads

__all__ = ["DISPLAY_FS", "TRACE_S", "TraceBuffer", "lead_quality", "summarise_window", "decided_by_rule"]

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


def decided_by_rule(score: float | None, label: dict) -> bool:
    """True for a finding whose score is below its label's threshold: a measurement criterion or a rule of
    ``edge.interpret.findings`` made it a finding (e.g. long QT from QTc), so its similarity score means nothing."""
    threshold = label.get("threshold")
    return score is not None and threshold is not None and score < threshold


def summarise_window(
    line: dict,
    labels: Sequence[dict] = (),
    device_leads: Sequence[str] | None = None,
    all_scores: np.ndarray | None = None,
) -> dict:
    """What the page shows of one contract-5 line: findings (with scores and the zero-shot flag), top
    labels, measurements, quality in words and per lead. ``all_scores`` (the window's scores, in label
    order) gives the score of a finding outside the top five."""
    by_id = {lb["id"]: lb for lb in labels}
    index = {lb["id"]: i for i, lb in enumerate(labels)}
    quality = line.get("quality") or {}
    measurements = line.get("measurements") or {}
    zero_shot_ids = {z.get("id") if isinstance(z, dict) else z for z in line.get("zero_shot_findings") or []}
    scores = {item.get("id"): item for item in line.get("top") or []}
    findings = []
    for fid in list(line.get("findings") or []) + [
        z for z in zero_shot_ids if z not in (line.get("findings") or [])
    ]:
        label = by_id.get(fid, {})
        item = scores.get(fid, {})
        findings.append(
            {
                "id": fid,
                "ja": item.get("ja") or label.get("ja") or fid,
                "en": item.get("en") or label.get("en") or fid,
                "score": item.get("score", _score(all_scores, index.get(fid))),
                "zero_shot": bool(item.get("zero_shot") or label.get("zero_shot") or fid in zero_shot_ids),
            }
        )
        findings[-1]["by_rule"] = decided_by_rule(findings[-1]["score"], label)
    top = [
        {
            "id": t.get("id"),
            "ja": t.get("ja"),
            "en": t.get("en"),
            "score": t.get("score"),
            "zero_shot": bool(t.get("zero_shot")),
            "finding": t.get("id") in (line.get("findings") or []),
        }
        for t in line.get("top") or []
    ]
    fs = line.get("fs") or 1
    return {
        "t": line.get("t"),
        "window_start_s": None
        if line.get("window_start_sample") is None
        else round(line["window_start_sample"] / fs, 2),
        "skipped": bool(line.get("skipped")),
        "quality_ok": bool(quality.get("ok")),
        "quality": quality,
        "quality_text": _quality_words(quality),
        "lead_quality": lead_quality(quality, device_leads),
        "measurements": measurements,
        "hr_bpm": measurements.get("hr_bpm"),
        "top": top,
        "findings": findings,
        "withheld": dict(line.get("withheld") or {}),  # id -> reason: statements needing a missing lead
        "latency_ms": line.get("latency_ms"),
    }


def _score(scores: np.ndarray | None, index: int | None) -> float | None:
    if scores is None or index is None or index >= len(scores):
        return None
    return round(float(scores[index]), 6)


def _quality_words(quality: dict) -> list[str]:
    """Machine words of what is wrong (the page translates them)."""
    words = []
    if quality.get("missing_samples"):
        words.append("missing")
    if quality.get("lead_off") or quality.get("flat"):
        words.append("lead_off")
    if quality.get("saturated") or quality.get("implausible"):
        words.append("noise")
    if quality.get("error"):
        words.append("error")
    if quality.get("usable_leads") == []:
        words.append("no_usable")  # not "poor signal": no electrode gives a readable lead
    words += [f"inc_{code}" for code in quality.get("inconsistent") or []]
    return words
