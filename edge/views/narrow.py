"""Text for an 80-column terminal: Japanese-aware wrapping and one block per window instead of a wide table.

A table of findings with their reasons is hundreds of columns wide; a terminal wraps it mid-word and the
columns no longer line up. :func:`window_block` lays one window out as a few labelled lines (quality, top
labels, each finding on its own line, measurements), each wrapped with a hanging indent so no line is wider
than ``width`` terminal columns (East Asian wide characters count two). Standard library only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

__all__ = ["WIDTH", "text_width", "wrap", "labelled", "window_block"]

WIDTH = 80  # terminal columns the classify output fits
_BREAK = re.compile(r"(?<=[ 、,，。)）\]])(?![、,，。)）\]])")  # after a space, 、 or a bracket, not before 。


def text_width(text: str) -> int:
    """Terminal columns of ``text`` (wide and full-width characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _hard_split(piece: str, room: int) -> list[str]:
    out, cur = [], ""
    for ch in piece:
        if cur and text_width(cur + ch) > room:
            out.append(cur)
            cur = ""
        cur += ch
    return [*out, cur] if cur else out


def wrap(text: str, width: int = WIDTH, indent: str = "", first: str | None = None) -> list[str]:
    """``text`` as lines of at most ``width`` columns: ``first`` (default ``indent``) before the first line,
    ``indent`` before the others; broken after spaces, 、 and brackets, inside a word only when it must."""
    first = indent if first is None else first
    lines: list[str] = []
    cur = first
    prefix_w = text_width(first)
    for piece in [p for p in _BREAK.split(text) if p]:
        if text_width(cur + piece.rstrip()) <= width:
            cur += piece
            continue
        if cur.strip():
            lines.append(cur.rstrip())
            cur, prefix_w = indent, text_width(indent)
            piece = piece.lstrip()
        room = max(8, width - prefix_w)
        parts = _hard_split(piece, room) if text_width(piece.rstrip()) > room else [piece]
        for part in parts[:-1]:
            lines.append((cur + part).rstrip())
            cur = indent
        cur += parts[-1]
    if cur.strip() or not lines:
        lines.append(cur.rstrip())
    return lines


def labelled(label: str, items: Sequence[str], width: int = WIDTH, indent: str = "    ") -> list[str]:
    """``label`` then each item on its own line(s), aligned after the label, wrapped to ``width``."""
    head = f"{indent}{label} "
    hang = " " * text_width(head)
    if not items:
        return [f"{head}-"]
    lines: list[str] = []
    for i, item in enumerate(items):
        lines += wrap(item, width, indent=hang + "  ", first=head if i == 0 else hang)
    return lines


def window_block(
    when: str,
    quality: str,
    top: Sequence[str],
    findings: Sequence[str],
    measurements: str | None,
    width: int = WIDTH,
) -> list[str]:
    """One classified window: ``when`` and its signal quality, then the top labels, the findings (one per
    line, with why) and the measurements, every line at most ``width`` columns."""
    lines = wrap(f"{when}  信号品質 {quality}", width, indent="      ", first="  ")
    if top:
        lines += wrap("  ".join(top), width, indent=" " * 15, first="    上位3件:   ")
    lines += labelled("所見 [根拠]:", list(findings), width)
    if measurements:
        lines += wrap(measurements, width, indent=" " * 15, first="    計測値:    ")
    return lines
