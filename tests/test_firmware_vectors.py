"""Golden vectors (firmware_bridge/vectors/golden.json) in both directions, in Python.

The JSON file is the source of truth; the C tests (test_firmware_c.py) check the same file.
"""

from __future__ import annotations

import pytest

from firmware_bridge.crc import crc16_ccitt_false
from firmware_bridge.errors import ERROR_CLASSES
from firmware_bridge.frames import (
    cobs_decode,
    cobs_encode,
    decode_frame,
    encode_frame,
    frame_from_fields,
    pack_frame,
)
from firmware_bridge.stream import StreamDecoder
from firmware_bridge.vectors import GOLDEN_PATH, load_golden
from firmware_bridge.vectors.make_vectors import build_vectors, render

GOLDEN = load_golden()
_STAT = {"CobsError": "cobs_errors", "LengthError": "length_errors", "CrcError": "crc_errors",
         "FrameFormatError": "format_errors"}  # fmt: skip


def test_golden_file_matches_its_generator():
    assert GOLDEN_PATH.read_text(encoding="utf-8") == render(build_vectors()), (
        "golden.json is out of date: python -m firmware_bridge.vectors.make_vectors"
    )


def test_vectors_cover_every_type_and_edge_case():
    types = {v["type"] for v in GOLDEN["frames"]}
    assert types == {"HELLO", "SAMPLES", "EVENT", "START", "STOP", "HELLO_REQUEST"}
    decoded = [bytes.fromhex(v["decoded_hex"]) for v in GOLDEN["frames"]]
    assert any(len(d) > 254 for d in decoded) and any(0 in d[6:-2] for d in decoded)
    assert any(v["seq"] == 65535 for v in GOLDEN["frames"])
    assert any(v["type"] == "HELLO" and v["fields"]["device_id"] == "" for v in GOLDEN["frames"])
    assert any(v["fields"].get("n_channels") == 12 for v in GOLDEN["frames"])
    assert any(v["fields"].get("lead_off") for v in GOLDEN["frames"])
    assert {v["error"] for v in GOLDEN["must_fail"]} == set(_STAT)


def test_crc_vector():
    c = GOLDEN["crc"]
    assert crc16_ccitt_false(c["input_ascii"].encode()) == c["value"]


@pytest.mark.parametrize("vec", GOLDEN["cobs"], ids=lambda v: v["name"])
def test_cobs_vectors(vec):
    data, enc = bytes.fromhex(vec["decoded_hex"]), bytes.fromhex(vec["encoded_hex"])
    assert cobs_encode(data) == enc
    assert cobs_decode(enc) == data


@pytest.mark.parametrize("vec", GOLDEN["frames"], ids=lambda v: v["name"])
def test_frame_vectors_both_directions(vec):
    frame = frame_from_fields(vec["type"], vec["fields"])
    assert vec["type_code"] == frame.TYPE
    assert pack_frame(frame, vec["seq"]).hex() == vec["decoded_hex"]  # fields -> bytes
    assert encode_frame(frame, vec["seq"]).hex() == vec["encoded_hex"]
    decoded = decode_frame(bytes.fromhex(vec["encoded_hex"])[:-1])  # bytes -> fields
    assert decoded.seq == vec["seq"]
    assert decoded.frame.to_fields() == vec["fields"]
    assert decoded.to_json_dict() == {"type": vec["type"], "seq": vec["seq"], **vec["fields"]}


@pytest.mark.parametrize("vec", GOLDEN["must_fail"], ids=lambda v: v["name"])
def test_must_fail_vectors(vec):
    segment = bytes.fromhex(vec["segment_hex"])
    with pytest.raises(ERROR_CLASSES[vec["error"]]) as info:
        decode_frame(segment)
    assert type(info.value).__name__ == vec["error"]  # exactly that class, not a sibling
    dec = StreamDecoder()
    assert dec.feed(b"\x00" + segment + b"\x00") == []
    assert getattr(dec.stats, _STAT[vec["error"]]) == 1 and dec.stats.errors == 1


def test_stream_vector():
    s = GOLDEN["stream"]
    dec = StreamDecoder()
    wire = bytes.fromhex(s["wire_hex"])
    got = [d for i in range(len(wire)) for d in dec.feed(wire[i : i + 1])]
    by_name = {v["name"]: v for v in GOLDEN["frames"]}
    assert [d.frame.to_fields() for d in got] == [by_name[n]["fields"] for n in s["expected_frames"]]
    assert {k: getattr(dec.stats, k) for k in s["expected_errors"]} == s["expected_errors"]
