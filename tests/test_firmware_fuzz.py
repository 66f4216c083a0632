"""Fuzzing the receiver: random bytes, truncations, bit flips, frames split at every byte boundary.

Properties: the stream decoder never raises, never returns a frame that failed a check, and recovers every
intact frame around corruption. Uses hypothesis when installed, and seeded loops that always run.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from firmware_bridge.errors import ProtocolError
from firmware_bridge.frames import Event, Hello, Samples, Start, Stop, decode_frame, encode_frame
from firmware_bridge.leads import LEADS_8
from firmware_bridge.stream import StreamDecoder

FRAMES = [
    Hello(500, LEADS_8, 1000, 1, 0, "fuzz"),
    Samples(0, (np.arange(120) * 311 % 65536 - 32768).astype(np.int16).reshape(10, 12), 0x0003),
    Samples(10, np.zeros((3, 2), np.int16)),
    Samples(13, np.full((30, 12), 0x0101, np.int16)),  # long runs without zero bytes
    Event(1, 5, b"\x02\x00"),
    Start(250),
    Stop(),
]


def _random_frame(rng: random.Random):
    kind = rng.randrange(4)
    if kind == 0:
        n_ch = rng.randint(1, 12)
        data = np.array([rng.randint(-32768, 32767) for _ in range(n_ch * rng.randint(0, 25))], np.int16)
        return Samples(rng.randrange(2**32), data.reshape(-1, n_ch), rng.randrange(1 << n_ch))
    if kind == 1:
        leads = rng.sample(range(12), rng.randint(1, 12))
        return Hello(
            rng.randint(1, 65535), leads, rng.randint(1, 2**32 - 1), device_id="id" * rng.randint(0, 200)
        )
    if kind == 2:
        return Event(
            rng.randrange(256),
            rng.randrange(2**32),
            bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))),
        )
    return Start(rng.choice([None, rng.randint(1, 65535)]))


def test_every_truncation_and_bit_flip_is_rejected():
    for frame in FRAMES:
        segment = encode_frame(frame, 4242)[:-1]
        for n in range(len(segment)):
            with pytest.raises(ProtocolError):
                decode_frame(segment[:n])
        for i in range(len(segment)):
            for bit in range(8):
                bad = bytearray(segment)
                bad[i] ^= 1 << bit
                with pytest.raises(ProtocolError):  # CRC-16 catches every single-bit error
                    decode_frame(bytes(bad))


def test_split_at_every_byte_boundary():
    wire = b"\x00" + b"".join(encode_frame(f, i) for i, f in enumerate(FRAMES))
    for cut in range(len(wire) + 1):
        dec = StreamDecoder()
        got = dec.feed(wire[:cut]) + dec.feed(wire[cut:])
        assert [d.frame for d in got] == FRAMES, cut
        assert dec.stats.errors == 0


@pytest.mark.parametrize("seed", range(20))
def test_random_corruption_recovers_every_intact_frame(seed):
    rng = random.Random(seed)
    wire = bytearray(b"\x00")
    expected = []
    for seq in range(60):
        frame = _random_frame(rng)
        enc = bytearray(encode_frame(frame, seq))
        intact = bytes(enc)
        fate = rng.random()
        if fate < 0.15:  # flip a few bits (never the delimiter); two flips of one bit cancel out
            for _ in range(rng.randint(1, 3)):
                enc[rng.randrange(len(enc) - 1)] ^= 1 << rng.randrange(8)
        elif fate < 0.25:  # truncate: the rest of the frame is lost, the delimiter survives
            enc = enc[: rng.randrange(len(enc) - 1)] + b"\x00"
        if bytes(enc) == intact:
            expected.append((seq, frame))
        if rng.random() < 0.2:  # line noise, ended by a delimiter
            wire += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))) + b"\x00"
        wire += enc
    dec = StreamDecoder()
    got = []
    pos = 0
    while pos < len(wire):
        step = rng.randint(1, 700)
        got += dec.feed(bytes(wire[pos : pos + step]))
        pos += step
    got_pairs = [(d.seq, d.frame) for d in got]
    assert got_pairs == expected  # every intact frame, in order, and nothing else


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_never_raise(seed):
    rng = random.Random(seed)
    dec = StreamDecoder(max_frame_bytes=512)
    for _ in range(200):
        chunk = bytes(rng.choice([0, 1, 2, 0xFF, rng.randrange(256)]) for _ in range(rng.randint(0, 300)))
        for d in dec.feed(chunk):
            decode_frame(encode_frame(d.frame, d.seq)[:-1])  # whatever came out is a valid frame
    assert dec.pending <= 512


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=400), max_size=20))
def test_hypothesis_arbitrary_chunks_never_raise(chunks):
    dec = StreamDecoder(max_frame_bytes=300)
    for chunk in chunks:
        dec.feed(chunk)
    dec.close()
    assert dec.pending == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.data())
def test_hypothesis_samples_round_trip(first, n_channels, data):
    n = data.draw(st.integers(0, 255))
    values = data.draw(st.lists(st.integers(-32768, 32767), min_size=n * n_channels, max_size=n * n_channels))
    lead_off = data.draw(st.integers(0, (1 << n_channels) - 1))
    seq = data.draw(st.integers(0, 65535))
    frame = Samples(first, np.array(values, np.int16).reshape(n, n_channels), lead_off)
    garbage = data.draw(st.binary(max_size=50))
    dec = StreamDecoder()
    got = dec.feed(garbage + b"\x00" + encode_frame(frame, seq))
    assert [(d.seq, d.frame) for d in got] == [(seq, frame)]
