"""Hostile files (issue 16): every reproduced case is a one-line error naming the file, or a counted skip.

``ecg-edge classify`` (edge.readers.records) and the dataset readers of ``ecg-train``/``ecg-eval``
(training.datasets.manifest) on empty, truncated, non-numpy and object ``.npy`` files, UTF-16 and binary
CSV, WFDB headers with a rate of -500, 0 or "abc", ``--fs`` inf/nan/1e-300, manifest rows with fs "abc",
fold "ten" and fold 99.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.cli.main import main as edge_main

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile_files")
    good = (np.random.default_rng(0).standard_normal((12, 5000)) * 0.1).astype(np.float32)
    np.save(d / "good.npy", good)
    (d / "empty.npy").write_bytes(b"")
    (d / "trunc.npy").write_bytes((d / "good.npy").read_bytes()[:1000])
    (d / "notnpy.npy").write_text("hello, not numpy")
    np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(d / "zero.npy", np.zeros((12, 0), np.float32))
    (d / "u16.csv").write_bytes("I,II\n1,2\n".encode("utf-16"))
    (d / "bin.csv").write_bytes(bytes(range(256)) * 2)
    return d


def _wfdb(folder, name: str, fs_text: str):
    wfdb = pytest.importorskip("wfdb")
    x = np.random.default_rng(1).standard_normal((5000, 12)) * 0.1
    wfdb.wrsamp(
        name, fs=500, units=["mV"] * 12, sig_name=LEADS, p_signal=x, fmt=["16"] * 12, write_dir=str(folder)
    )
    header = folder / f"{name}.hea"
    lines = header.read_text().splitlines()
    first = lines[0].split()
    first[2] = fs_text
    header.write_text("\n".join([" ".join(first), *lines[1:]]) + "\n")
    return folder / name


def _classify_error(capsys, *argv: str) -> str:
    assert edge_main(["classify", *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ecg-edge: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("empty.npy", "not a numpy array file"),
        ("trunc.npy", "not a numpy array file"),
        ("notnpy.npy", "not a numpy array file"),
        ("obj.npy", "not a numpy array file"),
        ("zero.npy", "no samples"),
        ("u16.csv", "not a readable .csv file"),
        ("bin.csv", "not a readable .csv file"),
    ],
)
def test_classify_bad_files_one_line_naming_the_file(files, capsys, name, needle):
    """Was: a traceback on an empty .npy; a UTF-16 or binary CSV error that did not name the file."""
    err = _classify_error(capsys, str(files / name), "--fs", "500")
    assert str(files / name) in err and needle in err


@pytest.mark.parametrize("fs", ["inf", "nan", "1e-300", "1e9"])
def test_classify_bad_fs_one_line_naming_the_file(files, capsys, fs):
    """Was: a traceback for --fs inf; errors that did not name the file for --fs nan and 1e-300."""
    err = _classify_error(capsys, str(files / "good.npy"), "--fs", fs)
    assert "good.npy" in err and "--fs" in err


@pytest.mark.parametrize(("fs_text", "needle"), [("-500", "-500.0 Hz"), ("0", "0.0 Hz"), ("abc", "'abc'")])
def test_wfdb_header_rate_is_checked_not_defaulted(tmp_path, capsys, fs_text, needle):
    """Was: a header rate of "-500" read as 250 Hz and classified, with confident 心房細動 and 心室細動."""
    record = _wfdb(tmp_path, "r", fs_text)
    err = _classify_error(capsys, str(record))
    assert "r.hea" in err and needle in err


# --- the dataset readers of ecg-train / ecg-eval -------------------------------------------------------
def _manifest(folder, rows: list[str]):
    path = folder / "manifest.csv"
    path.write_text("path,labels,fs,fold\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


BAD_ROWS = [
    ("empty.npy,SR,500,1", "unreadable"),
    ("trunc.npy,SR,500,1", "unreadable"),
    ("notnpy.npy,SR,500,1", "unreadable"),
    ("obj.npy,SR,500,1", "unreadable"),
    ("good.npy,SR,abc,1", "bad_fs"),
    ("good.npy,SR,-500,1", "bad_fs"),
    ("good.npy,SR,500,ten", "bad_fold"),
    ("good.npy,SR,500,99", "bad_fold"),
]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS)
def test_manifest_reader_names_the_record(files, row, reason):
    from training.datasets import DatasetError, ManifestReader

    reader = ManifestReader(_manifest(files, [row]))
    with pytest.raises(DatasetError) as info:
        list(reader)
    message = str(info.value)
    assert "\n" not in message and reason in message and row.split(",")[0].split(".")[0] in message


def test_skip_bad_counts_every_bad_row_and_keeps_the_good_one(files):
    """Was: --skip-bad stopped on these instead of counting them; fold 99 went silently into no split."""
    from training.datasets import ManifestReader

    reader = ManifestReader(
        _manifest(files, ["good.npy,SR,500,1", *[r for r, _ in BAD_ROWS]]), on_error="skip"
    )
    records = list(reader)
    assert len(records) == 1 and records[0].fold == 1
    assert len(reader.skips) == len(BAD_ROWS)
    assert reader.skips.counts() == {"unreadable": 4, "bad_fs": 2, "bad_fold": 2}


def test_ecg_eval_on_an_empty_npy_is_one_line(files, capsys):
    from edge.bundle.loader import default_bundle_path
    from training.cli import eval_main

    manifest = _manifest(files, ["empty.npy,SR,500,10"])
    assert eval_main([str(default_bundle_path()), "--data", f"manifest={manifest}"]) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("ecg-eval: error:") and "empty.npy" in err and "unreadable" in err
