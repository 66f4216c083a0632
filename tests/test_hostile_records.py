"""Hostile and unusual record files (issue 25, items 10 and 13): the same reading whichever optional package is
installed, and work capped by the declared size and the file size, with one-line errors.

Item 13: a board installed with ``.[edge]`` (no ``wfdb``) refused the Challenge 2020 headers (``invalid base
time '12-May-2020'``) that ``wfdb`` reads; now both paths give the same samples, rate, leads and patient data.
Item 10: a WFDB header declaring 2e7 samples over ``/dev/zero`` reached 3.77 GB and a MemoryError traceback.
"""

from __future__ import annotations

import builtins
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from edge.cli.main import main as edge_main
from edge.readers.records import RecordError, read_recording

LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def _read_without_wfdb(path: Path, monkeypatch):  # noqa: ANN001, ANN202 - as on a board without the package
    real = builtins.__import__

    def blocked(name, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if name == "wfdb" or name.startswith("wfdb."):
            raise ImportError("No module named 'wfdb'")
        return real(name, *args, **kwargs)

    with monkeypatch.context() as m:
        for mod in [k for k in sys.modules if k == "wfdb" or k.startswith("wfdb.")]:
            m.delitem(sys.modules, mod)
        m.setattr(builtins, "__import__", blocked)
        return read_recording(path)


def _same(a, b) -> None:  # noqa: ANN001
    assert a.x_mv.shape == b.x_mv.shape
    np.testing.assert_allclose(a.x_mv, b.x_mv, rtol=0, atol=1e-6)  # float rounding of a gain: within 1 nV
    assert a.fs == b.fs and list(a.leads) == list(b.leads)
    assert a.patient == b.patient


def _record(folder: Path, record_line_tail: str | None = None, n: int = 5000) -> Path:
    wfdb = pytest.importorskip("wfdb")
    pytest.importorskip("ecgdatakit")
    x = np.random.default_rng(13).standard_normal((n, 12)) * 0.3
    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=LEADS, p_signal=x, fmt=["16"] * 12, write_dir=str(folder),
                comments=["Age: 74", "Sex: Male"])  # fmt: skip
    header = folder / "rec.hea"
    if record_line_tail is not None:
        lines = header.read_text().splitlines()
        lines[0] = " ".join(lines[0].split()[:4] + [record_line_tail])
        header.write_text("\n".join(lines) + "\n")
    return header


@pytest.mark.parametrize("tail", ["12-May-2020 12:33:59", "12:33:59 12/05/2020", "12:33:59"])
def test_wfdb_header_reads_the_same_without_the_wfdb_package(tmp_path, monkeypatch, tail):
    """Was: invalid base time '12-May-2020' on the board; now the same recording, patient data included."""
    header = _record(tmp_path, tail)
    with_wfdb = read_recording(header)
    without = _read_without_wfdb(header, monkeypatch)
    _same(with_wfdb, without)


@pytest.mark.parametrize("tail", ["25:99:00 31/02/2020", "12:33:59 31/02/2020"])
def test_wfdb_header_that_wfdb_refuses_is_refused_without_it_too(tmp_path, monkeypatch, tail):
    header = _record(tmp_path, tail)
    with pytest.raises(RecordError):
        read_recording(header)
    with pytest.raises(RecordError, match="invalid base"):
        _read_without_wfdb(header, monkeypatch)


def test_challenge2020_headers_read_the_same_without_wfdb(shared_data, monkeypatch):
    pytest.importorskip("wfdb")
    pytest.importorskip("ecgdatakit")
    headers = sorted((shared_data / "challenge2020").glob("*.hea"))
    assert headers
    odd = [h for h in headers if "-20" in h.read_text(encoding="latin-1").splitlines()[0]]
    assert odd  # the dd-Mon-yyyy headers are there
    for header in headers:
        _same(read_recording(header), _read_without_wfdb(header, monkeypatch))


