"""Patient and acquisition data: read from the file where its format has them, given on the command line,
shown on the report's header and in the JSON lines; nothing invented when absent. And the report's layout:
lead labels clear of the traces, the paper scales marked, half/double gain and 50 mm/s."""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from edge.cli.main import main as edge_main
from edge.dsp.signal import LEADS
from edge.readers.patient import PatientError, PatientInfo, from_wfdb_comments, parse_sex
from edge.views.report import label_y, patient_text
from firmware_bridge.synthetic import synthesize

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _classify(*args: str) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = edge_main(["classify", *args])
    return code, buf.getvalue()


def _pdf_text(path: Path) -> str:
    pypdf = pytest.importorskip("pypdf")
    return pypdf.PdfReader(str(path)).pages[0].extract_text()


@pytest.fixture(scope="module")
def dicom_file() -> Path:
    pytest.importorskip("ecgdatakit")
    data = pytest.importorskip("pydicom.data")
    return Path(data.get_testdata_file("waveform_ecg.dcm"))


@pytest.fixture
def npy(tmp_path) -> Path:
    path = tmp_path / "ecg.npy"
    np.save(path, synthesize(rhythm="sinus", fs=500, seed=3, duration_s=10.0))
    return path


def test_dicom_report_shows_patient_id_and_acquisition_time(dicom_file, tmp_path):
    """The issue's done-when: pydicom's waveform_ecg.dcm (PatientID 642341, F, born 1971-01-23, 2013-01-25 10:59)."""
    out = tmp_path / "dicom.pdf"
    code, _ = _classify(str(dicom_file), "--report", str(out))
    assert code == 0
    text = _pdf_text(out)
    assert "患者ID 642341" in text
    assert "2013-01-25 10:59:19" in text and "時差不明" in text  # the file gives no zone: said, not guessed
    assert "女性" in text and "42歳" in text and "1971-01-23" in text
    assert "Mortara" in text  # the cart
    code, stdout = _classify(str(dicom_file), "--json")
    line = json.loads(stdout.splitlines()[0])
    assert line["patient"] == {"id": "642341", "sex": "F", "age": 42, "birth_date": "1971-01-23"}
    assert line["acquired"] == "2013-01-25T10:59:19" and line["cart"] == "Mortara Instrument, Inc. el250"


def test_command_line_overrides_the_file_and_keeps_the_zone(dicom_file):
    code, stdout = _classify(
        str(dicom_file), "--json", "--patient-id", "H-0042", "--acquired", "2013-01-25T10:59:19+09:00"
    )
    line = json.loads(stdout.splitlines()[0])
    assert code == 0 and line["patient"]["id"] == "H-0042" and line["patient"]["sex"] == "F"
    assert line["acquired"] == "2013-01-25T10:59:19+09:00"


def test_nothing_invented_when_absent(npy, tmp_path):
    code, stdout = _classify(str(npy), "--fs", "500", "--json")
    line = json.loads(stdout.splitlines()[0])
    assert code == 0 and "patient" not in line and "acquired" not in line and "cart" not in line
    out = tmp_path / "none.pdf"
    assert _classify(str(npy), "--fs", "500", "--report", str(out))[0] == 0
    text = _pdf_text(out)
    assert "患者ID 記録なし" in text and "年齢 記録なし" in text and "記録日時 記録なし" in text


