"""The 12-lead report (``ecg-edge classify FILE --report out.pdf|out.png``): one A4 landscape page.

The standard layout clinicians read on paper: four columns of 2.5 s (I, II, III | aVR, aVL, aVF | V1, V2,
V3 | V4, V5, V6) over three rows, then a 10-s lead-II rhythm strip, each row starting with a 1 mV
calibration pulse, on ECG grid paper (1 mm and 5 mm squares) at 25 mm/s and 10 mm/mV: the page is drawn
in millimetres, so a printed A4 page has those true scales. Above the grid: the source, the time, the
bundle id, the measurements (``edge.dsp.measure``, via the window's result), the findings in Japanese with
why each was stated (rhythm analysis, a criterion with its values, or the model's cosine and threshold;
labels never trained marked 未検証) and the signal quality; below it, the disclaimer that this
is not a diagnosis.

matplotlib (and its Japanese font, :mod:`edge.views.fonts`) is imported only when a report is drawn, so the
device path (``ecg-edge run``, ``classify`` without ``--report``) never loads it; it comes with the
``report`` extra. The traces are band-passed 0.5-100 Hz for display only (baseline wander removed, as an
ECG cart's display filter does); classification and measurements use their own contracts.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.dsp.signal import LEADS, SignalError, bandpass, to_twelve_leads
from edge.readers.patient import PatientInfo, acquired_text, sex_text
from edge.views.present import LEGEND as REPORT_LEGEND
from edge.views.present import alarm_text, describe_quality, measurement_items, why_text

__all__ = [
    "ReportError",
    "write_report",
    "check_report_dependencies",
    "patient_text",
    "LAYOUT",
    "DISCLAIMER",
    "PAGE_MM",
    "SPEEDS",
    "GAINS",
]

PAGE_MM = (297.0, 210.0)  # A4 landscape
MM_PER_S = 25.0  # the standard paper speed and gain; SPEEDS and GAINS are the choices a reader may make
MM_PER_MV = 10.0
SPEEDS = (25.0, 50.0)
GAINS = (5.0, 10.0, 20.0)
_LABEL_W, _LABEL_H = 7.0, 3.6  # mm taken by a lead label (8 pt)
LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
RHYTHM_LEAD = "II"
DISCLAIMER = "診断ではありません。AI による参考所見です。必ず医師が心電図を確認してください。"
_GRID_X0, _TRACE_X0, _GRID_Y0, _ROW_MM = 10.0, 22.0, 22.0, 31.0
_INK, _MINOR, _MAJOR = "#111111", "#f4c7c0", "#e58b7d"


class ReportError(ValueError):
    """A report that cannot be drawn (unknown format, missing plotting dependency)."""


def check_report_dependencies() -> None:
    """Raise :class:`ReportError` now when matplotlib or the Japanese font is missing (before any work)."""
    try:
        import matplotlib  # noqa: F401 - only whether it imports
    except ImportError:
        raise ReportError("--report needs matplotlib: pip install 'ecg-clip-ja[report]'") from None
    from edge.views.fonts import FontError, japanese_font_file, use_japanese_font

    if japanese_font_file() is None:  # no packaged font: look for a system one (imports matplotlib)
        try:
            use_japanese_font()
        except FontError as exc:
            raise ReportError(str(exc)) from None


def patient_text(patient: PatientInfo | None) -> str:
    """The header line a chart files by: ID, sex, age (birth date), acquisition time, cart; 記録なし if absent."""
    p = patient or PatientInfo()
    age = p.age_years
    age_text = f"{age}歳" if age is not None else "記録なし"
    if p.birth_date is not None:
        age_text += f" (生年月日 {p.birth_date.isoformat()})"
    parts = [
        f"患者ID {p.patient_id or '記録なし'}",
        f"性別 {sex_text(p.sex)}",
        f"年齢 {age_text}",
        f"記録日時 {acquired_text(p.acquired)}",
    ]
    if p.device:
        parts.append(f"装置 {p.device}")
    return "   ".join(parts)


def measurement_text(measurements: dict | None) -> str:
    """The measurements as one line (— for a value that could not be measured), in the words of
    ``edge.views.present``."""
    return "   ".join(f"{name} {value}" for name, value in measurement_items(measurements, "ja"))


def findings_text(result, labels: Sequence[dict] = ()) -> tuple[str, str]:  # noqa: ANN001 - edge.runtime.engine.Result
    """(findings line, candidates line) in Japanese with scores; 未検証 marks labels never trained."""
    if result.skipped:
        return "判定なし: 信号品質が不十分です", ""
    by_id = {lb["id"]: lb for lb in labels}
    index = {lb["id"]: i for i, lb in enumerate(labels)}
    top = {t["id"]: t for t in result.top}
    zero_shot = {t["id"] for t in result.top if t.get("zero_shot")}
    zero_shot |= {lb["id"] for lb in labels if lb.get("zero_shot")}

    def item(fid: str) -> str:
        name = top.get(fid, {}).get("ja") or by_id.get(fid, {}).get("ja") or fid
        score = top.get(fid, {}).get("score")
        if score is None and result.scores is not None and fid in index:
            score = float(result.scores[index[fid]])
        why = result.why.get(fid)  # a never-trained label stated by a criterion or the rhythm is not the model's guess
        mark = " [未検証]" if fid in zero_shot and (why is None or why.by == "model") else ""
        if fid in found and result.why.get(fid) is not None:  # how it was decided, never guessed from the score
            return f"{name} [{why_text(result.why[fid])}]{mark}"
        return f"{name} {score:.3f}{mark}" if score is not None else f"{name}{mark}"

    found = [*result.findings, *result.zero_shot_findings]  # never-trained findings last, marked 未検証
    alarms = {a.get("id") for a in getattr(result, "alarms", None) or []}
    found.sort(key=lambda fid: fid not in alarms)  # alarms (ST elevation) first
    findings = "、".join(item(f) for f in found) or "閾値を超えた所見なし"
    if alarms & set(found):
        where = alarm_text(result.alarms, next(f for f in found if f in alarms))
        findings = f"【警報】{findings}" + (f"（{where}）" if where else "")
    others = [t["id"] for t in result.top if t["id"] not in found]
    return findings, "、".join(item(f) for f in others)


def quality_text(quality: dict) -> str:
    return describe_quality(quality)


def _display_leads(x_mv: np.ndarray, fs: float, leads: Sequence[str] | None) -> np.ndarray:
    x = to_twelve_leads(x_mv, leads)
    x = np.where(np.isfinite(x), x, 0.0).astype(np.float32)
    high = min(100.0, 0.45 * fs)
    try:
        x, _ = bandpass(x, fs, (0.5, high))
    except (SignalError, ValueError):
        x = x - np.median(x, axis=1, keepdims=True)
    return x


def _grid(ax, x0: float, x1: float, y0: float, y1: float) -> None:  # noqa: ANN001
    from matplotlib.collections import LineCollection

    for step, color, width in ((1.0, _MINOR, 0.25), (5.0, _MAJOR, 0.6)):
        xs = np.arange(x0, x1 + 1e-6, step)
        ys = np.arange(y0, y1 + 1e-6, step)
        segs = [((x, y0), (x, y1)) for x in xs] + [((x0, y), (x1, y)) for y in ys]
        ax.add_collection(LineCollection(segs, colors=color, linewidths=width, zorder=1))


def _calibration(ax, x: float, base: float, gain: float) -> None:  # noqa: ANN001
    """1 mV for 200 ms at the standard speed: ``gain`` mm high, 5 mm wide."""
    ax.plot([x, x + 1, x + 1, x + 6, x + 6, x + 7], [base, base, base + gain, base + gain, base, base],
            color=_INK, lw=0.7, zorder=3)  # fmt: skip


def label_y(trace_y: np.ndarray, base: float, row_mm: float) -> float:
    """Where a lead label goes (its lower edge, mm): clear of its trace under the label, inside its row.

    Above the highest point of the trace under the label when that fits below the row's top, else below
    its lowest point, else in whichever gap is larger (a trace filling the whole row leaves no clear place).
    """
    top, bottom = base + 0.45 * row_mm, base - 0.55 * row_mm
    if trace_y.size == 0:
        return top - _LABEL_H
    hi, lo = float(np.max(trace_y)), float(np.min(trace_y))
    if hi + 1.0 + _LABEL_H <= top:
        return max(hi + 1.0, base + 2.0)  # near the baseline when the trace is small
    if lo - 1.0 - _LABEL_H >= bottom:
        return lo - 1.0 - _LABEL_H
    return top - _LABEL_H if top - hi >= lo - bottom else bottom


def write_report(
    path: str | Path,
    x_mv: np.ndarray,
    fs: float,
    leads: Sequence[str] | None,
    result,  # noqa: ANN001 - edge.runtime.engine.Result
    *,
    source: str,
    labels: Sequence[dict] = (),
    window_start_s: float = 0.0,
    created: _dt.datetime | None = None,
    patient: PatientInfo | None = None,
    speed: float = MM_PER_S,
    gain: float = MM_PER_MV,
) -> Path:
    """Draw the report of the 10-s window ``x_mv[C, T]`` (mV) and its ``result`` to ``path`` (.pdf/.png).

    ``patient`` fills the header block (nothing is invented for what it lacks); ``speed`` (mm/s, one of
    :data:`SPEEDS`) and ``gain`` (mm/mV, one of :data:`GAINS`) choose the paper scales, marked on the page.
    """
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".pdf", ".png"):
        raise ReportError(f"--report {path}: the report is a .pdf or a .png file")
    if speed not in SPEEDS or gain not in GAINS:
        raise ReportError(f"report scales {speed:g} mm/s, {gain:g} mm/mV: choose from {SPEEDS} mm/s and {GAINS} mm/mV")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ReportError("--report needs matplotlib: pip install 'ecg-clip-ja[report]'") from None
    from edge.views.fonts import FontError, use_japanese_font

    try:
        use_japanese_font()
    except FontError as exc:
        raise ReportError(str(exc)) from None
    plt.rcParams["pdf.fonttype"] = 42  # TrueType in the PDF: text stays text (searchable, extractable)
    plt.rcParams["text.parse_math"] = False  # file names and ids are text, never formulas ("$x^{$": issue 25)
    x = _display_leads(x_mv, fs, leads)
    created = created or _dt.datetime.now(_dt.timezone.utc).astimezone()
    width_mm, height_mm = PAGE_MM
    fig = plt.figure(figsize=(width_mm / 25.4, height_mm / 25.4))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    ax.axis("off")

    # --- the grid, the 3x4 leads and the rhythm strip -------------------------------------------------
    n_rows = len(LAYOUT) + 1
    grid_top = _GRID_Y0 + n_rows * _ROW_MM
    strip_mm = 10.0 * MM_PER_S  # 250 mm of paper: 10 s at 25 mm/s, 5 s at 50 mm/s
    strip_s = strip_mm / speed
    _grid(ax, _GRID_X0, _TRACE_X0 + strip_mm + 5, _GRID_Y0, grid_top)
    from matplotlib.patches import Rectangle

    paper = Rectangle((_GRID_X0, _GRID_Y0), _TRACE_X0 + strip_mm + 5 - _GRID_X0, grid_top - _GRID_Y0,
                      transform=ax.transData, fill=False, edgecolor="none")  # fmt: skip
    col_s = strip_s / len(LAYOUT[0])
    n_col = int(round(col_s * fs))
    rows = [*LAYOUT, (RHYTHM_LEAD,)]
    for r, names in enumerate(rows):
        base = grid_top - (r + 0.55) * _ROW_MM
        _calibration(ax, _GRID_X0 + 3, base, gain)
        ax.lines[-1].set_clip_path(paper)
        for c, name in enumerate(names):
            i = LEADS.index(name)
            if len(names) == 1:
                seg, t0 = x[i, : int(round(strip_s * fs))], 0.0
            else:
                seg, t0 = x[i, c * n_col : (c + 1) * n_col], c * col_s
            t = t0 + np.arange(seg.shape[0]) / fs
            xs, ys = _TRACE_X0 + t * speed, base + seg * gain
            (line,) = ax.plot(xs, ys, color=_INK, lw=0.5, zorder=3, solid_joinstyle="round")
            line.set_clip_path(paper)  # a double-gain trace stays on the paper, as a cart prints it
            x_label = _TRACE_X0 + t0 * speed + 1
            under = ys[(xs >= x_label - 0.5) & (xs <= x_label + _LABEL_W)]
            ax.text(x_label, label_y(under, base, _ROW_MM), name, fontsize=8, zorder=4, va="bottom")
            if c:  # a short mark where the columns meet
                ax.plot([x_label - 1] * 2, [base - 3, base + 3], color=_INK, lw=0.8, zorder=4)
    ax.text(_TRACE_X0 + strip_mm + 5, _GRID_Y0 - 4.5, f"紙送り {speed:g} mm/s   感度 {gain:g} mm/mV"
            f"{'' if gain == MM_PER_MV else ' (標準の' + ('1/2' if gain < MM_PER_MV else '2倍') + ')'}   "
            f"表示フィルタ 0.5–{min(100.0, 0.45 * fs):g} Hz", fontsize=8.5, ha="right",
            color="#b71c1c" if (speed, gain) != (MM_PER_S, MM_PER_MV) else _INK)  # fmt: skip

    # --- header: who, when, what was found --------------------------------------------------------------
    measures = getattr(result, "measurements", None) or {}
    findings, candidates = findings_text(result, labels)
    top = height_mm - 10
    ax.text(_GRID_X0, top, "12誘導心電図 レポート", fontsize=15, va="top")
    ax.text(
        width_mm - 10,
        top,
        f"作成 {created.strftime('%Y-%m-%d %H:%M:%S %z')}",
        fontsize=8,
        va="top",
        ha="right",
    )
    ax.text(_GRID_X0, top - 7.5, patient_text(patient), fontsize=9, va="top")
    ax.text(_GRID_X0, top - 12.5, f"記録 {Path(source).name}   区間 {window_start_s:.1f}–{window_start_s + strip_s:.1f} 秒   "
            f"{fs:g} Hz   信号品質 {quality_text(result.quality)}   バンドル {result.bundle or '?'}", fontsize=8,
            va="top")  # fmt: skip
    ax.text(_GRID_X0, top - 17.5, "計測値", fontsize=9, va="top")
    ax.text(_GRID_X0 + 14, top - 17.5, measurement_text(measures), fontsize=9, va="top")
    ax.text(_GRID_X0, top - 23, "所見", fontsize=9, va="top")
    alarm = findings.startswith("【警報】")  # ST elevation: the findings line in the alarm colour
    text_x, text_w = _GRID_X0 + 14, width_mm - 10 - (_GRID_X0 + 14)
    # Findings with their reasons wrap onto as many lines as the header holds (smaller type when long); the
    # candidates follow below them, so no line is drawn over another (issue 24: the page as a reader reads it).
    y = text_block(ax, text_x, top - 23, findings, text_w, (11, 9.5, 8), 4, color="#b71c1c" if alarm else _INK)
    if candidates:
        ax.text(_GRID_X0, y - 0.8, "候補", fontsize=8, va="top", color="#444444")
        text_block(ax, text_x, y - 0.8, candidates, text_w, (8,), 1, color="#444444")
    # Below the paper: what the scores and the reasons mean (scores are cosines; リズム解析 / 基準 / モデル).
    ax.text(_GRID_X0, _GRID_Y0 - 2, "\n".join(REPORT_LEGEND["ja"][:3]), fontsize=6.0, va="top", color="#555555")

    # --- footer --------------------------------------------------------------------------------------------
    ax.text(_GRID_X0, 5, DISCLAIMER, fontsize=10, color="#b71c1c", va="bottom")
    # Drawn to a temporary file beside ``path`` and renamed: a failure never leaves a truncated report (#25).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{kind}")
    try:
        fig.savefig(tmp, dpi=200 if kind == ".png" else None, metadata=_metadata(kind, source))
        os.replace(tmp, path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ReportError(f"--report {path}: cannot write the report ({' '.join(str(exc).split())[:160]})") from None
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


def _metadata(kind: str, source: str) -> dict:
    if kind == ".pdf":
        return {
            "Title": f"12誘導心電図 レポート: {Path(source).name}",
            "Creator": "ecg-edge classify --report",
        }
    return {"Title": f"12-lead ECG report: {Path(source).name}", "Software": "ecg-edge classify --report"}


_PT_TO_MM = 25.4 / 72
_HALF_EM = 0.56  # a narrow (Latin) character is about this share of the font size; a wide one twice it


def text_block(ax, x: float, y: float, text: str, width_mm: float, sizes: Sequence[float], max_lines: int,  # noqa: ANN001
               **style) -> float:  # fmt: skip
    """Draw ``text`` from (``x``, ``y``) downwards, wrapped to ``width_mm`` (edge.views.narrow, wide characters
    count two), in the largest of ``sizes`` (pt) that fits ``max_lines``; at the smallest size lines beyond
    ``max_lines`` end in "…". Returns the y (mm) below the block, so what follows never overlaps it."""
    from edge.views.narrow import wrap

    for size in sizes:
        columns = max(10, int(width_mm / (_HALF_EM * size * _PT_TO_MM)))
        lines = wrap(text, columns)
        if len(lines) <= max_lines:
            break
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1][: max(1, len(lines[max_lines - 1]) - 2)] + " …"]
    step = 1.25 * size * _PT_TO_MM
    ax.text(x, y, "\n".join(lines), fontsize=size, va="top", linespacing=1.25, **style)
    return y - step * len(lines)
