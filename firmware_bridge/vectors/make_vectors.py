"""Generate ``golden.json``, the golden test vectors of wire protocol v1 (PROTOCOL.md, "Test vectors").

The JSON file is the source of truth: the Python and C test suites check their codecs against it in both
directions (fields -> bytes, bytes -> fields) and check every must-fail input's error class. This script
only writes it, deterministically (no randomness, no time stamps); ``--check`` verifies that the committed
file is what the script writes.

    python -m firmware_bridge.vectors.make_vectors          # rewrite golden.json
    python -m firmware_bridge.vectors.make_vectors --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

from firmware_bridge.crc import CRC_CHECK
from firmware_bridge.errors import ProtocolError
from firmware_bridge.frames import (
    Event,
    EventCode,
    FrameType,
    Hello,
    HelloRequest,
    Samples,
    Start,
    Stop,
    build_raw_frame,
    cobs_encode,
    decode_frame,
    encode_frame,
    pack_frame,
)
from firmware_bridge.leads import LEADS_8, LEADS_12
from firmware_bridge.vectors import GOLDEN_PATH

__all__ = ["GOLDEN_PATH", "build_vectors", "render"]


def _wave(n_samples: int, n_channels: int, scale: int, offset: int = 0) -> np.ndarray:
    """A deterministic, ECG-looking-enough int16 block."""
    s = np.arange(n_samples)[:, None]
    c = np.arange(n_channels)[None, :]
    return ((s * 37 + c * 101 + offset) % 211 - 105) * scale + c * 3


def _nonzero_bytes_block(n_samples: int, n_channels: int) -> np.ndarray:
    """Samples whose little-endian bytes are all non-zero: long COBS runs, several 0xFF groups."""
    k = np.arange(n_samples * n_channels).reshape(n_samples, n_channels)
    lo = k % 255 + 1
    hi = (k * 7) % 127 + 1
    return (hi * 256 + lo).astype(np.int16)


def _frames() -> list[tuple[str, str, Any, int]]:
    """(name, description, frame, seq) of every valid vector."""
    edge = np.array([[0, 1], [-1, 32767], [-32768, 256]], dtype=np.int16)
    return [
        ("hello_12_leads", "12-lead device, 500 Hz, 1 uV per count", Hello(500, LEADS_12, 1000, 1, 2, "ECG-SIM-0001"), 0),
        ("hello_8_channels_utf8_id", "8 channels (I, II, V1-V6), non-ASCII device_id", Hello(250, LEADS_8, 2500, 0, 9, "心電計-01"), 1),
        ("hello_empty_id_seq_65535", "one channel, empty device_id, max lsb_nv, seq 65535", Hello(1000, (1,), 0xFFFFFFFF, 255, 255, ""), 65535),
        ("hello_reordered_leads_fs_256", "leads in vendor order; fs 256 puts 0x00 in the payload", Hello(256, (6, 0, 11, 1), 1, 0, 1, "x"), 7),
        ("samples_small_with_zero_bytes", "2 channels x 3 samples: extremes and 0x00 bytes", Samples(0, edge[:, :2], 0), 2),
        ("samples_all_zero", "payload full of 0x00", Samples(0, np.zeros((4, 3), np.int16), 0), 3),
        ("samples_12x10_multi_group", "12 x 10 samples: decoded frame of 256 bytes (> 254)", Samples(10, _wave(10, 12, 7), 0), 4),
        ("samples_long_nonzero_runs", "12 x 40 samples without 0x00 bytes: several full 0xFF COBS groups", Samples(1000, _nonzero_bytes_block(40, 12), 0), 5),
        ("samples_max_frame", "255 samples x 12 channels: the largest SAMPLES frame", Samples(123456, _wave(255, 12, 13, 5), 0), 6),
        ("samples_lead_off_bits", "8 channels with lead_off 0x0085, first_sample near the u32 wrap", Samples(0xFFFFFFF0, _wave(5, 8, 99), 0x0085), 8),
        ("samples_all_leads_off_seq_65535", "12 channels all off (0x0FFF), seq 65535, first_sample 0xFFFFFFFF", Samples(0xFFFFFFFF, np.zeros((1, 12), np.int16), 0x0FFF), 65535),
        ("samples_zero_samples", "n_samples 0: lead_off status only", Samples(77, np.zeros((0, 12), np.int16), 0x0001), 9),
        ("event_lead_off", "lead-off change at sample 1234, detail = new mask u16", Event(EventCode.LEAD_OFF, 1234, struct.pack("<H", 0x0004)), 10),
        ("event_button", "button pressed, no detail", Event(EventCode.BUTTON, 0, b""), 11),
        ("event_battery_low", "battery low", Event(EventCode.BATTERY_LOW, 0x01020304, b""), 12),
        ("event_device_error", "device error with a UTF-8 message", Event(EventCode.DEVICE_ERROR, 500, b"ADC overrun"), 13),
        ("event_unknown_code", "a code this version does not define is passed through", Event(200, 1, b"\x00\x01"), 14),
        ("start_no_fs", "START at the current rate", Start(), 0),
        ("start_fs_500", "START at 500 Hz", Start(500), 1),
        ("start_fs_256_seq_256", "START at 256 Hz, seq 256: 0x00 bytes in header and payload", Start(256), 256),
        ("stop", "STOP", Stop(), 2),
        ("hello_request_seq_65535", "HELLO_REQUEST with seq 65535", HelloRequest(), 65535),
    ]  # fmt: skip


def _hello_payload(fs=500, n=None, lsb=1000, leads=(0, 1), fw=(1, 0), device_id=b"") -> bytes:
    n = len(leads) if n is None else n
    return struct.pack("<HBI", fs, n, lsb) + bytes(leads) + bytes(fw) + device_id


def _samples_payload(first=0, n_channels=2, n_samples=1, lead_off=0, data: bytes | None = None) -> bytes:
    body = bytes(2 * n_channels * n_samples) if data is None else data
    return struct.pack("<IBBH", first, n_channels, n_samples, lead_off) + body


def _must_fail() -> list[tuple[str, str, bytes, str]]:
    """(name, description, wire segment without delimiter, expected error class)."""
    good = pack_frame(Samples(0, np.array([[1, 2], [3, 4]], np.int16)), 5)
    hello = pack_frame(Hello(500, LEADS_12, 1000, 1, 0, "dev"), 0)
    flip = bytearray(good)
    flip[-1] ^= 0x01
    payload_flip = bytearray(good)
    payload_flip[10] ^= 0x40
    seq_flip = bytearray(good)
    seq_flip[2] ^= 0x01
    enc_hello = cobs_encode(hello)
    H, S = FrameType.HELLO, FrameType.SAMPLES
    raw = build_raw_frame
    return [
        ("crc_bit_flipped", "last CRC bit flipped", cobs_encode(bytes(flip)), "CrcError"),
        ("payload_bit_flipped", "one payload bit flipped, CRC unchanged", cobs_encode(bytes(payload_flip)), "CrcError"),
        ("seq_bit_flipped", "one header bit flipped, CRC unchanged", cobs_encode(bytes(seq_flip)), "CrcError"),
        ("cobs_last_group_truncated", "last byte of the COBS segment missing", enc_hello[:-1], "CobsError"),
        ("cobs_code_past_end", "a code byte pointing past the end of the segment", b"\x05\x01\x02", "CobsError"),
        ("cobs_code_past_end_long", "valid frame followed by a code byte claiming 9 more bytes", cobs_encode(good) + b"\x0a\x01", "CobsError"),
        ("too_short_7_bytes", "decoded frame of 7 bytes (< header + crc)", cobs_encode(good[:7]), "LengthError"),
        ("single_byte", "a lone byte between delimiters", b"\x01", "LengthError"),
        ("truncated_frame", "the last 3 bytes of a frame lost", cobs_encode(good[:-3]), "LengthError"),
        ("extra_byte", "one byte too many after the CRC", cobs_encode(good + b"\x00"), "LengthError"),
        ("payload_len_too_large", "payload_len 2 more than carried (CRC valid)", cobs_encode(raw(S, 1, _samples_payload(), payload_len=10)), "LengthError"),
        ("payload_len_too_small", "payload_len 1 less than carried (CRC valid)", cobs_encode(raw(S, 1, _samples_payload(), payload_len=11)), "LengthError"),
        ("wrong_version_2", "version 2 (CRC valid)", cobs_encode(raw(S, 1, _samples_payload(), version=2)), "FrameFormatError"),
        ("wrong_version_0", "version 0 (CRC valid)", cobs_encode(raw(S, 1, _samples_payload(), version=0)), "FrameFormatError"),
        ("unknown_type", "type 0x7F (CRC valid)", cobs_encode(raw(0x7F, 1, b"\x01\x02")), "FrameFormatError"),
        ("unknown_type_zero", "type 0x00 (CRC valid)", cobs_encode(raw(0x00, 1, b"")), "FrameFormatError"),
        ("hello_zero_channels", "HELLO n_channels 0", cobs_encode(raw(H, 0, _hello_payload(leads=()))), "FrameFormatError"),
        ("hello_13_channels", "HELLO n_channels 13", cobs_encode(raw(H, 0, _hello_payload(leads=tuple(range(12)) + (0,)))), "FrameFormatError"),
        ("hello_duplicate_leads", "HELLO channel_leads [1, 1]", cobs_encode(raw(H, 0, _hello_payload(leads=(1, 1)))), "FrameFormatError"),
        ("hello_lead_code_12", "HELLO lead code 12", cobs_encode(raw(H, 0, _hello_payload(leads=(0, 12)))), "FrameFormatError"),
        ("hello_fs_zero", "HELLO fs_hz 0", cobs_encode(raw(H, 0, _hello_payload(fs=0))), "FrameFormatError"),
        ("hello_lsb_zero", "HELLO lsb_nv 0", cobs_encode(raw(H, 0, _hello_payload(lsb=0))), "FrameFormatError"),
        ("hello_short", "HELLO payload ends inside channel_leads", cobs_encode(raw(H, 0, _hello_payload(n=4, leads=(0, 1), fw=()))), "FrameFormatError"),
        ("hello_no_fw_version", "HELLO payload without fw_major/fw_minor", cobs_encode(raw(H, 0, _hello_payload(fw=()))), "FrameFormatError"),
        ("hello_fixed_part_short", "HELLO payload of 6 bytes", cobs_encode(raw(H, 0, b"\xf4\x01\x01\xe8\x03\x00")), "FrameFormatError"),
        ("hello_bad_utf8", "device_id bytes ff fe", cobs_encode(raw(H, 0, _hello_payload(device_id=b"\xff\xfe"))), "FrameFormatError"),
        ("hello_overlong_utf8", "device_id overlong encoding c0 af", cobs_encode(raw(H, 0, _hello_payload(device_id=b"\xc0\xaf"))), "FrameFormatError"),
        ("hello_surrogate_utf8", "device_id encodes a UTF-16 surrogate (ed a0 80)", cobs_encode(raw(H, 0, _hello_payload(device_id=b"\xed\xa0\x80"))), "FrameFormatError"),
        ("hello_truncated_utf8", "device_id ends inside a multi-byte character", cobs_encode(raw(H, 0, _hello_payload(device_id=b"ab\xe5\xbf"))), "FrameFormatError"),
        ("hello_utf8_above_10ffff", "device_id encodes U+110000 (f4 90 80 80)", cobs_encode(raw(H, 0, _hello_payload(device_id=b"\xf4\x90\x80\x80"))), "FrameFormatError"),
        ("samples_count_mismatch", "2 x 2 samples announced, 3 carried", cobs_encode(raw(S, 3, _samples_payload(n_channels=2, n_samples=2, data=bytes(6)))), "FrameFormatError"),
        ("samples_zero_channels", "SAMPLES n_channels 0", cobs_encode(raw(S, 3, _samples_payload(n_channels=0, n_samples=1))), "FrameFormatError"),
        ("samples_13_channels", "SAMPLES n_channels 13", cobs_encode(raw(S, 3, _samples_payload(n_channels=13, n_samples=1))), "FrameFormatError"),
        ("samples_lead_off_beyond_channels", "lead_off bit 2 set with 2 channels", cobs_encode(raw(S, 3, _samples_payload(lead_off=0x0004))), "FrameFormatError"),
        ("samples_short_header", "SAMPLES payload of 7 bytes", cobs_encode(raw(S, 3, bytes(7))), "FrameFormatError"),
        ("event_short", "EVENT payload of 4 bytes", cobs_encode(raw(FrameType.EVENT, 4, b"\x01\x00\x00\x00")), "FrameFormatError"),
        ("start_one_byte", "START payload of 1 byte", cobs_encode(raw(FrameType.START, 0, b"\xf4")), "FrameFormatError"),
        ("start_three_bytes", "START payload of 3 bytes", cobs_encode(raw(FrameType.START, 0, b"\xf4\x01\x00")), "FrameFormatError"),
        ("start_fs_zero", "START fs_hz 0", cobs_encode(raw(FrameType.START, 0, b"\x00\x00")), "FrameFormatError"),
        ("stop_with_payload", "STOP with a payload byte", cobs_encode(raw(FrameType.STOP, 0, b"\x01")), "FrameFormatError"),
        ("hello_request_with_payload", "HELLO_REQUEST with a payload", cobs_encode(raw(FrameType.HELLO_REQUEST, 0, b"\x00\x00")), "FrameFormatError"),
    ]  # fmt: skip


def _cobs_cases() -> list[tuple[str, bytes]]:
    ones = bytes(range(1, 255)) * 3
    return [
        ("empty", b""), ("one_zero", b"\x00"), ("two_zeros", b"\x00\x00"), ("one_byte", b"\x11"),
        ("zero_inside", b"\x11\x22\x00\x33"), ("trailing_zero", b"\x11\x22\x33\x44\x00"),
        ("nonzero_253", ones[:253]), ("nonzero_254", ones[:254]), ("nonzero_255", ones[:255]),
        ("nonzero_254_then_zero", ones[:254] + b"\x00"), ("nonzero_254_zero_byte", ones[:254] + b"\x00\x01"),
        ("zero_then_nonzero_254", b"\x00" + ones[:254]), ("nonzero_508", ones[:508]), ("nonzero_509", ones[:509]),
        ("zeros_300", bytes(300)),
    ]  # fmt: skip


def _stream(frames: list[dict], fails: list[dict]) -> dict[str, Any]:
    """One byte stream mixing good frames, must-fail segments and a garbage run, with the expected stats."""
    wire = bytearray(b"\x00")  # a sender starts with a delimiter so the receiver is in sync
    names: list[str] = []
    counts = {"CobsError": 0, "LengthError": 0, "CrcError": 0, "FrameFormatError": 0}
    chosen: list[dict] = []
    for error in counts:  # the first must-fail vector of each error class, then one more of each
        chosen += [f for f in fails if f["error"] == error][:2]
    bad = iter(chosen)
    for vec in [f for f in frames if f["type"] in ("HELLO", "SAMPLES", "EVENT")]:
        wire += bytes.fromhex(vec["encoded_hex"])
        names.append(vec["name"])
        fail = next(bad, None)
        if fail is not None:
            wire += bytes.fromhex(fail["segment_hex"]) + b"\x00\x00"  # bad frame, then an empty segment
            counts[fail["error"]] += 1
    wire += b"\x00"  # empty segment: ignored
    return {
        "description": "good device frames (seq not consecutive) with must-fail segments and empty segments "
        "between them; decoding it yields exactly expected_frames and the expected error counts",
        "wire_hex": wire.hex(),
        "expected_frames": names,
        "expected_errors": {"cobs_errors": counts["CobsError"], "length_errors": counts["LengthError"],
                            "crc_errors": counts["CrcError"], "format_errors": counts["FrameFormatError"]},
    }  # fmt: skip


def build_vectors() -> dict[str, Any]:
    frames = []
    for name, desc, frame, seq in _frames():
        decoded = pack_frame(frame, seq)
        wire = encode_frame(frame, seq)
        assert decode_frame(wire[:-1]).frame == frame
        frames.append({"name": name, "description": desc, "type": frame.TYPE.name, "type_code": int(frame.TYPE),
                       "seq": seq, "fields": frame.to_fields(), "decoded_hex": decoded.hex(),
                       "encoded_hex": wire.hex()})  # fmt: skip
    fails = []
    for name, desc, segment, error in _must_fail():
        assert 0 not in segment, name
        try:
            decode_frame(segment)
        except ProtocolError as exc:
            if type(exc).__name__ != error:
                raise AssertionError(f"{name}: expected {error}, got {type(exc).__name__}: {exc}") from None
        else:
            raise AssertionError(f"{name}: decoded without error")
        fails.append({"name": name, "description": desc, "segment_hex": segment.hex(), "error": error})
    cobs_vectors = [
        {"name": n, "decoded_hex": d.hex(), "encoded_hex": cobs_encode(d).hex()} for n, d in _cobs_cases()
    ]
    return {
        "protocol": "ECG wire protocol v1 (firmware_bridge/PROTOCOL.md)",
        "generator": "python -m firmware_bridge.vectors.make_vectors",
        "notes": "encoded_hex: wire bytes incl. the trailing 00 delimiter; decoded_hex: header|payload|crc before "
        "COBS; segment_hex: wire bytes between two delimiters; samples: [n_samples][n_channels]",
        "crc": {"algorithm": "CRC-16/CCITT-FALSE", "input_ascii": "123456789", "value": CRC_CHECK},
        "cobs": cobs_vectors,
        "frames": frames,
        "must_fail": fails,
        "stream": _stream(frames, fails),
    }


def render(vectors: dict[str, Any]) -> str:
    """JSON text with one vector per line (readable diffs, simple for the C test's parser)."""
    lines = ["{"]
    keys = list(vectors)
    for i, key in enumerate(keys):
        value, comma = vectors[key], "," if i < len(keys) - 1 else ""
        if isinstance(value, list):
            items = ",\n".join("    " + json.dumps(v, ensure_ascii=False) for v in value)
            lines.append(f"  {json.dumps(key)}: [\n{items}\n  ]{comma}")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=GOLDEN_PATH, help="where to write (default: golden.json)")
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    args = parser.parse_args(argv)
    text = render(build_vectors())
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(
                f"{args.out} is out of date: run python -m firmware_bridge.vectors.make_vectors",
                file=sys.stderr,
            )
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
