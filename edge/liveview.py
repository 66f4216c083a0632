"""A readable live view of the runtime for a terminal: plain ANSI redraws, no curses.

Shows the device and stream format, the last window's top labels in Japanese with their scores,
its findings and quality, and the stream counters (frames, bad frames, missing samples, reconnects).
Redraws on every window and at most a few times a second otherwise, so it costs nothing measurable.
"""

from __future__ import annotations

import time
import unicodedata
from typing import TextIO

from firmware_bridge.leads import lead_name

__all__ = ["LiveView", "display_width", "pad"]

CLEAR = "\x1b[H\x1b[2J"
BOLD, DIM, RED, GREEN, RESET = "\x1b[1m", "\x1b[2m", "\x1b[31m", "\x1b[32m", "\x1b[0m"


def display_width(text: str) -> int:
    """Terminal columns of ``text``: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns."""
    return text + " " * max(0, width - display_width(text))


def describe_quality(quality: dict) -> str:
    """One line for a quality report: ``OK`` or what is wrong."""
    if quality.get("ok"):
        return "OK"
    parts = []
    if quality.get("missing_samples"):
        parts.append(f"{quality['missing_samples']} missing samples")
    for key, words in (
        ("lead_off", "lead off"),
        ("flat", "flat"),
        ("saturated", "saturated"),
        ("implausible", "implausible amplitude"),
    ):
        if quality.get(key):
            parts.append(f"{words}: {','.join(quality[key])}")
    if quality.get("error"):
        parts.append(quality["error"])
    return "NOT OK (" + "; ".join(parts or ["unknown"]) + ")"


class LiveView:
    """Redraws a status screen on ``out`` (a TTY) from a :class:`edge.runtime.Runtime`."""

    def __init__(self, out: TextIO, min_interval_s: float = 0.5) -> None:
        self.out = out
        self.min_interval_s = min_interval_s
        self._last_draw = 0.0
        self._last_windows = -1

    def update(self, runtime) -> None:  # noqa: ANN001 - edge.runtime.Runtime
        now = time.monotonic()
        new_window = runtime.stats.windows != self._last_windows
        if not new_window and now - self._last_draw < self.min_interval_s:
            return
        self._last_draw, self._last_windows = now, runtime.stats.windows
        self.out.write(CLEAR + self.render(runtime) + "\n")
        self.out.flush()

    def render(self, runtime) -> str:  # noqa: ANN001
        stats, hello, cfg = runtime.stats, runtime.hello, runtime.config
        lines = [
            f"{BOLD}ECG bedside runtime{RESET}  {cfg.port}  "
            + (f"{GREEN}connected{RESET}" if runtime.connected else f"{RED}waiting for the device{RESET}")
        ]
        if hello is not None:
            leads = ",".join(lead_name(c) for c in hello.channel_leads)
            lines.append(
                f"device {hello.device_id or '?'}  firmware {hello.fw_major}.{hello.fw_minor}  "
                f"{hello.fs_hz} Hz  {leads}  {hello.lsb_nv} nV/LSB"
            )
        frames = runtime.frame_stats()
        bad = sum(
            frames[k] for k in ("cobs_errors", "length_errors", "crc_errors", "format_errors", "overflow")
        )
        elapsed = time.monotonic() - stats.started
        lines.append(
            f"bundle {runtime.classifier.bundle_id}  backend {runtime.classifier.backend.name}  "
            f"up {elapsed:.0f} s  reconnects {stats.reconnects}"
        )
        lines.append(
            f"windows {stats.windows} ({stats.windows_ok} ok)  frames {frames['frames_ok']}  "
            f"bad frames {bad}  lost by seq {frames['frames_lost']}  "
            f"missing samples {stats.missing_samples}"
        )
        lines.append("")
        result = runtime.last_result
        if result is None:
            lines.append(
                f"{DIM}no window yet (the first comes after "
                f"{runtime.classifier.signal.window_s:g} s of signal){RESET}"
            )
            return "\n".join(lines)
        fs = result.fs or 1.0
        start_s = (result.window_start_sample or 0) / fs
        q = describe_quality(result.quality)
        colour = GREEN if result.quality.get("ok") else RED
        lines.append(
            f"window at {start_s:.1f} s (sample {result.window_start_sample})  "
            f"quality {colour}{q}{RESET}  {result.latency_ms:.1f} ms"
        )
        if result.skipped:
            lines.append(f"{DIM}not classified: the signal quality is not good enough{RESET}")
            return "\n".join(lines)
        by_id = {lb["id"]: lb for lb in runtime.classifier.labels}
        for rank, item in enumerate(result.top, 1):
            bar = "#" * max(0, int(round(item["score"] * 40)))
            mark = "*" if item["id"] in result.findings else " "
            lines.append(f" {mark}{rank}. {pad(item['ja'], 24)} {item['score']:+.3f} {bar}")
        found = ", ".join(by_id[i].get("ja", i) for i in result.findings) or "-"
        lines.append(f"findings: {found}")
        return "\n".join(lines)
