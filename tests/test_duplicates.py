"""Copies of one ECG across the sources of a run, found by their samples (training.datasets.content):
counted, written to duplicates.json, merged within a split, and refused across splits (no test-data leak)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge.dsp.signal import LEADS
from training.datasets import DatasetError, ManifestReader
from training.datasets.base import Record
from training.datasets.content import content_hash, split_of
from training.prepare import DUPLICATES_FILE, Source, prepare

RECORD_FOLD10 = "records500/00000/00009_hr"  # PTB-XL ecg_id 9, strat_fold 10 (checked below)


def _record(x: np.ndarray, fs: float = 500.0, leads=LEADS, key: str = "k") -> Record:
    return Record(key, "t", x, fs, tuple(leads), ("SR",))


def test_content_hash_sees_copies_and_only_copies():
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(0, 0.3, (12, 5000)) * 1000) / 1000  # 1 µV steps like PTB-XL
    h = content_hash(_record(x))
    assert h == content_hash(_record(x.astype(np.float32), key="other"))  # float64 vs float32 decode
    eight = [LEADS.index(n) for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
    assert h == content_hash(_record(x[eight], leads=[LEADS[i] for i in eight]))  # an 8-channel copy
    y = x.copy()
    y[3, 100] += 0.002
    assert content_hash(_record(y)) == h  # aVR is derived: not hashed
    y[6, 100] += 0.002
    assert content_hash(_record(y)) != h  # one V1 sample changed by 2 µV
    assert content_hash(_record(x, fs=250.0)) != h
    assert content_hash(_record(x[:, :-1])) != h
    assert [split_of(f) for f in (1, 8, 9, 10, None)] == ["train", "train", "val", "test", "unassigned"]


def _copy_manifest(shared_data, tmp_path, split: str | None, record: str = RECORD_FOLD10):
    """A hospital manifest with a copy (other folder, other name) of a PTB-XL record."""
    src = shared_data / "ptbxl" / record
    folder = tmp_path / "hospital"
    folder.mkdir()
    for suffix in (".hea", ".dat"):
        shutil.copy(f"{src}{suffix}", folder / f"{src.name}{suffix}")
    manifest = tmp_path / "manifest.csv"
    columns = "path,labels" + (",split" if split else "")
    row = f"hospital/{src.name},洞調律" + (f",{split}" if split else "")
    manifest.write_text(f"{columns}\n{row}\n", encoding="utf-8")
    return manifest


@pytest.mark.slow
def test_copy_of_a_fold10_record_in_a_train_manifest_is_refused(shared_data, tmp_path):
    import csv

    with (shared_data / "ptbxl" / "ptbxl_database.csv").open() as f:
        folds = {r["filename_hr"]: r["strat_fold"] for r in csv.DictReader(f)}
    assert folds[RECORD_FOLD10] == "10"
    manifest = _copy_manifest(shared_data, tmp_path, "train")
    sources = [Source("ptbxl", shared_data / "ptbxl", (("rate", 500),)), Source("manifest", manifest)]
    with pytest.raises(DatasetError) as info:
        prepare(sources, tmp_path / "cache", progress=False)
    message = str(info.value)
    assert "two splits" in message and "00009_hr" in message and "hospital" in message  # both paths
    assert "test, fold 10" in message and "train, fold 1" in message
    assert "\n" not in message


@pytest.mark.slow
def test_copy_without_a_split_is_merged_and_listed(shared_data, tmp_path):
    manifest = _copy_manifest(shared_data, tmp_path, None)
    (rec,) = list(ManifestReader(manifest))
    assert rec.fold_derived  # no split or fold column: the fold was hashed from the path
    sources = [Source("ptbxl", shared_data / "ptbxl", (("rate", 500),)), Source("manifest", manifest)]
    ds = prepare(sources, tmp_path / "cache", progress=False)
    report = json.loads((tmp_path / "cache" / DUPLICATES_FILE).read_text(encoding="utf-8"))
    assert report["duplicates_by_content"] == ds.meta["duplicates_by_content"] >= 1
    (pair,) = [p for p in report["pairs"] if p["copy"]["source"] == "manifest"]
    assert pair["how"] == "content" and pair["dropped"] == "copy"
    assert pair["kept"]["key"] == "ptbxl:9" and pair["kept"]["split"] == "test"
    assert pair["copy"]["path"].endswith("hospital/00009_hr")
    keys = [w["key"] for w in ds.meta["windows"]]
    assert not any(k.startswith("manifest:") for k in keys)  # kept once, as the test record
    rows = [i for i, w in enumerate(ds.meta["windows"]) if w["key"] == "ptbxl:9"]
    assert rows and all(ds.meta["windows"][i]["fold"] == 10 for i in rows)
    assert "manifest" in ds.meta["windows"][rows[0]].get("merged_from", [])


def test_copies_in_two_manifests_same_split_are_counted(tmp_path):
    x = np.round(np.random.default_rng(1).normal(0, 0.3, (12, 5000)), 3).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x)  # the same ECG under another name
    np.save(tmp_path / "c.npy", x[:, ::-1].copy())  # another ECG
    for name, files in (("m1.csv", ["a"]), ("m2.csv", ["b", "c"])):
        rows = "".join(f"{f}.npy,洞調律,500,train\n" for f in files)
        (tmp_path / name).write_text("path,labels,fs,split\n" + rows, encoding="utf-8")
    sources = [Source("manifest", tmp_path / "m1.csv"), Source("manifest", tmp_path / "m2.csv")]
    ds = prepare(sources, tmp_path / "cache", progress=False)
    assert ds.meta["duplicates_by_content"] == 1 and ds.meta["duplicates_skipped"] == 1
    assert len({w["key"] for w in ds.meta["windows"]}) == 2


def test_copies_across_splits_in_manifests_are_refused(tmp_path):
    x = np.round(np.random.default_rng(2).normal(0, 0.3, (12, 5000)), 3).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x)
    (tmp_path / "m.csv").write_text(
        "path,labels,fs,split\na.npy,SR,500,test\nb.npy,SR,500,train\n", encoding="utf-8"
    )
    with pytest.raises(DatasetError, match=r"a\.npy \(test, fold 10\) and .*b\.npy \(train, fold 1\)"):
        prepare([Source("manifest", tmp_path / "m.csv")], tmp_path / "cache", progress=False)


@pytest.mark.slow
def test_ptbxl_own_identical_records_are_found(shared_data, tmp_path):
    """PTB-XL itself holds records with identical samples (e.g. ecg_id 145 and 463, two patient ids)."""
    ds = prepare([Source("ptbxl", shared_data / "ptbxl", (("rate", 500),))], tmp_path / "c", progress=False)
    report = json.loads((tmp_path / "c" / DUPLICATES_FILE).read_text(encoding="utf-8"))
    pairs = {(p["kept"]["key"], p["copy"]["key"]) for p in report["pairs"]}
    assert ("ptbxl:145", "ptbxl:463") in pairs and ("ptbxl:137", "ptbxl:138") in pairs
    assert report["duplicates_by_content"] == 5 and report["leaks_dropped"] == 0  # the 500 records here
    assert "ptbxl:463" not in {w["key"] for w in ds.meta["windows"]}


def test_one_sources_own_copies_across_splits_keep_the_held_out_one():
    from training.datasets.content import ContentIndex

    x = np.round(np.random.default_rng(3).normal(0, 0.3, (12, 5000)), 3)
    train = Record("ptbxl:1", "ptbxl", x, 500.0, LEADS, ("SR",), fold=3, meta={"path": "a"})
    test = Record("ptbxl:2", "ptbxl", x, 500.0, LEADS, ("SR",), fold=10, meta={"path": "b"})
    index = ContentIndex()
    digest = content_hash(train)
    assert index.check(train, digest).merge_into is None
    index.add(train, digest)
    verdict = index.check(test, digest)
    assert verdict.drop_key == "ptbxl:1" and not verdict.skip  # the training copy goes, the test copy stays
    index.add(test, digest)
    again = Record("ptbxl:3", "ptbxl", x, 500.0, LEADS, ("SR",), fold=5, meta={"path": "c"})
    assert index.check(again, digest).skip  # a later training copy of the test record: not used
    summary = index.summary()
    assert summary["leaks_dropped"] == 2 and [p["dropped"] for p in summary["pairs"]] == ["kept", "copy"]
    other = Record("manifest:x", "manifest", x, 500.0, LEADS, ("SR",), fold=1, meta={"path": "mine/x"})
    with pytest.raises(DatasetError, match="two splits"):
        index.check(other, digest)  # the user's copy: an error naming both paths
