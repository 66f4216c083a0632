"""Dataset readers and the prepare cache: real data through the shared_data fixture, bad input by hand."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from edge.dsp.signal import SignalConfig
from edge.interpret.catalogue import load_catalogue
from training.datasets import (
    Challenge2020Reader,
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
    assert counts == expected + Counter({"LAD": 14, "RAD": 9})  # + heart_axis (ALAD; RAD/ARAD)
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
    reader = ProcessedPTBXLReader(shared_data / "ptbxl_processed", challenge_labels=False)
    records = list(reader)
    assert len(records) == 499
    assert all(r.preprocessed and r.signal.shape == (12, 1000) for r in records)
    counts = Counter(lb for r in records for lb in r.labels)
    assert counts["NORM"] == 139 and sum(counts.values()) > 499
    assert len(ProcessedPTBXLReader(shared_data / "ptbxl_processed", include_unlabelled=True)) == 1819


@pytest.mark.slow
def test_processed_reader_adds_the_challenge_labels_as_partial_training_only_sets(shared_data):
    import csv

    records = list(ProcessedPTBXLReader(shared_data / "ptbxl_processed"))
    # 1,308 records have Challenge classes; one of them only a dropped axis class.
    challenge_only = [r for r in records if not r.meta["scp_codes"]]
    assert len(records) == 499 + 1307 and len(challenge_only) == 1307  # one had only the left-axis class
    # Training folds only, derived (no strat_fold, no patient).
    assert {r.fold for r in challenge_only} <= set(range(1, 9)) and all(r.fold_derived for r in challenge_only)
    assert all(r.patient is None for r in challenge_only)
    # Only the Challenge's 27 scored classes are known: NORM, infarction, ST-T localisations are unknown.
    scored = {load_catalogue().from_snomed(c).id for c in
              ["426783006", "164889003", "713427006", "59118001", "270492004", "251146004"]}
    for r in challenge_only:
        assert scored <= r.known and "NORM" not in r.known and "IMI" not in r.known and "ISCAL" not in r.known
        # The Challenge's axis classes for PTB-XL do not follow 左軸偏位 (see processed.UNRELIABLE_AXIS_CODES).
        assert not {"LAD", "RAD", "AXIS"} & (set(r.labels) | r.known)
        assert set(r.labels) <= r.known
    # The labels are exactly the file's codes, mapped.
    cat = load_catalogue()
    with (shared_data / "ptbxl_processed" / "challenge2020_labels.csv").open(encoding="utf-8") as f:
        codes = {int(row["ecg_id"]): row["snomed_codes"].split(";") for row in csv.DictReader(f)}
    for r in challenge_only[:200]:
        ecg_id = int(r.key.split(":")[1])
        assert set(r.labels) == {cat.from_snomed(c).id for c in codes[ecg_id] if c not in ("39732003", "47665007")}
    # Records with SCP codes keep them and gain the Challenge's statements (e.g. the axis).
    both = [r for r in records if r.meta["scp_codes"] and r.meta["snomed"]]
    assert len(both) == 497 and all("NORM" in r.known and "AFIB" in r.known for r in both)


@pytest.mark.slow
def test_ptbxl_heart_axis_gives_axis_deviation(shared_data):
    import csv

    with (shared_data / "ptbxl" / "ptbxl_database.csv").open(encoding="utf-8") as f:
        axis = {f"ptbxl:{int(float(r['ecg_id']))}": r["heart_axis"] for r in csv.DictReader(f)}
    records = {r.key: r for r in PTBXLReader(shared_data / "ptbxl")}
    # training.datasets.ptbxl.HEART_AXIS: PTB-XL's "LAD" is a leftward but normal axis (0..-30 deg, measured),
    # only "ALAD" states 左軸偏位; "MID", "LAD", "AXR" state neither deviation; empty states nothing.
    for key, value in axis.items():
        r = records[key]
        if value == "ALAD":
            assert "LAD" in r.labels and "RAD" not in r.labels and {"LAD", "RAD", "AXIS"} <= r.known
        elif value in ("RAD", "ARAD"):
            assert "RAD" in r.labels and "LAD" not in r.labels and {"LAD", "RAD"} <= r.known
        elif value in ("MID", "LAD", "AXR"):
            assert not {"LAD", "RAD"} & set(r.labels) and {"LAD", "RAD", "AXIS"} <= r.known
        else:  # empty (or a value that states nothing): unknown, not absent
            assert not {"LAD", "RAD", "AXIS"} & (set(r.labels) | r.known)
    counts = Counter(lb for r in records.values() for lb in r.labels)
    assert counts["LAD"] == 14 and counts["RAD"] == 8 + 1


@pytest.mark.slow
def test_challenge2020_reader_full_and_scored_only_records(shared_data):
    records = {r.key: r for r in Challenge2020Reader(shared_data / "challenge2020")}
    assert len(records) == 43
    assert all(r.signal.shape[0] == 12 and r.fs == 500 and r.signal.shape[1] >= 5000 for r in records.values())
    # Q1847 has an unscored code: its diagnoses are full; 251259000 has no catalogue label and is recorded.
    q = records["challenge2020:Q1847"]
    assert q.meta["unmapped"] == ["251259000"] and set(q.labels) == {"SARRH", "STTC"} and "MI" in q.known
    # A0001 (CPSC, only a scored class): MI and NORM are unknown, RBBB is a positive.
    a = records["challenge2020:A0001"]
    assert a.labels == ("RBBB",) and "MI" not in a.known and "LAD" in a.known and "AFIB" in a.known
    partial = [r for r in records.values() if "MI" not in r.known]
    assert len(partial) == 21  # every record whose codes are all scored classes (the data README says 17)
    assert parse_source("challenge2020=/x")[0] == "challenge2020"


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
    # 34 processed records are also in ptbxl/ (ecg_id <= 500); the labelled ones are merged into it. PTB-XL
    # itself holds records with identical samples (at 100 Hz: ecg_id 456/457 and 459/460): kept once each.
    copies = json.loads((tmp_path / "cache" / "duplicates.json").read_text(encoding="utf-8"))
    own = {(p["kept"]["key"], p["copy"]["key"]) for p in copies["pairs"] if p["how"] == "content"
           and p["kept"]["source"] == p["copy"]["source"] == "ptbxl"}  # fmt: skip
    assert own == {("ptbxl:456", "ptbxl:457"), ("ptbxl:459", "ptbxl:460")}
    assert meta["records_per_source"]["ptbxl"] == 500 - len(own)
    # Every record is either cached or merged into the same ECG from an earlier source (one Challenge 2021
    # HR record is a PTB-XL ECG that the processed set labels too).
    assert sum(meta["records_per_source"].values()) + meta["duplicates_skipped"] == 500 + 499 + 1307 + 30
    assert len(ds) == sum(meta["records_per_source"].values())
    # Known-label mask: positives are known; challenge-only records have NORM unknown; merged records
    # keep ptbxl/'s official fold and gain the Challenge's labels.
    assert ds.known.shape == ds.labels.shape and (ds.known >= ds.labels).all()
    norm = ds.label_ids.index("NORM")
    assert (ds.known[:, norm] == 0).sum() >= 1307
    merged = [i for i, w in enumerate(meta["windows"]) if w.get("merged_from")]
    # An ancestor a source cannot state stays unknown (not positive): 伝導障害 above a Challenge-only 右脚ブロック.
    rbbb, cd = ds.label_ids.index("RBBB"), ds.label_ids.index("CD")
    challenge_only = [i for i, w in enumerate(meta["windows"]) if w["source"] == "ptbxl_processed"
                      and w["fold_derived"] and ds.labels[i, rbbb]]
    assert challenge_only and all(ds.labels[i, cd] == 0 == ds.known[i, cd] for i in challenge_only)
    assert meta["implied_positives_left_unknown"] > 0
    full = [i for i, w in enumerate(meta["windows"]) if w["source"] == "ptbxl" and ds.labels[i, rbbb]]
    assert full and all(ds.labels[i, cd] == 1 for i in full)  # PTB-XL states it: the ancestor stays positive
    into_ptbxl = [i for i in merged if meta["windows"][i]["source"] == "ptbxl"
                  and set(meta["windows"][i]["merged_from"]) != {"ptbxl"}]  # not PTB-XL's own copies
    assert into_ptbxl and all(not meta["windows"][i]["fold_derived"] for i in into_ptbxl)
    assert all("ptbxl_processed" in meta["windows"][i]["merged_from"] for i in into_ptbxl)
    reloaded = PreparedDataset(tmp_path / "cache")
    assert np.isfinite(np.asarray(reloaded.windows[:50], dtype=np.float32)).all()
    assert len(reloaded.indices(folds=[10])) > 40 and not meta["skipped"]
