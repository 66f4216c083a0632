"""Training plots: Japanese label names drawn with a packaged font (no missing glyphs, no id fallback),
the kept epoch marked, and a run folder's plots redrawn without training."""

from __future__ import annotations

import json
import warnings

import pytest

pytest.importorskip("matplotlib")

from training.plots import best_epoch, main, redraw  # noqa: E402

HISTORY = [
    {"epoch": 1, "train_loss": 3.7, "val_macro_auroc": 0.63},
    {"epoch": 2, "train_loss": 3.2, "val_macro_auroc": 0.71},
    {"epoch": 3, "train_loss": 3.0, "val_macro_auroc": 0.69},
]
PER_LABEL = [
    {"id": "SR", "name": "洞調律", "n": 53, "top5_recall": 1.0, "new": False},
    {"id": "CLBBB", "name": "完全左脚ブロック", "n": 4, "top5_recall": 0.5, "new": False},
    {"id": "BRUGADA", "name": "ブルガダ型心電図", "n": 2, "top5_recall": 0.0, "new": True},
]


def test_best_epoch_is_the_first_with_the_highest_validation_auroc():
    assert best_epoch(HISTORY)["epoch"] == 2
    assert best_epoch([*HISTORY, {"epoch": 4, "train_loss": 2.9, "val_macro_auroc": 0.71}])["epoch"] == 2
    assert best_epoch([]) is None


def test_run_folder_plots_are_redrawn_in_japanese_without_missing_glyphs(tmp_path):
    (tmp_path / "history.json").write_text(json.dumps(HISTORY))
    (tmp_path / "metrics.json").write_text(json.dumps({"test": {"per_label": PER_LABEL}}, ensure_ascii=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for tofu
        written = redraw(tmp_path)
    assert [p.name for p in written] == ["loss_curves.png", "per_label_top5.png"]
    assert all(p.stat().st_size > 10_000 for p in written)
    from matplotlib import font_manager, rcParams

    font = font_manager.findfont(font_manager.FontProperties(family=rcParams["font.family"]))
    assert "DejaVu" not in font, f"no Japanese font in use: {font}"


def test_redraw_of_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "history.json" in err
