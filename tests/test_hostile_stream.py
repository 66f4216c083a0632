"""Hostile devices (issue 16, DESIGN.md contract 4 "Limits a host enforces"): each reproduced case replayed.

Work is bounded by counting it, not by timing it: the windows classified, the streams (ring buffers) built
and the memory traced while the bytes are processed. Speed figures belong to bench/, not to tests.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from edge.runtime.engine import Classifier
from edge.runtime.serial import RunConfig, Runtime
from firmware_bridge.frames import Hello, Samples, encode_frame
from firmware_bridge.leads import LEADS_8, LEADS_12
from firmware_bridge.synthetic import synthesize, to_counts
from firmware_bridge.tracker import Gap, SampleTracker

FS = 500
WINDOW = 10 * FS  # the tiny bundle's 10-s window at 500 Hz


@pytest.fixture(scope="module")
def clf(tiny_bundle):
    with Classifier.from_bundle(tiny_bundle) as classifier:
        yield classifier


@pytest.fixture(scope="module")
def counts():
    return to_counts(synthesize(rhythm="sinus", fs=FS, seed=3, duration_s=40.0), 1000)  # int16 [12, 20000]


class Wire:
    """Frames with a running seq, as a device would send them."""

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = counts
        self.seq = 0

    def frame(self, frame) -> bytes:  # noqa: ANN001
        out = encode_frame(frame, self.seq)
        self.seq = (self.seq + 1) & 0xFFFF
        return out

    def hello(self, fs: int = FS, leads=LEADS_12) -> bytes:  # noqa: ANN001
        return self.frame(Hello(fs, leads, 1000, device_id="hostile"))

    def samples(self, first: int, n: int, at: int | None = None, per_frame: int = 50) -> bytes:
        """``n`` samples from the signal at ``at`` (default ``first``), labelled as starting at ``first``."""
        at = first if at is None else at
        out = b""
        for k in range(0, n, per_frame):
            m = min(per_frame, n - k)
            out += self.frame(Samples((first + k) % 2**32, self.counts[:, at + k : at + k + m].T))
        return out


def _runtime(clf, lines: list, events: list | None = None) -> Runtime:  # noqa: ANN001
    return Runtime(
        clf,
        RunConfig(port="capture.bin", hop_s=2.0),
        on_result=lambda r, line: lines.append(line),
        on_event=(events.append if events is not None else None),
    )


def _count_classified(monkeypatch, clf) -> list:  # noqa: ANN001
    """Count windows the classifier is asked to assess (the expensive part of a window)."""
    calls = []
    original = clf.classify_window

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(clf, "classify_window", counted)
    return calls


def test_first_sample_jump_of_2_31_is_a_new_segment_not_millions_of_windows(clf, counts, monkeypatch):
    """Was: 140 s busy, 2 GB, 2.1 million lines written, SIGTERM ignored."""
    lines, events = [], []
    rt = _runtime(clf, lines, events)
    wire = Wire(counts)
    calls = _count_classified(monkeypatch, clf)
    rt.process_bytes(wire.hello() + wire.samples(0, 12 * FS))
    tracemalloc.start()
    rt.process_bytes(wire.samples(2**31 - 1 + 12 * FS, 12 * FS, at=0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rt.stats.jumps == 1 and rt.stats.missing_samples == 0
    assert len(calls) <= 4 and len(lines) == len(calls)  # 12 s before and 12 s after: 2 windows each
    assert peak < 8 * 2**20
    seg = [e for e in events if e["event"] == "segment"]
    assert len(seg) == 1 and "jumped" in seg[0]["reason"]
    after = [line for line in lines if line["segment"] == seg[0]["segment"]]
    assert after and all(line["quality"]["ok"] for line in after)


def test_gap_within_one_window_is_missing_samples(clf, counts):
    lines = []
    rt = _runtime(clf, lines)
    wire = Wire(counts)
    rt.process_bytes(wire.hello() + wire.samples(0, 8 * FS) + wire.samples(9 * FS, 11 * FS))
    assert rt.stats.jumps == 0 and rt.stats.missing_samples == FS
    by_start = {line["window_start_sample"]: line for line in lines}
    assert not by_start[0]["quality"]["ok"] and by_start[0]["quality"]["missing_samples"] == FS
    assert by_start[10 * FS]["quality"]["ok"]


def test_retransmitted_frame_is_a_duplicate_not_a_restart(clf, counts):
    """Was: first_sample back by 10 counted as a restart and three windows were never reported."""
    lines, events = [], []
    rt = _runtime(clf, lines, events)
    wire = Wire(counts)
    rt.process_bytes(wire.hello() + wire.samples(0, 6000))
    rt.process_bytes(wire.samples(5990, 50))  # the device sent the last 10 samples again
    rt.process_bytes(wire.samples(6040, 14000))
    assert rt.stats.stream_restarts == 0 and rt.stats.duplicate_samples == 10
    assert [line["window_start_sample"] for line in lines] == list(range(0, 20000 - WINDOW + 1, 2 * FS))
    assert all(line["quality"]["ok"] for line in lines) and not [e for e in events if e["event"] == "segment"]


def test_restart_announced_by_hello_seq_0_is_a_restart_even_when_close(clf, counts):
    lines = []
    rt = _runtime(clf, lines)
    wire = Wire(counts)
    rt.process_bytes(wire.hello() + wire.samples(0, 3000))
    wire.seq = 0  # the device rebooted: HELLO seq 0, counter from 0
    rt.process_bytes(wire.hello() + wire.samples(0, 12 * FS, at=3000))
    assert rt.stats.stream_restarts == 1 and rt.stats.duplicate_samples == 0
    assert [line["window_start_sample"] for line in lines] == [0, 1000]


def test_tracker_limits_classify_each_step():
    tr = SampleTracker(max_gap=100, max_rewind=20)
    tr.update(0, 10)
    tr.update(5, 10)
    assert tr.last == "overlap" and tr.duplicate_samples == 5 and tr.next_sample == 15
    tr.update(0, 10)  # entirely old: position kept
    assert tr.last == "overlap" and tr.next_sample == 15
    assert tr.update(115, 5) == [Gap(15, 100)] and tr.last == "gap"
    tr.update(1000, 5)
    assert tr.last == "jump" and tr.jumps == 1
    tr.update(900, 5)
    assert tr.last == "restart" and tr.resets == 1


@pytest.mark.parametrize(
    ("hello", "reason"),
    [
        (Hello(65535, LEADS_12, 1000), "fs_hz=65535"),
        (Hello(49, LEADS_12, 1000), "fs_hz=49"),
        (Hello(2001, LEADS_8, 1000), "fs_hz=2001"),
        (Hello(500, (0, 1, 6), 1000), "cannot make the 12 leads"),
    ],
)
def test_hello_outside_the_host_limits_is_refused_with_one_event(clf, counts, hello, reason):
    """Was: a legal HELLO with fs 65535 took 403 MB."""
    lines, events = [], []
    rt = _runtime(clf, lines, events)
    wire = Wire(counts)
    tracemalloc.start()
    for _ in range(3):
        rt.process_bytes(wire.frame(hello) + wire.samples(0, 2000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 * 2**20 and rt.stream is None and not lines
    rejected = [e for e in events if e["event"] == "device_rejected"]
    assert len(rejected) == 1 and reason in rejected[0]["reason"]
    assert rt.stats.rejected_hellos == 3 and rt.stats.samples_ignored == 6000


def test_hello_storm_builds_nothing_until_samples_arrive(clf, counts, monkeypatch):
    """Was: 2,000 alternating HELLOs (70 kB) cost 15.7 s of CPU."""
    import edge.runtime.device_stream as stream_module

    built = []
    real = stream_module.StreamClassifier
    monkeypatch.setattr(stream_module, "StreamClassifier", lambda *a, **k: built.append(1) or real(*a, **k))
    lines, events = [], []
    rt = _runtime(clf, lines, events)
    wire = Wire(counts)
    storm = b"".join(
        wire.frame(Hello(fs, LEADS_12, 1000)) for fs in [250, 500, 65535, 2000] * 500
    )  # 2,000 HELLOs
    tracemalloc.start()
    rt.process_bytes(storm)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rt.stats.hellos == 2000 and not built and peak < 4 * 2**20
    assert len(events) == 1 and events[0]["event"] == "device_rejected"
    rt.process_bytes(wire.hello() + wire.samples(0, 12 * FS))
    assert len(built) == 1 and [line["window_start_sample"] for line in lines] == [0, 1000]
    assert [e["event"] for e in events] == ["device_rejected", "device_changed"]


class _FakePort:
    """A port that delivers some bytes, then fails like a pulled USB cable."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.in_waiting = len(data)

    def read(self, n: int) -> bytes:
        if self.data:
            out, self.data = self.data[:n], self.data[n:]
            self.in_waiting = len(self.data)
            return out
        raise OSError(5, "Input/output error")

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        pass


def test_disconnect_and_reconnect_are_event_lines(clf, counts, monkeypatch):
    import edge.runtime.serial as runtime_module

    wire = Wire(counts)
    opened = []

    def open_port(url, baud, timeout):  # noqa: ANN001, ARG001
        opened.append(url)
        return _FakePort(wire.hello() + wire.samples(0, 11 * FS))

    monkeypatch.setattr(runtime_module, "open_port", open_port)
    lines, events = [], []
    rt = Runtime(
        clf,
        RunConfig(port="usb", hop_s=2.0, backoff_min_s=0.001, backoff_max_s=0.001),
        on_result=lambda r, line: lines.append(line),
        on_event=lambda e: (events.append(e), len(opened) >= 3 and rt.stop()),
    )
    rt.run()
    names = [e["event"] for e in events]
    # the device counts from 0 again on the new connection: a new segment, said as such
    assert names[:5] == ["device_changed", "disconnected", "reconnected", "segment", "disconnected"]
    assert all({"t", "event", "source"} <= set(e) for e in events)
    assert "Input/output error" in events[1]["reason"] and lines
