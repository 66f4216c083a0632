"""Writers of ECG-cart files for tests: a real ECG (mV, [C, T]) -> MFER, HL7 aECG or DICOM waveform.

These are test helpers, written from the standards, so that a real PTB-XL record can be round-tripped
through ``edge.readers.cart_formats`` (which reads with ecgdatakit, an independent implementation):

- DICOM waveform: ``pydicom`` (a well-kept writer) builds a 12-lead ECG IOD dataset
  (PS3.3 A.34.3, Waveform Module C.10.9; lead codes from the SCPECG coding scheme, PS3.16 CID 3001).
- HL7 aECG: standard library XML after HL7 v3 Annotated ECG (ANSI/HL7 V3 ECG, R1-2004): a rhythm
  ``series`` with a ``sequenceSet`` holding a ``TIME_ABSOLUTE`` GLIST_TS and one SLIST_PQ per lead
  (``MDC_ECG_LEAD_*`` codes, origin + scale in uV, digits).
- MFER: no well-kept Python writer exists; this one follows MFER Part 1 (ISO 22077-1) TLV encoding and
  Part 3-1 (standard 12-lead ECG): big-endian, int16 samples, MWF_SEN in volts x 10^exp, MWF_IVL in Hz,
  MWF_LDN lead codes per channel (MWF_ATT), one MWF_WAV frame of CHN x BLK samples.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from edge.dsp.signal import canonical_lead_name

# MFER Part 1 Table 5-17 / Part 3-1 lead codes
MFER_LEAD_CODES = {"I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8}
MFER_LEAD_CODES.update({"III": 61, "aVR": 62, "aVL": 63, "aVF": 64})
# SCPECG lead codes (DICOM PS3.16 CID 3001)
SCPECG_CODES = {"I": "5.6.3-9-1", "II": "5.6.3-9-2", "V1": "5.6.3-9-3", "V2": "5.6.3-9-4",
                "V3": "5.6.3-9-5", "V4": "5.6.3-9-6", "V5": "5.6.3-9-7", "V6": "5.6.3-9-8",
                "III": "5.6.3-9-61", "aVR": "5.6.3-9-62", "aVL": "5.6.3-9-63", "aVF": "5.6.3-9-64"}  # fmt: skip


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + value


def write_mfer(
    path: Path, x_mv: np.ndarray, fs: float, leads: list[str], lsb_uv: float = 2.5, state_gain: bool = True
) -> Path:
    """MFER file of ``x_mv`` ([C, T] mV) stored as int16 counts of ``lsb_uv`` microvolts each
    (``state_gain=False`` leaves out MWF_SEN: raw counts with no stated resolution)."""
    leads = [canonical_lead_name(n) for n in leads]
    exp10 = -7 if lsb_uv * 10 == round(lsb_uv * 10) else -8
    mantissa = round(lsb_uv * 1e-6 / 10.0**exp10)
    counts = np.round(np.asarray(x_mv, np.float64) * 1000.0 / lsb_uv)
    if np.abs(counts).max() > 32767:
        raise ValueError("signal does not fit int16 at this resolution")
    n_ch, n = counts.shape
    out = bytearray(_tlv(0x40, b"MFR ".ljust(32)))  # MWF_PRE: preamble
    out += _tlv(0x01, b"\x00")  # MWF_BLE: big endian
    out += _tlv(0x03, b"UTF-8")  # MWF_TXC
    out += _tlv(0x08, (1).to_bytes(2, "big"))  # MWF_WFM: standard 12-lead ECG
    out += _tlv(0x0B, bytes([0, 0]) + int(fs).to_bytes(2, "big", signed=True))  # MWF_IVL: fs Hz x 10^0
    if state_gain:
        out += _tlv(0x0C, bytes([0, exp10 & 0xFF]) + mantissa.to_bytes(2, "big", signed=True))  # MWF_SEN, V
    out += _tlv(0x0A, b"\x00")  # MWF_DTP: int16
    out += _tlv(0x04, n.to_bytes(4, "big"))  # MWF_BLK: samples per channel in a block
    out += _tlv(0x05, n_ch.to_bytes(1, "big"))  # MWF_CHN
    out += _tlv(0x06, (1).to_bytes(1, "big"))  # MWF_SEQ: one sequence
    for ch, name in enumerate(leads):  # MWF_ATT: tag, channel number (< 128: one byte), nested MWF_LDN
        nested = _tlv(0x09, bytes([MFER_LEAD_CODES[name]]))
        out += bytes([0x3F, ch, len(nested)]) + nested
    out += _tlv(0x1E, counts.astype(">i2").tobytes())  # MWF_WAV: channel blocks one after another
    out += b"\x80\x00"  # MWF_END
    path.write_bytes(bytes(out))
    return path


def write_hl7_aecg(path: Path, x_mv: np.ndarray, fs: float, leads: list[str], lsb_uv: float = 1.0) -> Path:
    """HL7 aECG XML of ``x_mv`` ([C, T] mV) as integer digits of ``lsb_uv`` microvolts (origin 0)."""
    leads = [canonical_lead_name(n) for n in leads]
    ns = "urn:hl7-org:v3"
    xsi = "http://www.w3.org/2001/XMLSchema-instance"
    ET.register_namespace("", ns)
    ET.register_namespace("xsi", xsi)

    def el(parent, tag, **attrs):
        node = ET.SubElement(parent, f"{{{ns}}}{tag}")
        for k, v in attrs.items():
            node.set(f"{{{xsi}}}type" if k == "xsi_type" else k, str(v))
        return node

    root = ET.Element(f"{{{ns}}}AnnotatedECG")
    el(root, "id", root="2.16.840.1.113883.3.1")
    el(root, "code", code="93000", codeSystem="2.16.840.1.113883.6.12")
    eff = el(root, "effectiveTime")
    el(eff, "low", value="20260101090000")
    el(eff, "high", value="20260101090010")
    series = el(el(root, "component"), "series")
    el(series, "code", code="RHYTHM", codeSystem="2.16.840.1.113883.5.4")
    seq_set = el(el(series, "component"), "sequenceSet")
    time_seq = el(el(seq_set, "component"), "sequence")
    el(time_seq, "code", code="TIME_ABSOLUTE", codeSystem="2.16.840.1.113883.5.4")
    value = el(time_seq, "value", xsi_type="GLIST_TS")
    el(value, "head", value="20260101090000.000")
    el(value, "increment", value=f"{1.0 / fs:.6g}", unit="s")
    for name, row in zip(leads, np.asarray(x_mv, np.float64), strict=True):
        seq = el(el(seq_set, "component"), "sequence")
        el(seq, "code", code=f"MDC_ECG_LEAD_{name.upper() if name.startswith('V') else name}",
           codeSystem="2.16.840.1.113883.6.24")  # fmt: skip
        value = el(seq, "value", xsi_type="SLIST_PQ")
        el(value, "origin", value="0", unit="uV")
        el(value, "scale", value=f"{lsb_uv:g}", unit="uV")
        digits = el(value, "digits")
        digits.text = " ".join(str(int(v)) for v in np.round(row * 1000.0 / lsb_uv))
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_dicom_ecg(path: Path, x_mv: np.ndarray, fs: float, leads: list[str], lsb_uv: float = 1.25) -> Path:
    """DICOM 12-lead ECG waveform of ``x_mv`` ([C, T] mV), int16 with sensitivity ``lsb_uv`` uV."""
    leads = [canonical_lead_name(n) for n in leads]
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.9.1.1"  # 12-lead ECG Waveform Storage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.PatientName = "ECG", "TEST", "TEST^ECG"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    counts = np.round(np.asarray(x_mv, np.float64) * 1000.0 / lsb_uv).astype("<i2")
    wave = Dataset()
    wave.WaveformOriginality = "ORIGINAL"
    wave.NumberOfWaveformChannels = counts.shape[0]
    wave.NumberOfWaveformSamples = counts.shape[1]
    wave.SamplingFrequency = f"{fs:g}"
    wave.WaveformBitsAllocated = 16
    wave.WaveformSampleInterpretation = "SS"
    channels = []
    for name in leads:
        ch = Dataset()
        src = Dataset()
        src.CodeValue, src.CodingSchemeDesignator, src.CodeMeaning = (
            SCPECG_CODES[name],
            "SCPECG",
            f"Lead {name}",
        )
        ch.ChannelSourceSequence = [src]
        ch.ChannelSensitivity = f"{lsb_uv:g}"
        unit = Dataset()
        unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "uV", "UCUM", "microvolt"
        ch.ChannelSensitivityUnitsSequence = [unit]
        ch.ChannelSensitivityCorrectionFactor = "1"
        ch.ChannelBaseline = "0"
        ch.WaveformBitsStored = 16
        channels.append(ch)
    wave.ChannelDefinitionSequence = channels
    wave.WaveformData = counts.T.tobytes()  # multiplexed: sample by sample, all channels
    ds.WaveformSequence = [wave]
    ds.save_as(path, enforce_file_format=True)
    return path


def write_edf(path: Path, x_mv: np.ndarray, fs: float, leads: list[str], lsb_uv: float = 1.0) -> Path:
    """EDF+ file of ``x_mv`` ([C, T] mV) written by pyedflib (a well-kept writer): int16 digital values of
    ``lsb_uv`` microvolts, physical dimension uV, one data record per second."""
    import pyedflib

    leads = [canonical_lead_name(n) for n in leads]
    top = 32767 * lsb_uv
    writer = pyedflib.EdfWriter(str(path), len(leads), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setSignalHeaders([
            {"label": name, "dimension": "uV", "sample_frequency": fs, "physical_max": top,
             "physical_min": -top - lsb_uv, "digital_max": 32767, "digital_min": -32768}
            for name in leads
        ])  # fmt: skip
        writer.writeSamples([np.asarray(row, np.float64) * 1000.0 for row in x_mv])
    finally:
        writer.close()
    return path
