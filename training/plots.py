"""Plots of a training run: loss and validation curves, per-label top-5 recall bars (matplotlib, no screen).

Japanese label names need a Japanese font: :func:`edge.views.fonts.use_japanese_font` takes it from a package
(``matplotlib-fontja`` in the ``train`` extra, or Debian's Noto CJK) and raises with the install command when
there is none; plots never fall back to label ids. A run folder's plots can be drawn again without
training: ``python -m training.plots runs/NAME`` reads its ``history.json`` and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_history", "plot_per_label", "redraw", "best_epoch", "main"]


def _pyplot():  # noqa: ANN202 - matplotlib.pyplot
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edge.views.fonts import use_japanese_font

    use_japanese_font()
    return plt


def best_epoch(history: list[dict]) -> dict | None:
    """The epoch whose weights the run kept: the first with the highest validation macro AUROC."""
    scored = [h for h in history if h.get("val_macro_auroc") is not None]
    return max(scored, key=lambda h: h["val_macro_auroc"]) if scored else None


def plot_history(history: list[dict], path: str | Path, title: str | None = None) -> None:
    """Training loss and validation macro AUROC per epoch; the kept (best) epoch marked."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="学習損失 (train loss)")
    ax.set_xlabel("エポック (epoch)")
    ax.set_ylabel("学習損失 (loss)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2 = ax.twinx()
    ax2.plot(epochs, [h["val_macro_auroc"] for h in history], "s-", color="tab:orange",
             label="検証 macro AUROC")  # fmt: skip
    ax2.set_ylabel("検証 macro AUROC (validation)")
    best = best_epoch(history)
    if best is not None:
        ax2.axvline(best["epoch"], color="tab:green", ls="--", lw=1)
        ax2.plot([best["epoch"]], [best["val_macro_auroc"]], "*", color="tab:green", ms=14,
                 label=f"採用エポック {best['epoch']} (AUROC {best['val_macro_auroc']:.3f})")  # fmt: skip
    ax.set_title(title or "学習曲線: 損失と検証 macro AUROC")
    handles, names = ax.get_legend_handles_labels()
    handles2, names2 = ax2.get_legend_handles_labels()
    ax2.legend(handles + handles2, names + names2, loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_per_label(metrics: dict, path: str | Path, min_n: int = 1, title: str | None = None) -> None:
    """Horizontal bars of top-5 recall per label (n >= min_n) by Japanese name, new labels highlighted."""
    rows = [r for r in metrics["per_label"] if r["n"] >= min_n and r["top5_recall"] is not None]
    rows.sort(key=lambda r: r["top5_recall"])
    if not rows:
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, max(3, 0.22 * len(rows) + 1)))
    colors = ["tab:red" if r.get("new") else "tab:blue" for r in rows]
    ax.barh(range(len(rows)), [r["top5_recall"] for r in rows], color=colors)
    labels = [f"{r.get('name') or r['id']} (n={r['n']})" for r in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xlabel("上位5件の再現率 (top-5 recall)   赤: 新ラベル (ゼロショット、未検証)")
    ax.set_xlim(0, 1)
    ax.set_title(title or "ラベル別の上位5件再現率 (テスト)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def redraw(run_dir: str | Path) -> list[Path]:
    """Draw a run folder's plots again from its ``history.json`` and ``metrics.json`` (no training)."""
    run = Path(run_dir)
    history_path, metrics_path = run / "history.json", run / "metrics.json"
    if not history_path.is_file():
        raise FileNotFoundError(f"{run}: no history.json (is this a run folder of ecg-train?)")
    history = json.loads(history_path.read_text(encoding="utf-8"))
    written = [run / "loss_curves.png"]
    plot_history(history, written[0], title=f"学習曲線: {run.name}")
    if metrics_path.is_file():
        test = json.loads(metrics_path.read_text(encoding="utf-8")).get("test") or {}
        if test.get("per_label"):
            written.append(run / "per_label_top5.png")
            plot_per_label(test, written[1], title=f"ラベル別の上位5件再現率 (テスト): {run.name}")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.plots RUN_DIR...``: redraw the plots of run folders."""
    parser = argparse.ArgumentParser(
        prog="python -m training.plots",
        description="Draw the plots of ecg-train run folders again from history.json and metrics.json, "
        "without training (loss_curves.png, per_label_top5.png).",
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    args = parser.parse_args(argv)
    from edge.views.fonts import FontError

    for run in args.runs:
        try:
            for path in redraw(run):
                print(path)
        except (FileNotFoundError, FontError, json.JSONDecodeError, KeyError) as exc:
            print(f"training.plots: error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
