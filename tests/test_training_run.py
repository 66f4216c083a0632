"""End-to-end training runs on a small synthetic dataset (a manifest of generated ECGs), on CPU.

Covers: a 2-epoch contrastive run writes a complete run folder; the checkpoint reloads with
``weights_only=True`` and rebuilds the same model; the supervised baseline and the byte-level text
encoder train too; ``ecg-eval`` reads the checkpoint; and a 2-process DistributedDataParallel (gloo)
run works under torchrun.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from training.checkpoint import load_checkpoint
from training.cli import eval_main, train_main
from training.evaluate import score_windows

RHYTHM_LABELS = {"sinus": "SR", "afib": "AFIB", "wide_qrs": "CLBBB", "st_elevation": "STE"}


def _synthetic_manifest(folder, n_per_class: int = 6):
    from firmware_bridge.synthetic import synthesize

    folder.mkdir(parents=True, exist_ok=True)
    rows = ["path,labels,fs,patient_id,split"]
    splits = ["train"] * (n_per_class - 2) + ["val", "test"]
    i = 0
    for rhythm, label in RHYTHM_LABELS.items():
        for k in range(n_per_class):
            x = synthesize(rhythm=rhythm, duration_s=10.0, fs=250, seed=i)
            np.save(folder / f"r{i}.npy", x.astype(np.float32))
            rows.append(f"r{i}.npy,{label},250,p{i},{splits[k]}")
            i += 1
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder / "manifest.csv"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return _synthetic_manifest(tmp_path_factory.mktemp("synth"))


def _args(manifest, out, *extra):
    return ["--data", f"manifest={manifest}", "--out", str(out), "--encoder", "resnet1d10-tiny", "--embed-dim", "32",
            "--epochs", "2", "--batch-size", "8", "--text-encoder", "hashing", "--quiet", "--train-folds", "1",
            "--val-folds", "9", "--test-folds", "10", "--cache", str(out.parent / "cache"), *extra]


def test_contrastive_run_end_to_end(manifest, tmp_path):
    out = tmp_path / "run"
    assert train_main(_args(manifest, out, "--holdout-labels", "STE")) == 0
    for name in ("checkpoint.pt", "metrics.json", "per_label.csv", "history.json", "config.json", "loss_curves.png", "per_label_top5.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert 0 <= metrics["test"]["top1"] <= 1 and 0 <= metrics["test"]["top5"] <= 1
    assert metrics["test"]["new"]["labels"] == ["STE"]
    assert metrics["epochs_run"] == 2
    # Self-describing checkpoint: loads with weights_only and rebuilds the same model.
    raw = torch.load(out / "checkpoint.pt", weights_only=True)
    assert raw["holdout_label_ids"] == ["STE"] and "STE" not in raw["train_label_ids"]
    model, ckpt = load_checkpoint(out / "checkpoint.pt")
    x = np.random.default_rng(0).normal(size=(3, 12, 1000)).astype(np.float32)
    s1 = score_windows(model, ckpt, x)
    model2, ckpt2 = load_checkpoint(out / "checkpoint.pt")
    np.testing.assert_allclose(s1, score_windows(model2, ckpt2, x), atol=1e-6)
    assert s1.shape == (3, len(ckpt["label_ids"]))
    # ecg-eval on the same data.
    assert eval_main([str(out / "checkpoint.pt"), "--data", f"manifest={manifest}", "--folds", "10", "--out", str(tmp_path / "ev")]) == 0
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text(encoding="utf-8"))
    assert ev["top5"] == pytest.approx(metrics["test"]["top5"])


@pytest.mark.parametrize("extra", [["--model", "supervised"], ["--text-encoder", "byte"], ["--loss", "clip"], ["--loss", "sigmoid"],
                                   ["--positive-order", "rarest-first", "--priority-ratio", "1.5", "--temperature", "0.2"]])
def test_other_variants_train(manifest, tmp_path, extra):
    out = tmp_path / "run"
    args = _args(manifest, out)
    args[args.index("--text-encoder") + 1] = extra[1] if extra[0] == "--text-encoder" else "hashing"
    if extra[0] != "--text-encoder":
        args += extra
    assert train_main(args) == 0
    _, ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["kind"] == ("supervised" if "supervised" in extra else "contrastive")
    if "--positive-order" in extra:
        order = ckpt["positive_order"]
        assert order["order"] == "rarest-first" and order["ratio"] == 1.5
        assert order["train_frequency"]["SR"] > 0 and ckpt["init_temperature"] == 0.2


def test_bad_arguments_fail_cleanly(manifest, tmp_path, capsys):
    assert train_main(_args(manifest, tmp_path / "r", "--holdout-labels", "NOT_A_LABEL")) == 2
    assert "NOT_A_LABEL" in capsys.readouterr().err
    assert eval_main([str(tmp_path / "missing.pt"), "--data", f"manifest={manifest}"]) == 2
    assert train_main(_args(manifest, tmp_path / "r2", "--loss", "clip", "--positive-order", "rarest-first")) == 2
    assert "multi_positive" in capsys.readouterr().err
    assert train_main(_args(manifest, tmp_path / "r3", "--temperature", "0")) == 2
    assert "temperature" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_processes_gloo(manifest, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "training.cli", *_args(manifest, out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["history"][-1]["epoch"] == 2