def test_command_line_patient_on_a_npy_report(npy, tmp_path):
    out = tmp_path / "given.pdf"
    code, _ = _classify(str(npy), "--fs", "500", "--report", str(out), "--patient-id", "P-9", "--sex", "M",
                        "--birth-date", "1950-06-30", "--acquired", "2026-06-29T08:15:00+00:00")  # fmt: skip
    assert code == 0
    text = _pdf_text(out)
    assert "患者ID P-9" in text and "男性" in text and "75歳" in text  # one day before the 76th birthday
    local = dt.datetime(2026, 6, 29, 8, 15, tzinfo=dt.timezone.utc).astimezone()
    assert f"{local:%Y-%m-%d %H:%M:%S}" in text and f"UTC{local:%z}" in text  # local time with its zone


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sex", "X"], "sex"),
        (["--age", "200"], "age"),
        (["--birth-date", "30/06/1950"], "YYYY-MM-DD"),
        (["--acquired", "yesterday"], "ISO"),
        (["--age", "40", "--birth-date", "1980-01-01"], "not allowed with"),
    ],
)
def test_bad_patient_options_are_one_line_usage_errors(npy, capsys, args, message):
    code, _ = _classify(str(npy), "--fs", "500", *args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_wfdb_header_comments_give_age_and_sex(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    x = synthesize(rhythm="sinus", fs=500, seed=2, duration_s=10.0)
    wfdb.wrsamp("rec", fs=500, units=["mV"] * 12, sig_name=list(LEADS), p_signal=x.T.astype(np.float64),
                fmt=["16"] * 12, comments=["Age: 63", "Sex: Female", "Dx: 426783006"], write_dir=str(tmp_path))  # fmt: skip
    code, stdout = _classify(str(tmp_path / "rec"), "--json")
    line = json.loads(stdout.splitlines()[0])
    assert code == 0 and line["patient"] == {"sex": "F", "age": 63}
    assert from_wfdb_comments(["# Age: NaN", "# Sex: Unknown"]).empty  # a Challenge "unknown": nothing


def test_hl7_and_edf_headers_are_read(tmp_path):
    pyedflib = pytest.importorskip("pyedflib")
    pytest.importorskip("ecgdatakit")
    from cart_writers import write_hl7_aecg

    from edge.readers.records import read_recording

    x = synthesize(rhythm="sinus", fs=500, seed=4, duration_s=10.0)
    hl7 = read_recording(write_hl7_aecg(tmp_path / "a.xml", x, 500, list(LEADS))).patient
    assert hl7.acquired == dt.datetime(2026, 1, 1, 9, 0) and hl7.patient_id is None  # the writer gives no ID
    path = tmp_path / "a.edf"
    w = pyedflib.EdfWriter(str(path), 12, file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setSignalHeaders([{"label": n, "dimension": "uV", "sample_frequency": 500, "physical_max": 32767.0,
                         "physical_min": -32768.0, "digital_max": 32767, "digital_min": -32768} for n in LEADS])  # fmt: skip
    w.setPatientCode("PID-77")
    w.setSex(1)
    w.setBirthdate(dt.date(1950, 3, 4))
    w.setStartdatetime(dt.datetime(2024, 5, 6, 7, 8, 9))
    w.writeSamples([np.asarray(r, np.float64) * 1000.0 for r in x])
    w.close()
    edf = read_recording(path).patient
    assert (edf.patient_id, edf.sex, edf.birth_date) == ("PID-77", "M", dt.date(1950, 3, 4))
    assert edf.acquired == dt.datetime(2024, 5, 6, 7, 8, 9) and edf.age_years == 74


def test_patient_info_rules():
    assert parse_sex("male") == "M" and parse_sex("女") == "F" and parse_sex("U") is None
    with pytest.raises(PatientError):
        parse_sex("banana")
    born = PatientInfo(birth_date=dt.date(2000, 5, 1))
    assert born.age_years is None  # no acquisition time: the age is not computed from today's date
    assert born.merged(PatientInfo(acquired=dt.datetime(2020, 4, 30))).age_years == 19
    assert PatientInfo(age=50).merged(PatientInfo(birth_date=dt.date(2000, 1, 1))).age is None  # given wins
    assert "年齢 記録なし" in patient_text(None)


def test_lead_labels_clear_of_their_trace():
    base, row = 100.0, 33.0
    tall = np.array([base, base + 14.0, base - 2.0])  # a tall R wave under the label
    y = label_y(tall, base, row)
    assert y >= base + 14.0 + 1 or y + 3.6 <= base - 2.0 - 1  # above the peak or below the trough
    deep = np.array([base, base + 13.0, base - 15.0])  # fills the row: the larger gap
    y = label_y(deep, base, row)
    assert base - 0.55 * row <= y <= base + 0.45 * row - 3.6
    flat = np.full(10, base)
    assert base + 1 <= label_y(flat, base, row) <= base + 4  # near the baseline, not far above it


def test_first_beat_does_not_run_through_the_labels(tmp_path):
    """A real drawing: in no lead's label box is there a dark trace pixel (LBBB at double gain)."""
    import matplotlib.image as mpimg

    from edge.runtime.engine import Result
    from edge.views import report

    x = synthesize(rhythm="lbbb", fs=500, seed=7, duration_s=10.0) * 1.5
    result = Result(quality={"ok": True, "missing_samples": 0}, bundle="test@0")
    clean = report.write_report(tmp_path / "a.png", x, 500, None, result, source="lbbb")
    assert mpimg.imread(clean).shape[0] > 0
    # The label positions the drawing used, recomputed: each label's box must not meet its own trace.
    disp = report._display_leads(x, 500, None)
    grid_top = report._GRID_Y0 + 4 * report._ROW_MM
    for r, names in enumerate(report.LAYOUT):
        base = grid_top - (r + 0.55) * report._ROW_MM
        for c, name in enumerate(names):
            seg = disp[LEADS.index(name), c * 1250 : (c + 1) * 1250]
            xs = report._TRACE_X0 + (c * 2.5 + np.arange(seg.size) / 500) * 25.0
            ys = base + seg * 10.0
            x0 = report._TRACE_X0 + c * 2.5 * 25.0 + 1
            inside = (xs >= x0) & (xs <= x0 + report._LABEL_W)
            y = label_y(ys[inside], base, report._ROW_MM)
            hit = inside & (ys >= y) & (ys <= y + report._LABEL_H)
            assert not hit.any(), f"lead {name}: the trace runs through its label"


@pytest.mark.parametrize("speed, gain, mark", [("50", "10", "50 mm/s"), ("25", "5", "5 mm/mV (標準の1/2)"),
                                               ("25", "20", "20 mm/mV (標準の2倍)")])  # fmt: skip
def test_speed_and_gain_options_are_marked(npy, tmp_path, speed, gain, mark):
    out = tmp_path / "s.pdf"
    code, _ = _classify(str(npy), "--fs", "500", "--report", str(out), "--report-speed", speed,
                        "--report-gain", gain)  # fmt: skip
    assert code == 0
    text = _pdf_text(out)
    assert mark in text
    if speed == "50":
        assert "区間 0.0–5.0 秒" in text  # 250 mm of paper holds 5 s at 50 mm/s


def test_report_scale_choices_are_checked(npy, capsys):
    assert _classify(str(npy), "--fs", "500", "--report-gain", "7")[0] == 2
    assert "invalid choice" in capsys.readouterr().err


def test_long_findings_wrap_inside_the_header_and_push_what_follows():
    """The findings with their reasons are long: wrapped within the page's width, in smaller type when needed,
    and what follows starts below their last line (no line drawn over another)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edge.views.fonts import use_japanese_font
    from edge.views.report import PAGE_MM, text_block

    use_japanese_font()
    fig = plt.figure(figsize=(PAGE_MM[0] / 25.4, PAGE_MM[1] / 25.4))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, PAGE_MM[0])
    ax.set_ylim(0, PAGE_MM[1])
    text = "洞調律 [リズム解析 P wave before most beats: 心拍数 72 bpm、RR 変動係数 0.03、QRS 171 ms]、" * 10
    y_end = text_block(ax, 24.0, 177.0, text, 263.0, (11, 9.5, 8), 4)
    drawn = ax.texts[-1]
    renderer = fig.canvas.get_renderer()
    box = drawn.get_window_extent(renderer).transformed(ax.transData.inverted())  # in mm
    plt.close(fig)
    assert drawn.get_fontsize() < 11 and drawn.get_text().count("\n") <= 3  # smaller type, at most 4 lines
    assert box.x1 <= PAGE_MM[0] - 5, box  # inside the page's right margin
    assert box.y0 >= y_end - 1.0 and y_end > 150  # what follows starts below the block, above the paper
    assert drawn.get_text().endswith("…")  # too long even at 8 pt: cut visibly, never silently


def test_mfer_header_patient_and_time(tmp_path):
    """MFER (ISO 22077, the Japanese carts' format): patient ID, age with birth date, sex and measurement time."""
    pytest.importorskip("ecgdatakit")
    from cart_writers import _tlv, write_mfer

    from edge.readers.records import read_recording

    x = synthesize(rhythm="sinus", fs=500, seed=6, duration_s=10.0)
    path = write_mfer(tmp_path / "a.mwf", x, 500, list(LEADS))
    body = path.read_bytes()
    assert body.endswith(b"\x80\x00")
    header = (
        _tlv(0x82, b"JP-000123")  # MWF_PID
        + _tlv(0x83, bytes([67]) + (0).to_bytes(2, "big") + (1958).to_bytes(2, "big") + bytes([4, 2]))  # MWF_AGE
        + _tlv(0x84, bytes([2]))  # MWF_SEX: female
        + _tlv(0x85, (2025).to_bytes(2, "big") + bytes([11, 3, 8, 30, 5]) + bytes(4))  # MWF_TIM
    )
    path.write_bytes(body[:-2] + header + b"\x80\x00")
    p = read_recording(path).patient
    assert (p.patient_id, p.sex, p.age, p.birth_date) == ("JP-000123", "F", 67, dt.date(1958, 4, 2))
    assert p.acquired == dt.datetime(2025, 11, 3, 8, 30, 5)
