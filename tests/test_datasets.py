"""Dataset readers and the prepare cache: real data through the shared_data fixture, bad input by hand."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from edge.catalogue import load_catalogue
from edge.signal import SignalConfig
from training.datasets import (
    CinC2021Reader,
    DatasetError,
    ManifestReader,
    ProcessedPTBXLReader,
    PTBXLReader,
    SkipLog,
    parse_source,
)
from training.datasets.cinc import read_dx_codes, record_key
from training.datasets.ptbxl import parse_scp_codes
from training.prepare import PreparedDataset, Source, prepare

pytestmark = []


def test_parse_scp_codes_is_safe():
    assert parse_scp_codes("{'NORM': 100.0, 'SR': 0.0}") == {"NORM": 100.0, "SR": 0.0}
    assert parse_scp_codes("") == {}
    with pytest.raises((ValueError, SyntaxError)):
        parse_scp_codes("__import__('os').system('true')")


def test_parse_source():
    kind, path = parse_source("ptbxl=/data/ptbxl")
    assert kind == "ptbxl" and str(path) == "/data/ptbxl"
    with pytest.raises(DatasetError, match="KIND=PATH"):
        parse_source("/data/ptbxl")
    with pytest.raises(DatasetError, match="unknown dataset kind"):
        parse_source("mitbih=/x")


def test_challenge_ptbxl_records_share_keys_with_ptbxl():
    assert record_key("HR06000") == "ptbxl:6000"
    assert record_key("E07500") == "cinc2021:E07500"


def _write_npy_manifest(tmp_path, labels="洞調律;完全右脚ブロック", fs=250, n=2500, channels=12):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(channels, n)).astype(np.float32))
    (tmp_path / "m.csv").write_text(f"path,labels,fs,patient_id,split\na.npy,{labels},{fs},p1,test\n", encoding="utf-8")
    return tmp_path / "m.csv"


def test_manifest_resolves_japanese_terms_and_ids(tmp_path):
    cat = load_catalogue()
    csv_path = _write_npy_manifest(tmp_path, labels=f"{cat['SR'].ja}|CRBBB")
    (rec,) = list(ManifestReader(csv_path))
    assert set(rec.labels) == {"SR", "CRBBB"}
    assert rec.fold == 10 and rec.fs == 250 and rec.signal.shape == (12, 2500)


def test_manifest_unknown_label_raises_or_is_counted(tmp_path):
    csv_path = _write_npy_manifest(tmp_path, labels="存在しない所見")
    with pytest.raises(DatasetError, match="a.npy"):
        list(ManifestReader(csv_path))
    skips = SkipLog()
    assert list(ManifestReader(csv_path, on_error="skip", skips=skips)) == []
    assert skips.counts() == {"unknown_code": 1}


def test_manifest_missing_file_nan_and_columns(tmp_path):
    (tmp_path / "m.csv").write_text("path,labels,fs\nnope.npy,SR,500\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="missing_file"):
        list(ManifestReader(tmp_path / "m.csv"))
    x = np.zeros((12, 5000), dtype=np.float32)
    x[0, 3] = np.nan
    np.save(tmp_path / "n.npy", x)
    (tmp_path / "n.csv").write_text("path,labels,fs\nn.npy,SR,500\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="nan"):
        list(ManifestReader(tmp_path / "n.csv"))
    (tmp_path / "bad.csv").write_text("file,labels\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="missing column"):
        ManifestReader(tmp_path / "bad.csv")


def test_prepare_from_manifest_with_eight_channels(tmp_path):
    csv_path = _write_npy_manifest(tmp_path, labels="IMI", channels=8, n=2500 * 3)
    ds = prepare([Source("manifest", csv_path)], tmp_path / "cache", progress=False)
    assert ds.windows.shape == (3, 12, 1000) and ds.windows.dtype == np.float16
    cat = load_catalogue()
    hot = {cat.ids[i] for i in np.flatnonzero(ds.labels[0])}
    assert "IMI" in hot and cat.ancestors("IMI") <= hot  # ancestors are expanded
    again = prepare([Source("manifest", csv_path)], tmp_path / "cache", progress=False)
    assert again.meta["fingerprint"] == ds.meta["fingerprint"]


def test_prepare_counts_bad_signals_as_skips(tmp_path):
    np.save(tmp_path / "short.npy", np.zeros((12, 100), dtype=np.float32))
    (tmp_path / "m.csv").write_text("path,labels,fs\nshort.npy,SR,500\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="shorter than one window"):
        prepare([Source("manifest", tmp_path / "m.csv")], tmp_path / "c", progress=False)
    _write_npy_manifest(tmp_path)
    text = (tmp_path / "m.csv").read_text(encoding="utf-8").splitlines()
    (tmp_path / "both.csv").write_text("\n".join([text[0], "short.npy,SR,500,p2,train", text[1]]), encoding="utf-8")
    ds = prepare([Source("manifest", tmp_path / "both.csv")], tmp_path / "c2", on_error="skip", progress=False)
    assert len(ds) == 1 and ds.meta["skip_counts"] == {"bad_signal": 1}


# --- real data -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ptbxl_reader_loads_every_record(shared_data):
    reader = PTBXLReader(shared_data / "ptbxl", rate=100)
    records = list(reader)
    assert len(records) == len(reader) == 500
    assert all(r.signal.shape == (12, 1000) and r.fs == 100 for r in records)
    folds = Counter(r.fold for r in records)
    assert set(folds) == set(range(1, 11))
    counts = Counter(lb for r in records for lb in r.labels)
    # Label counts straight from the SCP codes of ptbxl_database.csv (ecg_id 1-500).
    import ast
    import csv

    cat = load_catalogue()
    expected = Counter()
    with (shared_data / "ptbxl" / "ptbxl_database.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            expected.update({cat.from_scp(code).id for code in ast.literal_eval(row["scp_codes"])})
    assert counts == expected
    assert counts["NORM"] == 297 and counts["SR"] == 407
    test = PTBXLReader(shared_data / "ptbxl", rate=500, folds={10})
    assert len(test) == sum(1 for r in records if r.fold == 10)


@pytest.mark.slow
def test_cinc_reader_loads_every_record(shared_data):
    records = list(CinC2021Reader(shared_data / "cinc2021"))
    assert len(records) == 30
    assert all(r.signal.shape == (12, 5000) and r.fs == 500 for r in records)
    cat = load_catalogue()
    expected = Counter()
    for h in sorted((shared_data / "cinc2021").glob("*.hea")):
        for code in dict.fromkeys(read_dx_codes(h)):
            expected[cat.from_snomed(code).id] += 1
    counts = Counter(lb for r in records for lb in r.labels)
    assert counts == expected
    assert counts[cat.from_snomed("426783006").id] == 15  # sinus rhythm, the most frequent Dx here


@pytest.mark.slow
def test_processed_reader_loads_labelled_part(shared_data):
    reader = ProcessedPTBXLReader(shared_data / "ptbxl_processed")
    records = list(reader)
    assert len(records) == 499
    assert all(r.preprocessed and r.signal.shape == (12, 1000) for r in records)
    counts = Counter(lb for r in records for lb in r.labels)
    assert counts["NORM"] == 139 and sum(counts.values()) > 499
    assert len(ProcessedPTBXLReader(shared_data / "ptbxl_processed", include_unlabelled=True)) == 1819


@pytest.mark.slow
def test_processed_reader_refuses_other_contracts(shared_data, tmp_path):
    with pytest.raises(DatasetError, match="cannot be used"):
        prepare([Source("ptbxl_processed", shared_data / "ptbxl_processed")], tmp_path, SignalConfig(fs=250.0), progress=False)


@pytest.mark.slow
def test_prepare_all_real_sources(shared_data, tmp_path):
    sources = [
        Source("ptbxl", shared_data / "ptbxl"),
        Source("ptbxl_processed", shared_data / "ptbxl_processed"),
        Source("cinc2021", shared_data / "cinc2021"),
    ]
    ds = prepare(sources, tmp_path / "cache", progress=False)
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text(encoding="utf-8"))
    # 34 processed records are also in ptbxl/ (ecg_id <= 500); one is labelled, so it is deduplicated.
    assert meta["records_per_source"]["ptbxl"] == 500
    assert meta["records_per_source"]["cinc2021"] == 30
    assert meta["records_per_source"]["ptbxl_processed"] + meta["duplicates_skipped"] == 499
    assert len(ds) == sum(meta["records_per_source"].values())
    reloaded = PreparedDataset(tmp_path / "cache")
    assert np.isfinite(np.asarray(reloaded.windows[:50], dtype=np.float32)).all()
    assert len(reloaded.indices(folds=[10])) > 40 and not meta["skipped"]
