"""A hospital's own labels (``ecg-train --catalogue``) reach the bundle; runs in one folder keep their caches."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from firmware_bridge.synthetic import synthesize  # noqa: E402
from training.cli import eval_main, train_main  # noqa: E402
from training.label_catalogue import load_training_catalogue  # noqa: E402

pytestmark = pytest.mark.slow

OWN_LABEL = {"id": "HOSP_DIQT", "ja": "薬剤性QT延長", "en": "drug-induced QT prolongation",
             "category": "ischemia/ST-T", "parents": ["LNGQT"], "aliases": ["薬剤性QT延長症候群"]}  # fmt: skip
TINY = ["--encoder", "resnet1d10-tiny", "--embed-dim", "32", "--epochs", "1", "--batch-size", "8",
        "--text-encoder", "hashing", "--quiet", "--train-folds", "1", "--val-folds", "9", "--test-folds", "10"]  # fmt: skip


def _manifest(folder, labels: dict[str, str], seed: int):
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["path,labels,fs,patient_id,split"]
    i = 0
    for rhythm, label in labels.items():
        for split in ["train"] * 3 + ["val"] * 2 + ["test"] * 2:
            np.save(folder / f"r{i}.npy", synthesize(rhythm=rhythm, duration_s=10.0, fs=250, seed=seed + i))
            rows.append(f"r{i}.npy,{label},250,p{seed + i},{split}")
            i += 1
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder / "manifest.csv"


def test_catalogue_file_forms(tmp_path):
    extends = tmp_path / "ours.json"
    extends.write_text(
        json.dumps({"extends": "default", "labels": [OWN_LABEL]}, ensure_ascii=False), encoding="utf-8"
    )
    cat = load_training_catalogue(extends)
    assert (
        len(cat) == 99 and cat.ids[-1] == "HOSP_DIQT" and cat.resolve("薬剤性QT延長症候群").id == "HOSP_DIQT"
    )
    assert cat.expand(["HOSP_DIQT"]) == ["HOSP_DIQT", "LNGQT", "STTC"]
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"extends": "default", "labels": [{**OWN_LABEL, "id": "SR"}]}), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="bad.json"):
        load_training_catalogue(bad)


def test_own_label_trains_into_the_bundle_and_runs_keep_their_caches(tmp_path, monkeypatch, capsys):
    from export.cli import main as export_main

    monkeypatch.setenv(
        "ECG_CLIP_CACHE", str(tmp_path / "user-cache")
    )  # eval/export fallbacks would land here
    catalogue = tmp_path / "hospital_labels.json"
    catalogue.write_text(json.dumps({"extends": "default", "labels": [OWN_LABEL]}, ensure_ascii=False),
                         encoding="utf-8")  # fmt: skip
    own = _manifest(tmp_path / "data_own", {"sinus": "SR", "afib": "AFIB", "wide_qrs": "薬剤性QT延長"}, 10)
    other = _manifest(tmp_path / "data_other", {"sinus": "SR", "afib": "AFIB", "wide_qrs": "CLBBB"}, 50)
    runs = tmp_path / "runs"
    assert (
        train_main(
            ["--data", f"manifest={own}", "--out", str(runs / "a"), "--catalogue", str(catalogue), *TINY]
        )
        == 0
    )
    assert train_main(["--data", f"manifest={other}", "--out", str(runs / "b"), *TINY]) == 0
    caches = sorted(p for p in (runs / "cache").iterdir() if (p / "meta.json").is_file())
    assert len(caches) == 2  # one folder per set of inputs: run b did not overwrite run a's windows
    ckpt_a = runs / "a" / "checkpoint.pt"
    import torch

    ckpt = torch.load(ckpt_a, weights_only=True)
    assert ckpt["label_ids"][-1] == "HOSP_DIQT" and ckpt["catalogue"][-1]["ja"] == "薬剤性QT延長"
    assert ckpt["data"]["cache"] in {str(c) for c in caches}

    # ecg-eval on the run's own data reads the run's cache (nothing prepared in the per-user cache)
    capsys.readouterr()
    assert eval_main([str(ckpt_a), "--data", f"manifest={own}", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert "HOSP_DIQT" in {row["id"] for row in metrics["per_label"]}
    assert not (tmp_path / "user-cache").exists()

    bundle = tmp_path / "bundle"
    assert export_main([str(ckpt_a), "--out", str(bundle), "--quiet", "--latency-runs", "1",
                        "--accept-below-gate"]) == 0  # fmt: skip
    assert not (tmp_path / "user-cache").exists()  # export reused run a's windows too
    labels = json.loads((bundle / "labels.json").read_text(encoding="utf-8"))
    entries = labels["labels"] if isinstance(labels, dict) else labels
    own_entry = next(e for e in entries if e["id"] == "HOSP_DIQT")
    assert own_entry["ja"] == "薬剤性QT延長"

    from edge.runtime.engine import Classifier

    with Classifier.from_bundle(bundle) as clf:
        x = synthesize(rhythm="wide_qrs", duration_s=10.0, fs=250, seed=99)
        result = clf.classify_window(x, 250)
    assert len(result.top) == 5 and "HOSP_DIQT" in clf.label_ids
