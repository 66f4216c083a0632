"""Japanese ECG report text -> catalogue labels (``ecg-labels-from-reports``), with reports in the style of
Japanese ECG interpretations: numbered findings, full-width letters, abbreviations, negation, uncertainty."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from training.report_labels import ReportLabeler, main

# (report, positive, uncertain, negated) -- written as Japanese cardiologists and cart software write them
CORPUS = [
    ("洞調律。完全右脚ブロック。I度房室ブロックの疑い。ST低下なし。", ["SR", "CRBBB"], ["1AVB"], ["STD"]),
    ("1. 洞性頻脈\n2. ＣＲＢＢＢ＋ＬＡＨ\n3. 左室肥大疑\n4. 異常Q波を認めない", ["STACH", "CRBBB", "LAFB"], ["LVH"], ["QWAVE"]),
    ("心房細動、心室性期外収縮（散発）、時計回転", ["AFIB", "PVC"], [], []),
    ("陳旧性下壁心筋梗塞。V1-3でST上昇(+)。QT延長は否定できない", ["STE", "IMI"], ["LNGQT"], []),
    ("正常範囲。特記すべき異常なし", ["NORM"], [], []),
    ("1°AVB, left atrial enlargement, no LVH", ["1AVB", "LAE"], [], ["LVH"]),
    ("Ⅰ度房室ブロック　不完全右脚ぶろっく", ["1AVB", "IRBBB"], [], []),
    ("1度AVB 左軸偏位 反時計回転", ["1AVB", "LAD"], [], []),
    ("心拍数 72/分 洞調律 右房負荷の可能性 陰性T波(V4-6)", ["SR", "INVT"], ["RAE"], []),
    ("洞徐脈、WPW症候群（B型）、心房細動の既往", ["SBRAD", "WPW", "AFIB"], [], []),
    ("ペースメーカー調律。自己心拍なし", ["PACE"], [], []),
    ("心房粗動(2:1伝導)?", [], ["AFLT"], []),
    ("洞調律　高電位差　ST-T変化(-)", ["SR", "HVOLT"], [], ["STTC"]),
    ("AF with RVR; 完全左脚ブロック", ["AFIB", "CLBBB"], [], []),
    ("右脚ブロック（不完全）。特記すべき所見なし", ["IRBBB", "NORM"], [], []),
    ("不完全RBBB、時計方向回転、QTc 480ms", ["IRBBB"], [], []),
]  # fmt: skip


@pytest.mark.parametrize("text, positive, uncertain, negated", CORPUS)
def test_report_phrases_map_to_labels(text, positive, uncertain, negated):
    found = ReportLabeler().label(text)
    assert (sorted(found.positive), sorted(found.uncertain), sorted(found.negated)) == (
        sorted(positive),
        sorted(uncertain),
        sorted(negated),
    )


def test_latin_abbreviations_match_only_as_words():
    labeler = ReportLabeler()
    assert labeler.label("LAFB").positive == ["LAFB"]  # not AF inside it
    assert labeler.label("STD").positive == ["STD"]
    assert labeler.label("LOWER LIMB LEAD REVERSAL").positive == []  # no "ER" inside words


def test_unmatched_phrases_are_listed():
    found = ReportLabeler().label("心房細動、時計回転、右胸心の疑い")
    assert found.positive == ["AFIB"] and found.unmatched == ["時計回転", "右胸心の疑い"]
    assert ReportLabeler().label("AF with RVR").remainders == ["with rvr"]


def test_mapping_file_extends_and_overrides(tmp_path):
    extra = tmp_path / "ours.csv"
    extra.write_text("phrase,label\n時計回転,-\n右胸心,AXIS\nＫ１,左室肥大\n", encoding="utf-8")
    labeler = ReportLabeler(mappings=[None, extra])
    found = labeler.label("心房細動、時計回転、右胸心、k1疑い")
    assert found.positive == ["AFIB", "AXIS"] and found.uncertain == ["LVH"] and found.unmatched == []
    bad = tmp_path / "bad.csv"
    bad.write_text("phrase,label\n時計回転,存在しない所見\n", encoding="utf-8")
    with pytest.raises(ValueError, match="存在しない所見"):
        ReportLabeler(mappings=[bad])


def test_command_writes_a_manifest_the_reader_accepts(tmp_path, caplog):
    from training.datasets import ManifestReader

    rows = []
    for i, (text, *_rest) in enumerate(CORPUS):
        np.save(tmp_path / f"ecg{i}.npy", np.zeros((12, 1000), np.float32))
        rows.append([f"ecg{i}.npy", "100", f"P{i}", text])
    rows.append(["ecg_none.npy", "100", "P99", "判読不能、電極外れ"])  # no finding at all
    with (tmp_path / "reports.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["record", "fs", "patient_id", "所見"], *rows])
    out = tmp_path / "manifest.csv"
    assert main([str(tmp_path / "reports.csv"), "--out", str(out)]) == 0
    with out.open(encoding="utf-8") as f:
        manifest = list(csv.DictReader(f))
    positives = {r["path"]: r["labels"].split(";") for r in manifest}
    assert (
        len(manifest) == len(CORPUS) - 1
    )  # the uncertain-only report and the no-finding report are left out
    assert positives["ecg0.npy"] == ["SR", "CRBBB"] and manifest[0]["uncertain"] == "1AVB"
    assert (
        manifest[0]["negated"] == "STD" and manifest[0]["patient_id"] == "P0" and manifest[0]["fs"] == "100"
    )
    records = list(ManifestReader(out))
    assert [r.labels for r in records][:2] == [("SR", "CRBBB"), ("STACH", "CRBBB", "LAFB")]
    with (tmp_path / "manifest.unmatched.csv").open(encoding="utf-8") as f:
        listed = {(r["phrase"], r["kind"]): int(r["count"]) for r in csv.DictReader(f)}
    assert listed[("時計回転", "unmatched")] == 1 and listed[("電極外れ", "unmatched")] == 1
    assert ("with rvr", "remainder") in listed
    # --include-uncertain makes 「…の疑い」 positive
    assert main([str(tmp_path / "reports.csv"), "--out", str(out), "--include-uncertain"]) == 0
    with out.open(encoding="utf-8") as f:
        manifest = list(csv.DictReader(f))
    assert manifest[0]["labels"].split(";") == ["SR", "1AVB", "CRBBB"] and len(manifest) == len(CORPUS)


def test_command_errors_are_one_line(tmp_path, capsys):
    reports = tmp_path / "r.csv"
    reports.write_text("id,comment\n1,洞調律\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no path column"):
        main([str(reports), "--out", str(tmp_path / "m.csv")])
    assert main([str(tmp_path / "missing.csv"), "--out", str(tmp_path / "m.csv")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_manifest_labels_accept_every_spelling_the_lookup_accepts(tmp_path):
    from training.datasets import ManifestReader

    np.save(tmp_path / "a.npy", np.zeros((12, 1000), np.float32))
    terms = [
        "left atrial enlargement",
        "164889003",
        "ＣＲＢＢＢ",
        "complete RBBB",
        "IRBBB",
        "ぶるがだ型心電図",
    ]
    rows = [["a.npy", t, "100"] for t in terms] + [["a.npy", "左房", "100"]]  # 左房: LAE, LVH and AH
    with (tmp_path / "m.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["path", "labels", "fs"], *rows])
    reader = ManifestReader(tmp_path / "m.csv", on_error="skip")
    assert [r.labels for r in reader] == [("LAE",), ("AFIB",), ("CRBBB",), ("CRBBB",), ("IRBBB",), ("BRU",)]
    ((_, reason),) = reader.skips.items
    assert "左房" in reason and "did you mean" in reason


def test_command_with_a_hospital_catalogue(tmp_path):
    import json

    cat = tmp_path / "ours.json"
    own = {
        "id": "HOSP_DIQT",
        "ja": "薬剤性QT延長",
        "en": "drug-induced QT prolongation",
        "parents": ["LNGQT"],
    }
    cat.write_text(json.dumps({"extends": "default", "labels": [own]}, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "r.csv").write_text("record,report\na.npy,洞調律。薬剤性QT延長の疑い\n", encoding="utf-8")
    out = tmp_path / "m.csv"
    assert (
        main([str(tmp_path / "r.csv"), "--out", str(out), "--catalogue", str(cat), "--include-uncertain"])
        == 0
    )
    (row,) = list(csv.DictReader(out.open(encoding="utf-8")))
    assert row["labels"] == "SR;HOSP_DIQT"


# --- one vocabulary (issue 24): report text, manifests and lookup accept the same words ---------------------
HOSPITAL_WORDS = [
    ("PQ延長", ["LPR"]),  # the Japanese name of the PR interval
    ("右軸変位", ["RAD"]),  # a common misspelling of 右軸偏位
    ("ストレインパターン", ["LVH", "STTC"]),  # left ventricular hypertrophy with its ST-T change
    ("心電図上異常を認めない", ["NORM"]),
    ("異常なし", ["NORM"]),
    ("特記所見なし", ["NORM"]),
    ("1度AVB", ["1AVB"]),
    ("PQ短縮", ["SPR"]),
    ("PAF", ["AFIB"]),
    ("心室性期外収縮二段脈", ["PVC", "BIGU"]),
]


@pytest.mark.parametrize("word, ids", HOSPITAL_WORDS)
def test_hospital_words_map_in_reports_manifests_and_lookup(tmp_path, word, ids):
    from edge.interpret.catalogue import load_catalogue
    from training.datasets import ManifestReader

    found = ReportLabeler().label(f"{word}。")
    assert sorted(found.positive) == sorted(ids) and not found.negated and not found.unmatched
    assert [lab.id for lab in load_catalogue().lookup(word)] == ids
    assert [lab.id for lab in load_catalogue().search(word)[: len(ids)]] == ids  # ecg-edge labels WORD
    np.save(tmp_path / "a.npy", np.zeros((12, 2500), np.float32))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,labels,fs,split\na.npy,{word};洞調律,250,train\n", encoding="utf-8")
    (rec,) = list(ManifestReader(manifest))
    assert set(rec.labels) == {*ids, "SR"}


def test_every_vocabulary_line_names_catalogue_labels():
    from edge.interpret.catalogue import load_catalogue
    from edge.interpret.vocabulary import IGNORE, shipped_vocabulary

    cat = load_catalogue()
    for phrase, terms in shipped_vocabulary():
        for term in terms:
            if term != IGNORE:
                assert cat.resolve(term), f"{phrase}: {term}"
    assert len(cat.vocabulary) > 100  # phrases that are not already names, "-" lines left out


def test_a_phrase_of_two_labels_is_refused_where_one_is_needed():
    from edge.interpret.catalogue import UnknownLabelError, load_catalogue

    with pytest.raises(UnknownLabelError, match="names 2 labels"):
        load_catalogue().resolve("ストレインパターン")


def test_negated_hospital_words_and_unmatched_still_listed():
    found = ReportLabeler().label("洞調律、PQ延長なし、右胸心")
    assert found.positive == ["SR"] and found.negated == ["LPR"] and found.unmatched == ["右胸心"]


def test_ecg_edge_labels_finds_hospital_words(capsys):
    from edge.cli.main import main as edge_main

    assert edge_main(["labels", "PQ延長"]) == 0
    assert "LPR" in capsys.readouterr().out


def test_a_hospital_catalogue_keeps_the_phrases_whose_labels_it_has():
    from edge.interpret.catalogue import Catalogue, Label, UnknownLabelError

    cat = Catalogue([Label("SR", "洞調律", "sinus rhythm"), Label("LPR", "PR延長", "prolonged PR interval")])
    assert [lab.id for lab in cat.lookup("PQ延長")] == ["LPR"]
    with pytest.raises(UnknownLabelError):
        cat.lookup("ストレインパターン")  # its labels (LVH, STTC) are not in this catalogue
    found = ReportLabeler(cat).label("PQ延長、ストレインパターン")
    assert found.positive == ["LPR"] and found.unmatched == ["ストレインパターン"]  # listed, never dropped


def test_extra_labels_name_their_parents_in_the_same_words(tmp_path):
    """--extra-labels (and a catalogue that extends the default) name parents by any word the vocabulary knows."""
    from edge.interpret.catalogue import CatalogueError, load_catalogue

    cat = load_catalogue().extended([
        {"id": "HOSP_DPR", "ja": "薬剤性PR延長", "en": "drug-induced PR prolongation", "parents": ["PQ延長"]},
        {"id": "HOSP_X", "ja": "院内所見X", "en": "finding X", "parents": ["HOSP_DPR", "1度AVB"]},
    ])  # fmt: skip
    assert cat["HOSP_DPR"].parents == ("LPR",) and cat["HOSP_X"].parents == ("HOSP_DPR", "1AVB")
    assert "LPR" in cat.ancestors("HOSP_X")
    with pytest.raises(CatalogueError, match="parent 'ストレインパターン'"):  # two labels: not one parent
        load_catalogue().extended([{"id": "HOSP_Y", "ja": "y", "en": "y", "parents": ["ストレインパターン"]}])
