"""Property-based fuzz of the whole runtime path, bytes in -> windows out (issue 16; contract 4 limits).

Hypothesis builds device sessions from legal frames with hostile values (any rate, any lead set, any
``first_sample``, retransmissions, jumps, HELLO storms), corrupted frames and raw garbage, cut into
arbitrary chunks, and feeds them to :meth:`edge.runtime.serial.Runtime.process_bytes` as the port loop would.
Whatever the bytes say: nothing raises, every output line is a well-formed window or event, the windows of
a segment come in order on the hop grid, a window with missing samples gets no findings, and the work is
bounded by what was received: windows classified <= samples received / hop + one window's worth per
segment, and the memory traced stays small. The number of examples is fixed, so the time is bounded.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edge.runtime.engine import Classifier
from edge.runtime.serial import RunConfig, Runtime
from firmware_bridge.frames import Event, Hello, Samples, encode_frame

FS_CHOICES = [50, 100, 250, 500, 49, 2001, 65535, 1]
LEAD_SETS = [tuple(range(12)), (0, 1, 6, 7, 8, 9, 10, 11), (0, 1, 6), (11, 10, 9, 8, 7, 6, 1, 0)]


@pytest.fixture(scope="module")
def clf(tiny_bundle):
    with Classifier.from_bundle(tiny_bundle) as classifier:
        yield classifier


@st.composite
def sessions(draw) -> tuple[list[bytes], int]:
    """(wire chunks, samples sent) of one hostile device session."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frames: list[bytes] = []
    seq = draw(st.integers(0, 0xFFFF))
    leads = LEAD_SETS[0]
    position = draw(st.sampled_from([0, 2**32 - 300, 2**31]))
    sent = 0
    if draw(st.integers(0, 3)):  # most sessions start like a real device, so windows do come out
        frames.append(encode_frame(Hello(draw(st.sampled_from([50, 100])), leads, 1000), seq))
        seq = (seq + 1) & 0xFFFF
    for _ in range(draw(st.integers(6, 40))):
        kind = draw(
            st.sampled_from(["samples"] * 12 + ["hello", "event", "garbage", "corrupt", "jump", "rewind"])
        )
        if kind == "hello":
            leads = draw(st.sampled_from(LEAD_SETS))
            fs = draw(st.sampled_from(FS_CHOICES))
            data = encode_frame(Hello(fs, leads, draw(st.sampled_from([1, 1000, 2**32 - 1]))), seq)
        elif kind in ("samples", "jump", "rewind"):
            if kind == "jump":
                position = (position + draw(st.integers(1, 2**32 - 1))) % 2**32
            elif kind == "rewind":
                position = (position - draw(st.integers(1, 6000))) % 2**32
            n = draw(st.sampled_from([255, 255, 200, 50, 1, 0]))
            block = rng.integers(-3000, 3000, size=(n, len(leads)), dtype=np.int16)
            lead_off = draw(st.integers(0, (1 << len(leads)) - 1)) if draw(st.booleans()) else 0
            data = encode_frame(Samples(position, block, lead_off), seq)
            position = (position + n) % 2**32
            sent += n
        elif kind == "event":
            data = encode_frame(Event(draw(st.integers(0, 255)), position, draw(st.binary(max_size=8))), seq)
        elif kind == "garbage":
            data = draw(st.binary(min_size=1, max_size=64))
        else:  # a real frame with one byte flipped
            raw = bytearray(encode_frame(Samples(position, np.zeros((10, len(leads)), np.int16)), seq))
            raw[draw(st.integers(0, len(raw) - 2))] ^= draw(st.integers(1, 255))
            data = bytes(raw)
        frames.append(data)
        seq = (seq + draw(st.sampled_from([1, 1, 1, 2, 0x8000]))) & 0xFFFF
    wire = b"".join(frames)
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    return chunks, sent


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(session=sessions())
def test_any_byte_stream_gives_bounded_well_formed_windows(clf, session):
    chunks, sent = session
    lines: list[dict] = []
    events: list[dict] = []
    rt = Runtime(
        clf,
        RunConfig(port="fuzz", hop_s=2.0),
        on_result=lambda r, line: lines.append(line),
        on_event=events.append,
    )
    tracemalloc.start()
    for chunk in chunks:
        rt.process_bytes(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 24 * 2**20  # the largest legal stream (2000 Hz, 12 leads) needs about 2 MB
    # Work bounded by what was received: each window needs a hop of new samples (min hop: 2 s at 50 Hz),
    # plus at most one window of missing samples per segment.
    segments = max(rt.segment, 1)
    event(f"windows reported: {'some' if lines else 'none'}")
    assert len(lines) <= sent / 100 + segments * 6
    for e in events:
        assert e["event"] in {"device_changed", "device_rejected", "segment"} and "t" in e
    last: dict[int, int] = {}
    for line in lines:
        assert {"t", "window_start_sample", "fs", "top", "findings", "quality", "segment"} <= set(line)
        assert 50 <= line["fs"] <= 2000
        seg, start = line["segment"], line["window_start_sample"]
        assert start % int(2 * line["fs"]) == 0 and start > last.get(seg, -1)
        last[seg] = start
        if not line["quality"]["ok"]:
            assert line["findings"] == [] and line["skipped"]
        if line["quality"].get("missing_samples"):
            assert not line["quality"]["ok"]
