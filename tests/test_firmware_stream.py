"""Stream reassembly, sequence tracking and missing-sample detection (PROTOCOL.md sections 5-7)."""

from __future__ import annotations

import numpy as np

from firmware_bridge.frames import Event, Hello, Samples, Start, encode_frame
from firmware_bridge.leads import LEADS_12
from firmware_bridge.stream import StreamDecoder
from firmware_bridge.tracker import Gap, SampleTracker


def _samples(first: int, n: int = 10, channels: int = 12) -> Samples:
    return Samples(first, (np.arange(n * channels) % 300).astype(np.int16).reshape(n, channels))


def _stream(n_frames: int = 20, seq0: int = 0) -> tuple[bytes, list]:
    frames = [Hello(500, LEADS_12, 1000)] + [_samples(10 * i) for i in range(n_frames - 1)]
    wire = b"\x00" + b"".join(encode_frame(f, (seq0 + i) & 0xFFFF) for i, f in enumerate(frames))
    return wire, frames


def test_many_frames_in_one_chunk_and_byte_by_byte():
    wire, frames = _stream()
    dec = StreamDecoder()
    assert [d.frame for d in dec.feed(wire)] == frames
    assert dec.stats.frames_ok == len(frames) and dec.stats.errors == 0 and dec.pending == 0
    dec = StreamDecoder()
    got = [d.frame for b in wire for d in dec.feed(bytes([b]))]
    assert got == frames
    dec = StreamDecoder()
    assert [d.frame for d in dec.iter_frames(wire[i : i + 37] for i in range(0, len(wire), 37))] == frames


def test_garbage_between_frames_is_counted_and_skipped():
    a, b = encode_frame(_samples(0), 0), encode_frame(_samples(10), 1)
    dec = StreamDecoder()
    got = dec.feed(b"\x00" + a + b"\x13\x37\xff\x00" + b"\x05\x01\x00" + b)
    assert [d.frame.first_sample for d in got] == [0, 10]
    assert dec.stats.cobs_errors == 2 and dec.stats.bytes_discarded == 5
    assert dec.stats.seq_gaps == 0


def test_leading_partial_frame_is_discarded_silently():
    wire = encode_frame(_samples(0), 0) + encode_frame(_samples(10), 1)
    dec = StreamDecoder()
    got = dec.feed(wire[5:])  # joined mid-frame
    assert [d.frame.first_sample for d in got] == [10]
    assert dec.stats.errors == 0 and dec.stats.bytes_discarded == len(encode_frame(_samples(0), 0)) - 6
    # ...but a stream that starts exactly at a frame loses nothing
    assert len(StreamDecoder().feed(wire)) == 2


def test_empty_segments_are_ignored():
    dec = StreamDecoder()
    assert len(dec.feed(b"\x00\x00\x00" + encode_frame(Start(), 0) + b"\x00\x00")) == 1
    assert dec.stats.errors == 0 and dec.stats.bytes_discarded == 0


def test_overflow_is_bounded_and_recovers():
    dec = StreamDecoder(max_frame_bytes=1000)
    for _ in range(100):
        assert dec.feed(b"\x01" * 997) == []
        assert dec.pending <= 1000
    got = dec.feed(b"\x00" + encode_frame(_samples(0), 3))
    assert [d.seq for d in got] == [3]
    assert dec.stats.overflow == 1
    assert dec.stats.bytes_discarded == 99_700


def test_default_cap_accepts_the_largest_frame():
    big = Event(4, 0, b"\x01" * (65535 - 5))  # payload_len 65535, no zero bytes: the longest COBS
    dec = StreamDecoder()
    assert [d.frame for d in dec.feed(b"\x00" + encode_frame(big, 0))] == [big]


def test_seq_gaps_wrap_and_restarts():
    dec = StreamDecoder()
    seqs = [65533, 65534, 65535, 0, 1, 4, 5]  # wrap is not a gap; 1 -> 4 loses 2
    dec.feed(b"".join(encode_frame(_samples(0), s) for s in seqs))
    assert dec.stats.seq_gaps == 1 and dec.stats.frames_lost == 2 and dec.stats.seq_resets == 0
    dec.feed(encode_frame(_samples(0), 2))  # backwards: a restart, not 65532 lost frames
    assert dec.stats.frames_lost == 2 and dec.stats.seq_resets == 1
    dec.feed(encode_frame(Hello(500, (0,), 1), 0))  # HELLO seq 0: device restarted
    dec.feed(encode_frame(_samples(0), 1))
    assert dec.stats.seq_resets == 2 and dec.stats.frames_lost == 2


def test_close_counts_unfinished_frame():
    dec = StreamDecoder()
    wire = encode_frame(_samples(0), 0)
    dec.feed(b"\x00" + wire[:-5])
    assert dec.close() == len(wire) - 5
    assert dec.stats.bytes_discarded == len(wire) - 5 and dec.pending == 0


def test_sample_tracker_reports_exact_gaps():
    tr = SampleTracker()
    assert tr.update(100, 10) == []  # first frame sets the position
    assert tr.update(110, 10) == []
    assert tr.update(150, 10) == [Gap(120, 30)]
    assert tr.update(160, 0) == []
    assert tr.update(160, 5) == []
    assert tr.missing_samples == 30 and tr.gaps == 1 and tr.samples_received == 35
    assert tr.update(10, 10) == [] and tr.resets == 1  # backwards: restart


def test_sample_tracker_wraps_u32():
    tr = SampleTracker()
    tr.update(2**32 - 20, 10)
    assert tr.update(2**32 - 10, 10) == []
    assert tr.update(5, 10) == [Gap(0, 5)]


def test_sample_tracker_follows_hello_format():
    tr = SampleTracker()
    hello = Hello(500, LEADS_12, 1000)
    tr.observe(hello)
    tr.observe(_samples(0))
    tr.observe(hello)  # same format (HELLO_REQUEST answer): keeps counting
    assert tr.observe(_samples(30)) == [Gap(10, 20)]
    tr.observe(Hello(250, LEADS_12, 1000))  # new format: counter restarts at 0
    assert tr.observe(_samples(0)) == [] and tr.resets == 0
    assert tr.observe(Event(1, 0)) == []
