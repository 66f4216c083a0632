"""Leave-one-source-out: a hospital excluded from training never reaches it, and is judged afterwards."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RHYTHMS = {"sinus": "SR", "afib": "AFIB", "wide_qrs": "CLBBB"}


@pytest.fixture(scope="module")
def two_hospitals(tmp_path_factory):
    """Synthetic ECGs from hospital A (train/val/test) and hospital B (to be left out)."""
    from firmware_bridge.synthetic import synthesize

    root = tmp_path_factory.mktemp("loso")
    rows = ["path,labels,fs,patient_id,split"]
    i = 0
    for hospital, splits in (("a", ["train"] * 4 + ["val"] * 2 + ["test"]), ("b", ["train", "val", "test"])):
        (root / hospital).mkdir()
        for rhythm, label in RHYTHMS.items():
            for split in splits:
                x = synthesize(rhythm=rhythm, duration_s=20.0, fs=250, seed=500 + i)
                np.save(root / hospital / f"r{i}.npy", x.astype(np.float32))
                rows.append(f"{hospital}/r{i}.npy,{label},250,{hospital}{i},{split}")
                i += 1
    (root / "m.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_left_out_hospital_is_never_trained_on_and_is_judged(two_hospitals, tmp_path):
    from bench.bench_loso import evaluate_left_out
    from training.prepare import PreparedDataset
    from training.text_side import TextConfig
    from training.train import TrainConfig, train

    prefix = f"manifest:{(two_hospitals / 'b').resolve()}/"
    cfg = TrainConfig(sources=[f"manifest={two_hospitals / 'm.csv'}"], out_dir=str(tmp_path / "run"),
                      cache_dir=str(tmp_path / "cache"), encoder="resnet1d10-tiny", embed_dim=32,
                      text=TextConfig(encoder="hashing"), epochs=2, batch_size=8, train_folds=(1,), val_folds=(9,),
                      test_folds=(10,), exclude_keys=(prefix,))
    train(cfg, progress=False)
    ds = PreparedDataset(tmp_path / "cache")
    in_b = np.array([k.startswith(prefix) for k in ds.keys])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    train_a = int(((ds.folds == 1) & ~in_b).sum())
    assert metrics["n_train"] == train_a < int((ds.folds == 1).sum())
    assert metrics["n_val"] == int(((ds.folds == 9) & ~in_b).sum())
    assert json.loads((tmp_path / "run" / "config.json").read_text())["exclude_keys"] == [prefix]

    r = evaluate_left_out(ds, tmp_path / "run", (prefix,))
    assert r["n_records"] == 9 and r["n_windows"] == int(in_b.sum())  # 3 rhythms x 3 records, 2 windows each
    assert r["rhythm_top1"]["n"] == 6  # SR and AFIB are rhythm labels, CLBBB is not
    assert r["any_top5"]["n"] == 9 and 0 <= r["any_top5"]["k"] <= 9
    for key in ("rhythm_top1", "any_top5"):
        lo, hi = r[key]["ci"]
        assert 0 <= lo <= r[key]["k"] / r[key]["n"] <= hi + 1e-9 <= 1 + 2e-9  # Wilson at 6/6: 1 - 1e-16
        assert r["without_measurements"][key]["n"] == r[key]["n"]  # the same model without measurements
    assert r["contradictory_pairs"] == 0
    lo, hi = r["findings_per_ecg"]["ci"]
    assert lo <= r["findings_per_ecg"]["mean"] <= hi
    assert r["truth_per_ecg"]["mean"] == 1.0  # one most-specific label per record (CLBBB implies its parents)
    assert len(r["misses"]) == 9 - r["any_top5"]["k"]


def test_bootstrap_and_wilson_intervals():
    from bench.bench_loso import bootstrap, wilson

    lo, hi = wilson(17, 33)
    assert lo < 17 / 33 < hi and hi - lo > 0.3  # 33 records: a wide interval
    values = np.array([1.0, 2.0, 3.0, 4.0] * 10)
    lo, hi = bootstrap(values)
    assert lo < 2.5 < hi and bootstrap(values) == (lo, hi)  # seeded


def test_report_states_n_intervals_and_the_seed_spread():
    from types import SimpleNamespace

    from bench.bench_loso import report

    def result(seed, k5):
        ci = {"ci": (0.1, 0.9)}
        return {"seed": seed, "epochs": 9, "train_minutes": 1.0, "n_records": 33, "n_windows": 33,
                "rhythm_top1": {"k": 8, "n": 25, "ci": (0.17, 0.52)}, "any_top5": {"k": k5, "n": 33, "ci": (0.5, 0.8)},
                "contradictory_pairs": 0, "contradictory_pairs_before_rules": 30,
                "findings_per_ecg": {"mean": 3.5, **ci}, "truth_per_ecg": {"mean": 1.67, **ci},
                "ratio": {"value": 2.1, **ci}, "without_measurements": None, "criteria_weight": 0.01,
                "misses": [{"key": "challenge2020:E00004", "truth": ["SBRAD"], "top5": ["SR"]}]}

    args = SimpleNamespace(data="D", epochs=10, max_minutes=12.0, reuse=False, encoder="e", text_encoder="t",
                           lead_dropout=0.3, lead_dropout_patterns=0.5)
    text = report({"Georgia (USA)": [result(0, 21), result(1, 25)]}, args, 3.0)
    assert "| Georgia (USA) | 0 | 33 (33) | 0.320 (8/25; 0.17–0.52) | 0.636 (21/33; 0.50–0.80) |" in text
    assert "**mean ± SD of 2**" in text and "0.697 ± 0.086" in text  # (21/33 + 25/33) / 2, SD over seeds
    assert "--lead-dropout 0.3 --lead-dropout-patterns 0.5" in text  # the recipe trained is stated
    assert "--seeds 0,1" in text and "`challenge2020:E00004`: SBRAD → SR" in text
