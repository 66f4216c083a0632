"""ECG-cart formats through ``edge.readers.cart_formats`` (ecgdatakit): read, classified, in the manifest.

How each format is tested:

- DICOM waveform: a real file, ``waveform_ecg.dcm`` shipped inside pydicom (12 leads, 1 kHz), compared
  with pydicom's own decoding; and a real PTB-XL record written by pydicom and read back.
- HL7 aECG and MFER: a real PTB-XL record written by this suite's standard-following writers
  (``tests/cart_writers.py``; no well-kept writer exists for either) and read back by ecgdatakit.
- EDF+: a real PTB-XL record written by pyedflib (a well-kept writer; the ``dev`` extra) and read back.
- WFDB without the ``wfdb`` package (a board installed with ``.[edge]``): real PTB-XL, MIT-BIH (format 212)
  and Challenge ``.mat`` records compared with ``wfdb``.
- SCP-ECG, GE MUSE XML, Philips XML: no real file and no well-kept writer here, so not tested.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ecgdatakit")

from cart_writers import write_dicom_ecg, write_edf, write_hl7_aecg, write_mfer  # noqa: E402

from edge.cli.main import main  # noqa: E402
from edge.dsp.signal import LEADS  # noqa: E402
from edge.readers.cart_formats import CartFormatError, _lead_name, detect_format, read_cart_file  # noqa: E402
from edge.readers.records import RecordError, read_recording  # noqa: E402
from firmware_bridge.synthetic import synthesize  # noqa: E402

PTBXL_RECORD = "ptbxl/records500/00000/00001_hr"


def _pydicom_sample() -> Path:
    pydicom_data = pytest.importorskip("pydicom.data")
    path = Path(pydicom_data.__file__).parent / "test_files" / "waveform_ecg.dcm"
    if not path.is_file():
        pytest.skip("this pydicom does not ship waveform_ecg.dcm")
    return path


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    return synthesize(rhythm="sinus", fs=500, seed=5, duration_s=10.0).astype(np.float64)


@pytest.fixture(scope="module")
def ptbxl(shared_data):
    wfdb = pytest.importorskip("wfdb")
    rec = wfdb.rdrecord(str(shared_data / PTBXL_RECORD))
    return rec.p_signal.T.astype(np.float64), float(rec.fs), list(rec.sig_name)


def _tolerance(writer, lsb_uv: float) -> float:
    """Half a count in mV (rounding); pyedflib truncates toward zero when it converts to counts: one count."""
    return (1.0 if writer is write_edf else 0.5) * lsb_uv / 1000 + 1e-6


def _top_ids(lines: str) -> list[list[str]]:
    return [[t["id"] for t in json.loads(line)["top"]] for line in lines.splitlines() if line.strip()]


def test_real_dicom_waveform_from_pydicom(tiny_bundle, capsys):
    import pydicom

    path = _pydicom_sample()
    assert detect_format(path) == "DICOM Waveform"
    rec = read_cart_file(path)
    assert rec.leads == list(LEADS) and rec.fs == 1000.0 and rec.x_mv.shape == (12, 10000)
    ds = pydicom.dcmread(path)
    ref = ds.waveform_array(0).T  # pydicom applies sensitivity and baseline: microvolts here
    unit = ds.WaveformSequence[0].ChannelDefinitionSequence[0].ChannelSensitivityUnitsSequence[0].CodeValue
    assert unit == "uV"
    np.testing.assert_allclose(rec.x_mv, ref / 1000.0, atol=1e-6)
    assert main(["classify", str(path), "--json", "--bundle", str(tiny_bundle)]) == 0
    assert all(len(ids) == 5 for ids in _top_ids(capsys.readouterr().out))


@pytest.mark.parametrize(
    "writer, lsb_uv, name",
    [
        (write_mfer, 2.5, "MFER"),
        (write_hl7_aecg, 1.0, "HL7 aECG"),
        (write_dicom_ecg, 1.25, "DICOM Waveform"),
        (write_edf, 1.0, "EDF/EDF+"),
    ],
)
def test_gains_and_lead_names_carried_over(tmp_path, ecg, writer, lsb_uv, name):
    if writer is write_edf:
        pytest.importorskip("pyedflib")
    leads = list(LEADS)
    path = writer(tmp_path / "ecg.bin", ecg, 500, leads, lsb_uv=lsb_uv)  # no telling extension
    rec = read_cart_file(path)
    assert rec.format == name and rec.fs == 500.0 and rec.leads == leads
    np.testing.assert_allclose(rec.x_mv, ecg, atol=_tolerance(writer, lsb_uv))
    # gain carried over: the same ECG stored with twice the resolution reads the same in mV
    other = read_cart_file(writer(tmp_path / "fine.bin", ecg, 500, leads, lsb_uv=lsb_uv / 2))
    np.testing.assert_allclose(other.x_mv, rec.x_mv, atol=lsb_uv / 1000 + 1e-6)


def test_eight_channel_mfer_classifies(tmp_path, ecg, tiny_bundle, capsys):
    eight = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    rows = [list(LEADS).index(n) for n in eight]
    path = write_mfer(tmp_path / "eight.mwf", ecg[rows], 500, eight)
    rec = read_recording(path)
    assert rec.leads == eight and rec.x_mv.shape == (8, 5000)
    assert main(["classify", str(path), "--json", "--bundle", str(tiny_bundle)]) == 0
    (line,) = [json.loads(s) for s in capsys.readouterr().out.splitlines() if s.strip()]
    assert line["quality"]["ok"] and len(line["top"]) == 5


def test_format_is_chosen_by_content_not_extension(tmp_path, ecg):
    mfer = write_mfer(tmp_path / "cart.xml", ecg, 500, list(LEADS))  # MFER named .xml
    aecg = write_hl7_aecg(tmp_path / "cart.dat", ecg, 500, list(LEADS))  # aECG named .dat, no header
    assert read_recording(mfer).leads == list(LEADS) and detect_format(mfer) == "MFER"
    assert read_recording(aecg).x_mv.shape == (12, 5000) and detect_format(aecg) == "HL7 aECG"


def test_lead_names_are_made_canonical():
    # a MFER lead code 65 (-aVR, Cabrera) reads back as aVR with the sign undone
    assert _lead_name("-aVR") == ("aVR", -1.0) and _lead_name("MDC_ECG_LEAD_AVR") == ("aVR", 1.0)
    assert _lead_name("Respiration") == ("Respiration", 1.0)


def test_bad_cart_files_give_one_line_errors(tmp_path, ecg, tiny_bundle, capsys):
    raw = write_mfer(tmp_path / "raw.mwf", ecg, 500, list(LEADS), state_gain=False)
    with pytest.raises(CartFormatError, match="no stated gain"):
        read_cart_file(raw)
    good = write_hl7_aecg(tmp_path / "cut.xml", ecg, 500, list(LEADS)).read_bytes()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(good[: len(good) // 2])
    junk = tmp_path / "junk.mwf"
    junk.write_bytes(b"\x00\x01hello")
    for path, message in [(raw, "no stated gain"), (cut, "cannot read"), (junk, "unknown format")]:
        assert main(["classify", str(path), "--bundle", str(tiny_bundle)]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_manifest_reads_cart_files(tmp_path, ecg):
    from training.datasets import ManifestReader

    write_mfer(tmp_path / "a.mwf", ecg, 500, list(LEADS))
    write_hl7_aecg(tmp_path / "b.xml", ecg, 500, list(LEADS))
    (tmp_path / "c.mwf").write_bytes(b"not an ecg")
    with (tmp_path / "m.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels", "patient_id"])
        w.writerows([["a.mwf", "洞調律", "P1"], ["b.xml", "CRBBB", "P2"], ["c.mwf", "SR", "P3"]])
    reader = ManifestReader(tmp_path / "m.csv", on_error="skip")
    records = list(reader)
    assert [r.labels for r in records] == [("SR",), ("CRBBB",)]
    for rec in records:
        assert rec.fs == 500.0 and tuple(rec.leads) == LEADS
        np.testing.assert_allclose(rec.signal, ecg, atol=0.0013)
    assert len(reader.skips) == 1


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize(
    "writer, lsb_uv", [(write_mfer, 2.5), (write_hl7_aecg, 1.0), (write_dicom_ecg, 1.25), (write_edf, 1.0)]
)
def test_real_ptbxl_record_round_trips(tmp_path, ptbxl, shared_data, tiny_bundle, capsys, writer, lsb_uv):
    if writer is write_edf:
        pytest.importorskip("pyedflib")
    x, fs, names = ptbxl
    path = writer(tmp_path / "ptbxl_00001", x, fs, names, lsb_uv=lsb_uv)
    rec = read_recording(path)
    assert rec.fs == fs and rec.leads == list(LEADS)
    np.testing.assert_allclose(rec.x_mv, x, atol=_tolerance(writer, lsb_uv))
    assert main(["classify", str(path), "--json", "--bundle", str(tiny_bundle)]) == 0
    from_cart = capsys.readouterr().out
    assert main(["classify", str(shared_data / PTBXL_RECORD), "--json", "--bundle", str(tiny_bundle)]) == 0
    from_wfdb = capsys.readouterr().out
    a = [json.loads(s)["top"] for s in from_cart.splitlines() if s.strip()]
    b = [json.loads(s)["top"] for s in from_wfdb.splitlines() if s.strip()]
    assert len(a) == len(b) >= 1
    for ta, tb in zip(a, b, strict=True):  # quantisation of a few microvolts moves scores by little
        assert ta[0]["id"] == tb[0]["id"]
        assert abs(ta[0]["score"] - tb[0]["score"]) < 0.02


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize(
    "record", [PTBXL_RECORD, "wfdb_samples/100", "cinc2021/E07500", "wfdb_samples/s0010_re"]
)
def test_wfdb_without_the_wfdb_package(shared_data, monkeypatch, record):
    pytest.importorskip("wfdb")
    ref = read_recording(shared_data / record)
    monkeypatch.setitem(sys.modules, "wfdb", None)  # import wfdb now raises ImportError
    with pytest.raises(ImportError):
        import wfdb as _  # noqa: F401
    got = read_recording(shared_data / f"{record}.hea")
    assert got.fs == ref.fs and got.leads == [_lead_name(n)[0] for n in ref.leads]
    np.testing.assert_allclose(got.x_mv, ref.x_mv, atol=1e-6)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(RecordError, match="not found"):
        read_recording(tmp_path / "none.mwf")
    with pytest.raises(RecordError, match="a folder, not an ECG file"):
        read_recording(tmp_path)


def test_dicom_without_pydicom_says_what_to_install(monkeypatch):
    path = _pydicom_sample()
    for name in [m for m in sys.modules if m == "pydicom" or m.startswith("pydicom.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(CartFormatError, match=r"pip install 'ecg-clip-ja\[dicom\]'"):
        read_cart_file(path)


@pytest.mark.slow
@pytest.mark.shared_data
def test_simulator_streams_a_wfdb_record_without_the_wfdb_package(shared_data, monkeypatch):
    # `make demo RECORD=...` in the device-side .venv: the simulator reads the record through ecgdatakit
    pytest.importorskip("wfdb")
    from firmware_bridge.sources import RecordSource

    leads = (0, 1, 6, 7, 8, 9, 10, 11)
    ref = RecordSource(shared_data / PTBXL_RECORD, leads, 1000).counts
    monkeypatch.setitem(sys.modules, "wfdb", None)
    got = RecordSource(shared_data / PTBXL_RECORD, leads, 1000)
    assert got.fs == 500 and np.array_equal(got.counts, ref)
