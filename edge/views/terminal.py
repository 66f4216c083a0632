"""The runtime's live view for a terminal, in Japanese: plain ANSI redraws, no curses.

Shows the connection state (接続 / 切断 / 接続待ち), the heart rate in large digits with the intervals and
axis (``edge.dsp.measure`` via the window's ``measurements``), the last window's top labels with their scores,
its findings and signal quality, the stream counters, and a legend that says what the score, the bar, ``*``
and 未検証 mean. Lines are fitted to the terminal's width by whole items, never cut inside a word.

The connection state comes from the data, not only from the port: when no sample has arrived for
:data:`STALE_S` seconds the view says 切断 and marks the findings as those from before the disconnect.
:meth:`LiveView.follow` redraws from a background thread, so the screen changes during the runtime's
reconnect backoff as well (the runtime calls no hook then).
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from typing import TextIO

from edge.views.present import LEGEND_SHORT as PRESENT_LEGEND
from edge.views.present import describe_quality, why_text
from firmware_bridge.leads import lead_name

__all__ = ["LiveView", "display_width", "pad", "fit", "big_number", "LEGEND", "STALE_S"]

CLEAR = "\x1b[H\x1b[2J"
BOLD, DIM, RED, GREEN, YELLOW, RESET = "\x1b[1m", "\x1b[2m", "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[0m"
STALE_S = 1.5  # seconds without a sample after which the device counts as disconnected
LEGEND = PRESENT_LEGEND["ja"]  # edge.views.present.LEGEND_SHORT: what the numbers mean, as the code does it
# Seven-segment digits, three rows of three columns each (ASCII: the same width in every terminal).
_DIGITS = {
    "0": (" _ ", "| |", "|_|"),
    "1": ("   ", "  |", "  |"),
    "2": (" _ ", " _|", "|_ "),
    "3": (" _ ", " _|", " _|"),
    "4": ("   ", "|_|", "  |"),
    "5": (" _ ", "|_ ", " _|"),
    "6": (" _ ", "|_ ", "|_|"),
    "7": (" _ ", "  |", "  |"),
    "8": (" _ ", "|_|", "|_|"),
    "9": (" _ ", "|_|", " _|"),
    "-": ("   ", " _ ", "   "),
}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def display_width(text: str) -> int:
    """Terminal columns of ``text``: East Asian wide and full-width characters take two; colours none."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in _ANSI.sub("", text))


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns."""
    return text + " " * max(0, width - display_width(text))


def _truncate(text: str, width: int) -> str:
    if display_width(text) <= width:
        return text
    out, used = "", 0
    for c in text:
        w = display_width(c)
        if used + w > width - 1:
            break
        out, used = out + c, used + w
    return out + "…"


def fit(items: list[str], width: int, sep: str = "  ", indent: str = "  ") -> list[str]:
    """Join ``items`` into lines of at most ``width`` columns, breaking only between items.

    An item wider than a whole line is shortened with … instead of being cut across lines.
    """
    lines: list[str] = []
    line = ""
    for item in items:
        if not item:
            continue
        candidate = item if not line else line + sep + item
        if display_width(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = _truncate(indent + item if lines or line else item, width)
    if line:
        lines.append(line)
    return lines


def big_number(value: float | None) -> list[str]:
    """Three text rows of ``value`` (rounded) in seven-segment digits; ``---`` when unknown."""
    text = "---" if value is None else str(int(round(value)))
    return ["".join(_DIGITS.get(c, _DIGITS["-"])[row] + " " for c in text) for row in range(3)]


def _ms(value: float | None, unit: str = "ms") -> str:
    if value is None:
        return "—"
    return f"{value:.0f}°" if unit == "°" else f"{value:.0f} {unit}"


class LiveView:
    """Redraws a status screen on ``out`` (a TTY) from a :class:`edge.runtime.serial.Runtime`."""

    def __init__(self, out: TextIO, min_interval_s: float = 0.5, width: int | None = None) -> None:
        self.out = out
        self.min_interval_s = min_interval_s
        self.width = width
        self.web_url: str | None = None  # shown when the runtime also serves the web view
        self.warning: str | None = None  # a bundle loaded with --allow-unsigned: on every frame, never wiped
        self._last_draw = 0.0
        self._last_windows = -1
        self._samples = -1
        self._last_data: float | None = None
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    # --- drawing ----------------------------------------------------------------------------------
    def update(self, runtime) -> None:  # noqa: ANN001 - edge.runtime.serial.Runtime
        """Redraw on a new window, else at most every ``min_interval_s`` (thread-safe)."""
        with self._lock:
            now = time.monotonic()
            if runtime.stats.samples != self._samples:
                self._samples = runtime.stats.samples
                if self._samples > 0:
                    self._last_data = now
            new_window = runtime.stats.windows != self._last_windows
            if not new_window and now - self._last_draw < self.min_interval_s:
                return
            self._last_draw, self._last_windows = now, runtime.stats.windows
            self.out.write(CLEAR + self.render(runtime) + "\n")
            self.out.flush()

    def follow(self, runtime, interval_s: float = 0.25) -> None:  # noqa: ANN001
        """Also redraw from a daemon thread every ``interval_s`` until :meth:`unfollow`."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.update(runtime)

        self._stop.clear()
        self._ticker = threading.Thread(target=loop, name="ecg-liveview", daemon=True)
        self._ticker.start()

    def unfollow(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(2)
            self._ticker = None

    def connection_state(self, runtime) -> str:  # noqa: ANN001
        """``connected``, ``disconnected`` (data stopped or port lost) or ``waiting`` (no data yet)."""
        age = None if self._last_data is None else time.monotonic() - self._last_data
        if runtime.connected and age is not None and age <= STALE_S:
            return "connected"
        return "waiting" if self._last_data is None else "disconnected"

    def render(self, runtime) -> str:  # noqa: ANN001
        if not self.width:
            import shutil  # here, not at import: shutil loads bz2 and lzma (0.5 MiB) into `ecg-edge run`

        width = self.width or shutil.get_terminal_size((100, 30)).columns
        stats, hello, cfg = runtime.stats, runtime.hello, runtime.config
        state = self.connection_state(runtime)
        if self._last_data is None and stats.samples > 0:  # render() called without update()
            self._last_data = time.monotonic()
            state = self.connection_state(runtime)
        badge = {
            "connected": f"{GREEN}{BOLD}● 接続{RESET}",
            "waiting": f"{YELLOW}○ 接続待ち{RESET}",
            "disconnected": f"{RED}{BOLD}✖ 切断{RESET}",
        }[state]
        lines = [f"{BOLD}ECG ベッドサイドモニタ{RESET}  {badge}  {cfg.port}"]
        if self.warning:
            lines.append(f"{RED}{BOLD}⚠ {self.warning}{RESET}")
        if self.web_url:
            lines.append(f"ブラウザ表示: {self.web_url}")
        if state == "disconnected":
            age = time.monotonic() - (self._last_data or time.monotonic())
            lines.append(
                f"{RED}信号が {age:.0f} 秒届いていません: ケーブルと電源を確認してください (自動で再接続します){RESET}"
            )
        info = []
        if hello is not None:
            leads = ",".join(lead_name(c) for c in hello.channel_leads)
            info += [
                f"装置 {hello.device_id or '?'}",
                f"ファームウェア {hello.fw_major}.{hello.fw_minor}",
                f"{hello.fs_hz} Hz",
                f"誘導 {leads}",
            ]
        elapsed = time.monotonic() - stats.started
        info += [
            f"バンドル {runtime.classifier.bundle_id}",
            f"稼働 {elapsed:.0f} 秒",
            f"再接続 {stats.reconnects} 回",
        ]
        lines += fit(info, width)
        frames = runtime.frame_stats()
        bad = sum(
            frames.get(k, 0)
            for k in ("cobs_errors", "length_errors", "crc_errors", "format_errors", "overflow")
        )
        lines += fit(
            [
                f"判定 {stats.windows} 回 (良好 {stats.windows_ok})",
                f"フレーム {frames['frames_ok']}",
                f"不良フレーム {bad}",
                f"欠落 (seq) {frames['frames_lost']}",
                f"欠損サンプル {stats.missing_samples}",
            ],
            width,
        )
        lines.append("")
        result = runtime.last_result
        if result is None:
            lines.append(
                f"{DIM}最初の判定まで {runtime.classifier.signal.window_s:g} 秒の信号が必要です{RESET}"
            )
            return "\n".join(lines + [""] + self._legend(width))
        lines += self._result_lines(runtime, result, state, width)
        return "\n".join(lines + [""] + self._legend(width))

    def _result_lines(self, runtime, result, state: str, width: int) -> list[str]:  # noqa: ANN001
        lines = []
        stale = state != "connected"
        dim = DIM if stale else ""
        m = getattr(result, "measurements", None) or {}
        hr = m.get("hr_bpm") if not result.skipped else None
        digits = big_number(hr)
        label = ["心拍数", "", "bpm"]
        for row in range(3):
            lines.append(f"{dim}{BOLD}{digits[row]}{RESET}{dim} {label[row]}{RESET}")
        lines += fit(
            [
                f"RR {_ms(m.get('rr_ms'))}",
                f"PR {_ms(m.get('pr_ms'))}",
                f"QRS {_ms(m.get('qrs_ms'))}",
                f"QT {_ms(m.get('qt_ms'))}",
                f"QTc {_ms(m.get('qtc_ms'))}",
                f"軸 {_ms(m.get('axis_deg'), '°')}",
            ],
            width,
        )
        fs = result.fs or 1.0
        start_s = (result.window_start_sample or 0) / fs
        q = describe_quality(result.quality)
        colour = GREEN if result.quality.get("ok") else RED
        head = "最後の判定 (切断前)" if stale else "判定"
        lines += fit(
            [
                f"{dim}{head}: {start_s:.1f} 秒からの 10 秒{RESET}",
                f"信号品質 {colour}{q}{RESET}",
                f"{result.latency_ms:.1f} ms",
            ],
            width,
        )
        if result.skipped:
            lines.append(f"{DIM}判定なし: 信号品質が不十分です{RESET}")
            return lines
        by_id = {lb["id"]: lb for lb in runtime.classifier.labels}
        zero_shot = {t["id"] for t in result.top if t.get("zero_shot")}
        zero_shot |= {lb["id"] for lb in runtime.classifier.labels if lb.get("zero_shot")}
        name_w = min(28, max(display_width(t["ja"]) for t in result.top) if result.top else 10)
        for rank, item in enumerate(result.top, 1):
            bar = "#" * max(0, int(round(item["score"] * 30)))
            mark = "*" if item["id"] in result.findings or item["id"] in result.zero_shot_findings else " "
            tag = " 未検証" if item["id"] in zero_shot else ""
            text = (
                f" {mark}{rank}. {pad(_truncate(item['ja'], name_w), name_w)} {item['score']:+.3f}{tag} {bar}"
            )
            lines.append(dim + _truncate(text, width) + (RESET if dim else ""))
        found = [  # each with why it was stated (result.why): never guessed from its score
            by_id.get(i, {}).get("ja", i)
            + (" (未検証)" if i in zero_shot else "")
            + (f" [{why_text(result.why.get(i), values=False)}]" if result.why.get(i) else "")
            for i in [*result.findings, *result.zero_shot_findings]
        ]
        found = found or ["なし"]
        lines += fit([f"所見: {found[0]}", *found[1:]], width, sep="、")
        return lines

    @staticmethod
    def _legend(width: int) -> list[str]:
        return [DIM + line + RESET for line in fit(list(LEGEND), width, sep="  ")]
