"""ecg-train / ecg-eval as a user meets them: a one-line error on a board without the train extra, and
--quiet drawing no progress bar (issue 24)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("prog", ["train_main", "eval_main"])
def test_without_the_train_extra_one_line_names_the_extra(prog, tmp_path):
    """A board installed with .[edge] has no torch: no ModuleNotFoundError traceback, one line, non-zero exit."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # import torch now raises ImportError, as on the board\n"
        f"from training.cli import {prog}\n"
        f"args = ['--data', 'ptbxl=x', '--out', {str(tmp_path / 'r')!r}] if {prog!r} == 'train_main' "
        f"else ['ck.pt', '--data', 'ptbxl=x']\n"
        f"sys.exit({prog}(args))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "pip install 'ecg-clip-ja[train]'" in proc.stderr and "torch" in proc.stderr


def _manifest(folder: Path) -> Path:
    from firmware_bridge.synthetic import synthesize

    folder.mkdir(parents=True, exist_ok=True)
    rows = ["path,labels,fs,split"]
    for i, (rhythm, label) in enumerate([("sinus", "SR"), ("afib", "AFIB")] * 3):
        np.save(
            folder / f"r{i}.npy",
            synthesize(rhythm=rhythm, duration_s=10.0, fs=250, seed=i).astype(np.float32),
        )
        rows.append(f"r{i}.npy,{label},250,{['train', 'val', 'test'][i // 2]}")
    (folder / "m.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder / "m.csv"


@pytest.mark.slow
def test_quiet_draws_no_progress_bars(tmp_path, capfd):
    pytest.importorskip("torch")
    from training.cli import train_main

    manifest = _manifest(tmp_path / "data")

    def run(out: str, *extra: str) -> str:
        args = ["--data", f"manifest={manifest}", "--out", str(tmp_path / out), "--encoder", "resnet1d10-tiny",
                "--embed-dim", "16", "--epochs", "1", "--batch-size", "2", "--text-encoder", "hashing",
                "--train-folds", "1", "--val-folds", "9", "--test-folds", "10", "--cache", str(tmp_path / out / "c"),
                *extra]  # fmt: skip
        capfd.readouterr()
        assert train_main(args) == 0
        return capfd.readouterr().err

    loud = run("loud")
    assert "prepare manifest" in loud and "rec/s" in loud  # the bars this test would catch
    quiet = run("quiet", "--quiet")
    assert "prepare manifest" not in quiet and "it/s" not in quiet and "rec/s" not in quiet
    assert "step/s" not in quiet and "\r" not in quiet
    assert (tmp_path / "quiet" / "duplicates.json").is_file()  # the copies report is in the run folder