def test_wfdb_header_declaring_more_than_its_file_holds_is_refused_before_reading(tmp_path, capsys):
    header = _record(tmp_path, n=1000)
    lines = header.read_text().splitlines()
    first = lines[0].split()
    first[3] = "20000000"
    header.write_text("\n".join([" ".join(first), *lines[1:]]) + "\n")
    tracemalloc.start()
    with pytest.raises(RecordError, match="declares 20000000 samples x 12 signals|holds 1000"):
        read_recording(header)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 << 20
    first[3] = "2000"
    header.write_text("\n".join([" ".join(first), *lines[1:]]) + "\n")
    assert edge_main(["classify", str(header)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "declares 2000 samples per signal, rec.dat holds 1000" in err


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_wfdb_signal_file_that_is_a_device_is_refused(tmp_path, capsys):
    """Was: a header declaring 2e7 samples over /dev/zero took 3.77 GB and ended in a MemoryError traceback."""
    header = _record(tmp_path, n=1000)
    (tmp_path / "rec.dat").unlink()
    (tmp_path / "rec.dat").symlink_to("/dev/zero")
    lines = header.read_text().splitlines()
    first = lines[0].split()
    first[3] = "2000000"
    header.write_text("\n".join([" ".join(first), *lines[1:]]) + "\n")
    assert edge_main(["classify", str(header)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a regular file" in err and "Traceback" not in err


# --- item 10: cart files and CSV ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ecg12() -> np.ndarray:
    from firmware_bridge.synthetic import synthesize

    return synthesize(rhythm="sinus", fs=500, seed=10, duration_s=10.0)


@pytest.mark.parametrize("bad", ["abc", "NaN", "inf", "-5", "0"])
def test_hl7_aecg_with_an_unreadable_scale_is_refused(tmp_path, ecg12, capsys, bad):
    """Was: read with gain 1 (amplitudes 5x off, 低電位 stated)."""
    pytest.importorskip("ecgdatakit")
    from cart_writers import write_hl7_aecg

    path = write_hl7_aecg(tmp_path / "ecg.xml", ecg12, 500, LEADS, lsb_uv=5.0)
    good = read_recording(path)
    assert np.abs(good.x_mv - ecg12).max() < 0.01  # the writer's round trip
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('value="5"', f'value="{bad}"', 1), encoding="utf-8")
    assert edge_main(["classify", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scale" in err and "Traceback" not in err


def test_dicom_with_thousands_of_waveform_groups_is_refused_before_decoding(tmp_path, ecg12, capsys):
    """Was: 2000 waveform groups took 1.46 GB."""
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("ecgdatakit")
    from cart_writers import write_dicom_ecg

    path = write_dicom_ecg(tmp_path / "ecg.dcm", ecg12[:, :200], 500, LEADS)
    ds = pydicom.dcmread(str(path))
    ds.WaveformSequence = [ds.WaveformSequence[0]] * 2000
    ds.save_as(str(path))
    tracemalloc.start()
    assert edge_main(["classify", str(path)]) == 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2000 waveform groups" in err
    assert peak < 64 << 20


def test_csv_costs_about_its_size_not_twenty_times(tmp_path):
    """Was: a CSV cost about 20x its size in memory."""
    x = np.random.default_rng(2).standard_normal((12, 30_000)).astype(np.float32)
    path = tmp_path / "big.csv"
    np.savetxt(path, x.T, delimiter=",", header=",".join(LEADS), comments="", fmt="%.5f")
    size = path.stat().st_size
    tracemalloc.start()
    rec = read_recording(path, fs=500)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rec.x_mv.shape == (12, 30_000) and np.abs(rec.x_mv - x).max() < 1e-4
    assert peak < 4 * size, (peak, size)


def test_csv_larger_than_the_cap_is_refused_without_reading(tmp_path, monkeypatch, capsys):
    import edge.readers.records as records

    path = tmp_path / "huge.csv"
    path.write_text(",".join(LEADS) + "\n" + "0,0,0,0,0,0,0,0,0,0,0,0\n" * 100)
    monkeypatch.setattr(records, "MAX_CSV_BYTES", 1000)
    assert edge_main(["classify", str(path), "--fs", "500"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "more than this reader takes" in err
