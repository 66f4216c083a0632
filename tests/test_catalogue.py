"""The label catalogue (edge.interpret.catalogue, Contract 2) and the ``ecg-edge labels`` command."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli.main import main
from edge.interpret.catalogue import (
    CATEGORIES,
    N_LABELS,
    Catalogue,
    CatalogueError,
    Label,
    UnknownLabelError,
    load_catalogue,
    normalize,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

# The 71 statements of PTB-XL's scp_statements.csv (v1.0.3), so coverage is checked without the data too.
SCP_CODES = (
    "NDT", "NST_", "DIG", "LNGQT", "NORM", "IMI", "ASMI", "LVH", "LAFB", "ISC_", "IRBBB", "1AVB",
    "IVCD", "ISCAL", "CRBBB", "CLBBB", "ILMI", "LAO/LAE", "AMI", "ALMI", "ISCIN", "INJAS", "LMI", "ISCIL",
    "LPFB", "ISCAS", "INJAL", "ISCLA", "RVH", "ANEUR", "RAO/RAE", "EL", "WPW", "ILBBB", "IPLMI", "ISCAN",
    "IPMI", "SEHYP", "INJIN", "INJLA", "PMI", "3AVB", "INJIL", "2AVB", "ABQRS", "PVC", "STD_", "VCLVH",
    "QWAVE", "LOWT", "NT_", "PAC", "LPR", "INVT", "LVOLT", "HVOLT", "TAB_", "STE_", "PRC(S)", "SR",
    "AFIB", "STACH", "SARRH", "SBRAD", "PACE", "SVARR", "BIGU", "AFLT", "SVTAC", "PSVT", "TRIGU",
)  # fmt: skip

# The 30 scored diagnoses of the PhysioNet/CinC Challenge 2021 (dx_mapping_scored.csv) and their labels.
SCORED_SNOMED = {
    "164889003": "AFIB", "164890007": "AFLT", "6374002": "BBB", "426627000": "BRADY", "733534002": "CLBBB",
    "713427006": "CRBBB", "270492004": "1AVB", "713426002": "IRBBB", "39732003": "LAD", "445118002": "LAFB",
    "164909002": "LBBB", "251146004": "LVOLT", "698252002": "IVCD", "426783006": "SR", "284470004": "PAC",
    "10370003": "PACE", "365413008": "PRWP", "427172004": "PVC", "164947007": "LPR", "111975006": "LNGQT",
    "164917005": "QWAVE", "47665007": "RAD", "59118001": "RBBB", "427393009": "SARRH", "426177001": "SBRAD",
    "427084000": "STACH", "63593006": "SVPC", "164934002": "TAB", "59931005": "INVT", "17338001": "PVC",
}  # fmt: skip

# PTB-XL superclasses: expand() of a diagnostic statement's label reaches exactly its diagnostic_class.
SUPERCLASSES = {"NORM", "MI", "STTC", "CD", "HYP"}


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


def _tiny(tmp_path: Path, labels: list[dict], name: str = "hospital.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"labels": labels}, ensure_ascii=False), encoding="utf-8")
    return path


# -- the shipped file ----------------------------------------------------------------------------------
def test_exactly_98_labels_unique_ids_and_names(cat):
    assert len(cat) == N_LABELS == 98
    assert len(set(cat.ids)) == 98
    assert len({lab.ja for lab in cat}) == 98
    assert len({lab.en.casefold() for lab in cat}) == 98
    assert cat.ids == tuple(lab.id for lab in cat.labels)
    assert [cat.index(i) for i in cat.ids] == list(range(98))


def test_every_label_is_complete(cat):
    for lab in cat:
        assert lab.id.isascii() and lab.id == lab.id.upper() and " " not in lab.id, lab.id
        assert lab.category in CATEGORIES, lab.id
        assert lab.ja and lab.en and lab.description_ja, lab.id
        assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in lab.description_ja)
        assert all(code.isdigit() for code in lab.snomed), lab.id
        assert (
            isinstance(lab.parents, tuple) and isinstance(lab.scp, tuple) and isinstance(lab.aliases, tuple)
        )
    assert {lab.category for lab in cat} == set(CATEGORIES)


def test_all_71_scp_statements_map_to_exactly_one_label(cat):
    assert len(SCP_CODES) == len(set(SCP_CODES)) == 71
    shipped = [code for lab in cat for code in lab.scp]
    assert sorted(shipped) == sorted(SCP_CODES)  # each code on one label, no other codes
    for code in SCP_CODES:
        assert cat.from_scp(code) is not None, code
    assert sum(1 for lab in cat if lab.scp) == 71  # each statement keeps its own label


@pytest.mark.shared_data
def test_scp_codes_match_ptbxl_csv(cat, shared_data):
    with open(shared_data / "ptbxl" / "scp_statements.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(row[""] for row in rows) == sorted(SCP_CODES)
    for row in rows:
        label = cat.from_scp(row[""])
        assert label is not None, row[""]
        reached = set(cat.expand([label.id])) & SUPERCLASSES
        expected = {row["diagnostic_class"]} if row["diagnostic_class"] else set()
        assert reached == expected, (row[""], reached, expected)


def test_hierarchy(cat):
    for lab in cat:
        assert lab.id not in cat.ancestors(lab.id)  # acyclic
        assert all(p in cat for p in lab.parents)
    assert cat.ancestors("ILMI") == {"IMI", "MI"}
    assert cat.ancestors("CRBBB") == {"RBBB", "BBB", "CD"}
    assert cat.expand(["IMI"]) == ["IMI", "MI"]
    assert cat.expand(["ILMI", "CRBBB"]) == sorted(["ILMI", "IMI", "MI", "CRBBB", "RBBB", "BBB", "CD"])
    assert cat.expand([]) == []
    with pytest.raises(KeyError):
        cat.expand(["NOPE"])


def test_scored_challenge_codes_map(cat):
    assert len(SCORED_SNOMED) == 30
    for code, label_id in SCORED_SNOMED.items():
        assert cat.from_snomed(code).id == label_id, code
    assert cat.from_snomed(164889003).id == "AFIB"  # ints too
    assert cat.from_snomed("999999") is None and cat.from_scp("XYZ") is None


def _mapping(shared_data: Path) -> dict[str, str]:
    codes = {}
    for kind in ("scored", "unscored"):
        with open(shared_data / "cinc2021" / f"dx_mapping_{kind}.csv", newline="", encoding="utf-8") as fh:
            codes |= {row["SNOMEDCTCode"]: kind for row in csv.DictReader(fh)}
    return codes


@pytest.mark.shared_data
def test_snomed_codes_are_real_challenge_codes(cat, shared_data):
    mapping = _mapping(shared_data)
    shipped = [code for lab in cat for code in lab.snomed]
    assert len(shipped) == len(set(shipped))
    assert [c for c in shipped if c not in mapping] == []
    assert sorted(c for c, kind in mapping.items() if kind == "scored") == sorted(SCORED_SNOMED)


@pytest.mark.shared_data
def test_codes_in_challenge_headers_map(cat, shared_data):
    mapping = _mapping(shared_data)
    seen = set()
    for header in sorted((shared_data / "cinc2021").glob("*.hea")):
        for line in header.read_text(encoding="utf-8").splitlines():
            if line.startswith("# Dx:"):
                seen |= {c.strip() for c in line.split(":", 1)[1].split(",") if c.strip()}
    assert seen
    scored = sorted(c for c in seen if mapping.get(c) == "scored")
    assert [c for c in scored if cat.from_snomed(c) is None] == []
    # Every code in these headers has a matching label (LAE, LVH, NST, NSSTT, ISCAN for the unscored ones).
    assert [c for c in sorted(seen) if cat.from_snomed(c) is None] == []


# -- lookup --------------------------------------------------------------------------------------------
def test_search_folds_width_case_and_kana(cat):
    hits = [lab.id for lab in cat.search("右脚")]
    assert hits[0] == "RBBB" and {"CRBBB", "IRBBB"} <= set(hits[:3])
    assert [lab.id for lab in cat.search("rbbb")][:3] == ["RBBB", "CRBBB", "IRBBB"]
    assert cat.search("ＲＢＢＢ") == cat.search("rbbb")
    katakana = cat.search("ブロック")
    assert len(katakana) > 10 and all(
        "ブロック" in lab.ja or "ブロック" in lab.description_ja for lab in katakana
    )
    assert cat.search("ﾌﾞﾛｯｸ") == katakana  # half-width katakana
    assert cat.search("ぶろっく") == katakana  # hiragana
    assert cat.search("Ⅰ度房室ブロック")[0].id == "1AVB"
    assert normalize("ＳＴ－Ｔ  変化") == normalize("st-t変化")


def test_search_english_codes_and_ranking(cat):
    assert cat.search("atrial fibrillation")[0].id == "AFIB"
    assert cat.search("Atrial Flutter")[0].id == "AFLT"
    assert cat.search("164889003")[0].id == "AFIB"
    assert cat.search("LAO/LAE")[0].id == "LAE"
    assert cat.search("IMI")[0].id == "IMI"  # exact id before longer ids containing it
    assert cat.search("心筋梗塞")[0].id == "MI"
    assert {"IMI", "ILMI", "IPMI", "IPLMI"} <= {lab.id for lab in cat.search("梗塞 下壁")}
    assert cat.search("肺性P")[0].id == "RAE"  # found through the description
    assert cat.search("qqqq") == []
    assert len(cat.search("")) == 98


def test_resolve(cat):
    assert cat.resolve("完全右脚ブロック").id == "CRBBB"
    assert cat.resolve("crbbb").id == "CRBBB"
    assert cat.resolve("ＣＲＢＢＢ").id == "CRBBB"
    assert cat.resolve("complete right bundle branch block").id == "CRBBB"
    assert cat.resolve("713427006").id == "CRBBB"
    assert cat.resolve("右脚ブロック").id == "RBBB"
    assert cat.resolve("PRC(S)").id == "PRC"
    assert cat.resolve("1度房室ブロック").id == "1AVB"
    assert cat.resolve("Ⅲ度房室ブロック").id == "3AVB"
    assert cat.resolve(" 左房拡大 ").id == "LAE"
    assert cat["AFIB"].ja == "心房細動"


def test_resolve_errors_suggest_close_labels(cat):
    with pytest.raises(KeyError) as info:
        cat.resolve("完全右脚ブロッグ")
    assert isinstance(info.value, UnknownLabelError)
    assert "完全右脚ブロック" in str(info.value) and "CRBBB" in info.value.suggestions
    with pytest.raises(KeyError, match="AFIB"):
        cat["AFIBB"]
    with pytest.raises(KeyError, match="unknown label"):
        cat.resolve("xyzzy")
    with pytest.raises(KeyError):
        cat.index("nope")


# -- loading, validation and extension -----------------------------------------------------------------
def test_shipped_catalogue_is_cached_and_immutable(cat):
    assert load_catalogue() is load_catalogue()
    with pytest.raises(AttributeError):
        cat["AFIB"].ja = "x"  # type: ignore[misc]


def test_hospital_catalogue_from_path(tmp_path):
    path = _tiny(
        tmp_path,
        [
            {"id": "MI", "ja": "心筋梗塞", "en": "myocardial infarction", "category": "infarction"},
            {"id": "IMI", "ja": "下壁心筋梗塞", "en": "inferior MI", "parents": ["MI"], "scp": ["IMI"]},
        ],
    )
    local = load_catalogue(path)
    assert len(local) == 2 and local["IMI"].category == "other"
    assert local.expand(["IMI"]) == ["IMI", "MI"] and local.from_scp("IMI").id == "IMI"
    assert load_catalogue(path) is not load_catalogue()


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([{"id": "A", "ja": "あ", "en": "a", "parents": ["B"]}], "parent 'B'"),
        ([{"id": "A", "ja": "あ", "en": "a", "parents": ["B"]}, {"id": "B", "ja": "い", "en": "b", "parents": ["A"]}],
         "cycle"),
        ([{"id": "A", "ja": "あ", "en": "a", "parents": ["A"]}], "own parent"),
        ([{"id": "A", "ja": "同じ", "en": "a"}, {"id": "B", "ja": "同じ", "en": "b"}], "already names"),
        ([{"id": "A", "ja": "あ", "en": "a"}, {"id": "A", "ja": "い", "en": "b"}], "duplicate label id"),
        ([{"id": "A", "ja": "あ", "en": "a", "category": "cardiac"}], "category"),
        ([{"id": "A", "ja": "あ", "en": "a", "snomed": ["12x"]}], "SNOMED"),
        ([{"id": "A B", "ja": "あ", "en": "a"}], "ASCII"),
        ([{"id": "A", "ja": "あ"}], "missing"),
        ([{"id": "A", "ja": "あ", "en": "a", "parent": ["B"]}], "unknown field"),
        ([{"id": "A", "ja": "あ", "en": "a", "parents": "B"}], "list"),
    ],
)  # fmt: skip
def test_invalid_catalogues_are_refused(tmp_path, labels, message):
    with pytest.raises(CatalogueError, match=message):
        load_catalogue(_tiny(tmp_path, labels))


def test_unreadable_catalogue_files(tmp_path):
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogueError, match="not valid JSON"):
        load_catalogue(bad)
    with pytest.raises(CatalogueError, match="expected 3 labels"):
        Catalogue([Label("A", "あ", "a")], expected_count=3)


def test_extended_appends_new_labels(cat):
    extra = [
        {"id": "HCM", "ja": "肥大型心筋症", "en": "hypertrophic cardiomyopathy", "parents": ["LVH"]},
        Label("TAKO", "たこつぼ型心筋症", "takotsubo cardiomyopathy", "ischemia/ST-T"),
    ]
    bigger = cat.extended(extra)
    assert len(bigger) == 100 and len(cat) == 98
    assert bigger.ids[:98] == cat.ids and bigger.index("HCM") == 98 and bigger.index("TAKO") == 99
    assert bigger["HCM"].category == "other"
    assert bigger.ancestors("HCM") == {"LVH", "VH", "HYP"}
    assert bigger.resolve("タコツボ型心筋症").id == "TAKO"  # hiragana folded to katakana


def test_extended_rejects_duplicates(cat):
    with pytest.raises(CatalogueError, match="duplicate label id 'AFIB'"):
        cat.extended([{"id": "AFIB", "ja": "新しい心房細動", "en": "new af"}])
    with pytest.raises(CatalogueError, match="already names"):
        cat.extended([{"id": "afib", "ja": "新しい心房細動", "en": "new af"}])
    with pytest.raises(CatalogueError, match="already names"):
        cat.extended([{"id": "NEWAF", "ja": "心房細動", "en": "new af"}])
    with pytest.raises(CatalogueError, match="parent"):
        cat.extended([{"id": "X1", "ja": "謎", "en": "mystery", "parents": ["NOPE"]}])


# -- ecg-edge labels -----------------------------------------------------------------------------------
def test_cli_search(capsys):
    assert main(["labels", "右脚"]) == 0
    out = capsys.readouterr().out
    assert "完全右脚ブロック" in out and "不完全右脚ブロック" in out and "713427006" in out


def test_cli_table_and_json(capsys):
    assert main(["labels"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 99 and out[1].split()[:2] == ["SR", "洞調律"]
    assert main(["labels", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data) == 98 and data[0]["id"] == "SR" and set(data[0]) >= {"ja", "en", "snomed", "scp"}
    assert main(["labels", "--category", "axis", "--json"]) == 0
    assert [d["id"] for d in json.loads(capsys.readouterr().out)] == ["AXIS", "LAD", "RAD"]
    assert main(["labels", "ﾌﾞﾛｯｸ", "--json", "--category", "conduction"]) == 0
    assert "CRBBB" in {d["id"] for d in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["labels", "zzqqxx"],
        ["labels", "--category", "nope"],
        ["labels", "AFIB", "--category", "axis"],
    ],
)
def test_cli_errors_are_one_line(capsys, argv):
    assert main(argv) != 0
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("ecg-edge") and "error:" in last


def test_cli_bad_catalogue_and_help(capsys, tmp_path):
    assert main(["labels", "--catalogue", str(tmp_path / "none.json")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["--help"]) == 0 and "labels" in capsys.readouterr().out


def test_cli_writes_utf8_to_a_pipe_under_an_ascii_locale():
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "LC_ALL": "C"}
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli.main", "labels", "右脚"],
        capture_output=True,
        env=env,
        cwd=REPO_ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "完全右脚ブロック" in proc.stdout.decode("utf-8")
