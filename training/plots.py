"""Plots of a run: loss and validation curves, per-label top-5 recall bars (matplotlib, no screen)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_history", "plot_per_label"]

_JA_FONTS = ("Noto Sans CJK JP", "IPAexGothic", "IPAGothic", "TakaoGothic", "VL Gothic", "Droid Sans Fallback")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    ja = [f for f in _JA_FONTS if f in names]
    if ja:
        plt.rcParams["font.family"] = [ja[0], "DejaVu Sans"]
    return plt, bool(ja)


def plot_history(history: list[dict], path: str | Path) -> None:
    """Training loss and validation macro AUROC per epoch."""
    plt, _ = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h["val_macro_auroc"] for h in history], "s-", color="tab:orange", label="val macro AUROC")
    ax2.set_ylabel("validation macro AUROC")
    fig.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_per_label(metrics: dict, path: str | Path, min_n: int = 1) -> None:
    """Horizontal bars of top-5 recall per label (n >= min_n), new labels highlighted, n annotated."""
    plt, has_ja = _pyplot()
    rows = [r for r in metrics["per_label"] if r["n"] >= min_n and r["top5_recall"] is not None]
    rows.sort(key=lambda r: r["top5_recall"])
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(8, max(3, 0.22 * len(rows))))
    colors = ["tab:red" if r["new"] else "tab:blue" for r in rows]
    ax.barh(range(len(rows)), [r["top5_recall"] for r in rows], color=colors)
    labels = [f"{r['name'] if has_ja else r['id']} (n={r['n']})" for r in rows]
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.set_xlabel("top-5 recall (red: new labels, zero-shot)")
    ax.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
