"""Wire protocol v1, bottom layers: CRC, COBS, frame packing and validation (firmware_bridge/PROTOCOL.md)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from firmware_bridge.crc import CRC_CHECK, crc16_ccitt_false
from firmware_bridge.errors import CobsError, CrcError, FrameFormatError, LengthError, ProtocolError
from firmware_bridge.frames import (
    MAX_ENCODED_FRAME_SIZE,
    Event,
    EventCode,
    FrameType,
    Hello,
    HelloRequest,
    Samples,
    Start,
    Stop,
    build_raw_frame,
    cobs_decode,
    cobs_encode,
    cobs_max_encoded_size,
    decode_frame,
    encode_frame,
    frame_from_fields,
    pack_frame,
    unpack_frame,
)
from firmware_bridge.leads import LEAD_NAMES, LEADS_8, LEADS_12, lead_code, lead_name

EXAMPLES = [
    Hello(500, LEADS_12, 1000, 1, 2, "ECG-SIM"),
    Hello(250, LEADS_8, 2500, 0, 0, "心電計"),
    Samples(0, np.arange(24, dtype=np.int16).reshape(2, 12)),
    Samples(0xFFFFFFFF, [[-32768, 32767]], lead_off=0b11),
    Samples(5, np.zeros((0, 3), np.int16)),
    Event(EventCode.LEAD_OFF, 10, b"\x01\x00"),
    Event(99, 0),
    Start(),
    Start(1000),
    Stop(),
    HelloRequest(),
]


def test_crc_check_value_and_continuation():
    assert crc16_ccitt_false(b"123456789") == CRC_CHECK == 0x29B1
    assert crc16_ccitt_false(b"6789", crc16_ccitt_false(b"12345")) == CRC_CHECK
    assert crc16_ccitt_false(b"") == 0xFFFF


@pytest.mark.parametrize("fill", [b"\x00", b"\x01", b"\xff", b"\x00\x01", b"\x01\x02\x00"])
def test_cobs_length_sweep_round_trips(fill):
    for n in range(0, 601):
        data = (fill * (n // len(fill) + 1))[:n]
        enc = cobs_encode(data)
        assert 0 not in enc
        assert len(enc) <= cobs_max_encoded_size(n)
        assert cobs_decode(enc) == data


def test_cobs_full_group_at_end_has_no_trailing_code():
    data = bytes(range(1, 255))
    assert cobs_encode(data) == b"\xff" + data
    assert cobs_encode(data + b"\x00") == b"\xff" + data + b"\x01\x01"


@pytest.mark.parametrize("bad", [b"\x02", b"\x05\x01\x02", b"\x01\x00", b"\x00", b"\x03\x01\x00"])
def test_cobs_errors_raise_cobs_error(bad):
    with pytest.raises(CobsError):
        cobs_decode(bad)


@pytest.mark.parametrize("frame", EXAMPLES, ids=lambda f: type(f).__name__)
def test_frames_round_trip(frame):
    for seq in (0, 1, 255, 256, 65535):
        wire = encode_frame(frame, seq)
        assert wire.endswith(b"\x00") and wire.count(0) == 1
        decoded = decode_frame(wire[:-1])
        assert decoded.seq == seq
        assert decoded.frame == frame
        assert decoded.type == frame.TYPE
        assert unpack_frame(pack_frame(frame, seq)) == decoded
        assert frame_from_fields(frame.TYPE.name, frame.to_fields()) == frame
        json.dumps(decoded.to_json_dict())  # JSON-ready


def test_payload_length_sweep_across_cobs_boundaries():
    for n in range(0, 601):
        detail = bytes((i * 7 + 1) % 256 for i in range(n))  # contains zeros every 256 bytes or so
        ev = Event(EventCode.DEVICE_ERROR, n, detail)
        assert decode_frame(encode_frame(ev, n)[:-1]).frame == ev
        nonzero = Event(5, 0x01010101, bytes((i % 255) + 1 for i in range(n)))
        assert decode_frame(encode_frame(nonzero, 0x0101)[:-1]).frame == nonzero


def test_samples_sizes_and_layout():
    for n_channels in range(1, 13):
        for n_samples in (0, 1, 10, 21, 255):
            data = (
                (np.arange(n_samples * n_channels) * 97 - 3000)
                .astype(np.int16)
                .reshape(n_samples, n_channels)
            )
            frame = Samples(7, data, lead_off=(1 << n_channels) - 1)
            wire = encode_frame(frame, 3)
            assert len(wire) <= MAX_ENCODED_FRAME_SIZE
            got = decode_frame(wire[:-1]).frame
            assert got == frame and got.samples.dtype == np.int16
    raw = pack_frame(Samples(1, [[1, 2], [3, 4]]), 0)
    assert raw[6:14] == struct.pack("<IBBH", 1, 2, 2, 0)
    assert raw[14:22] == struct.pack("<4h", 1, 2, 3, 4)  # interleaved by sample


def test_samples_are_read_only_int16():
    frame = Samples(0, [[1, -1]])
    assert frame.samples.dtype == np.int16 and frame.samples.shape == (1, 2)
    with pytest.raises(ValueError):
        frame.samples[0, 0] = 5
    assert frame == Samples(0, np.array([[1, -1]], np.int16))
    assert frame != Samples(0, [[1, -2]])
    assert hash(frame) == hash(Samples(0, [[1, -1]]))


def test_hello_layout():
    raw = pack_frame(Hello(500, (0, 1), 1000, 3, 4, "ab"), 9)
    assert raw[:6] == bytes([1, 1, 9, 0, 13, 0])
    assert raw[6:19] == struct.pack("<HBI", 500, 2, 1000) + bytes([0, 1, 3, 4]) + b"ab"
    assert raw[19:] == struct.pack("<H", crc16_ccitt_false(raw[:19]))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Hello(0, (0,), 1000),
        lambda: Hello(500, (), 1000),
        lambda: Hello(500, tuple(range(12)) + (0,), 1000),
        lambda: Hello(500, (1, 1), 1000),
        lambda: Hello(500, (12,), 1000),
        lambda: Hello(500, (0,), 0),
        lambda: Hello(500, (0,), 1000, 256),
        lambda: Hello(500, (0,), 1000, device_id="\udc80"),
        lambda: Samples(-1, [[0]]),
        lambda: Samples(0, [[40000]]),
        lambda: Samples(0, [[0.5]]),
        lambda: Samples(0, np.zeros((256, 1), np.int16)),
        lambda: Samples(0, np.zeros((1, 13), np.int16)),
        lambda: Samples(0, np.zeros((1, 0), np.int16)),
        lambda: Samples(0, [1, 2, 3]),
        lambda: Samples(0, [[0, 0]], lead_off=0b100),
        lambda: Event(256, 0),
        lambda: Event(1, 2**32),
        lambda: Start(0),
        lambda: Start(70000),
    ],
)
def test_invalid_fields_raise_frame_format_error(make):
    with pytest.raises(FrameFormatError):
        make()
    with pytest.raises(ValueError):  # the tree derives from ValueError
        make()


def test_check_order_gives_one_class_per_fault():
    good = pack_frame(Samples(0, [[1, 2]]), 1)
    with pytest.raises(LengthError):
        unpack_frame(good[:7])
    with pytest.raises(LengthError):
        unpack_frame(good[:-1])  # payload_len checked before the CRC
    with pytest.raises(CrcError):
        unpack_frame(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(FrameFormatError, match="version"):
        unpack_frame(build_raw_frame(FrameType.SAMPLES, 1, good[6:-2], version=2))
    with pytest.raises(FrameFormatError, match="type"):
        unpack_frame(build_raw_frame(0x42, 1, b""))
    with pytest.raises(FrameFormatError):
        unpack_frame(build_raw_frame(FrameType.STOP, 1, b"\x00"))
    with pytest.raises(ProtocolError):
        decode_frame(b"\x00")


def test_lead_codes():
    names = {"i": 0, "II": 1, "iii": 2, "AVR": 3, "avl": 4, "aVF": 5, "v1": 6, "V6": 11}
    assert {n: lead_code(n) for n in names} == names
    assert [lead_name(c) for c in LEADS_8] == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert len(LEAD_NAMES) == 12
    with pytest.raises(KeyError):
        lead_code("V7")
