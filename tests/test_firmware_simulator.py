"""The device simulator: host commands, pacing, fault injection, and real records over a pty.

In-memory tests drive ``DeviceSimulator`` step by step through ``MemoryTransport``; integration tests run
it on a pseudo-terminal read with pyserial, as the edge runtime reads a real device.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.frames import Event, EventCode, Hello, HelloRequest, Samples, Start, Stop, encode_frame
from firmware_bridge.leads import LEADS_8, LEADS_12
from firmware_bridge.simulator import DeviceSimulator, FaultConfig, LeadOffInterval, SimulatorConfig
from firmware_bridge.sources import RecordSource, SyntheticSource
from firmware_bridge.stream import StreamDecoder
from firmware_bridge.tracker import Gap, SampleTracker
from firmware_bridge.transport import FdTransport, MemoryTransport, iter_chunks, open_port, open_pty

PTBXL_RECORD = Path("ptbxl") / "records500" / "00000" / "00001_hr"


def _decode(data: bytes):
    dec = StreamDecoder()
    return dec.feed(data), dec


def _run_to_end(sim: DeviceSimulator, max_steps: int = 100_000) -> None:
    sim.begin()
    for _ in range(max_steps):
        if not sim.step():
            return
    raise AssertionError("simulator did not finish")


def _over_pty(source, config: SimulatorConfig):
    """Run a simulator on a pty in a thread; read it with pyserial until the device closes it."""
    master, path = open_pty()
    port = open_port(path, timeout=0.05)  # open first: pyserial flushes the input buffer when opening
    sim = DeviceSimulator(source, FdTransport(master, slave_path=path), config)
    sim.start_thread()
    dec = StreamDecoder()
    try:
        frames = list(dec.iter_frames(iter_chunks(port)))
    finally:
        port.close()
        sim.stop()
    return frames, dec, sim


@pytest.fixture
def small_record(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 3 s, 250 Hz WFDB record with lead names in odd cases and no III/aVR/aVL/aVF."""
    wfdb = pytest.importorskip("wfdb")
    names = ["v1", "i", "II", "V2", "v3", "V4", "v5", "V6", "resp"]
    rng = np.random.default_rng(0)
    digital = rng.integers(-3000, 3000, size=(750, len(names))).astype(np.int16)
    wfdb.wrsamp("rec", 250, ["mV"] * len(names), names, d_signal=digital, fmt=["16"] * len(names),
                adc_gain=[1000.0] * len(names), baseline=[0] * len(names), write_dir=str(tmp_path))  # fmt: skip
    return tmp_path / "rec", digital


@pytest.mark.slow
def test_real_ptbxl_record_over_pty_is_bit_exact(shared_data):
    wfdb = pytest.importorskip("wfdb")
    path = shared_data / PTBXL_RECORD
    source = RecordSource(path, LEADS_12, lsb_nv=1000)
    frames, dec, sim = _over_pty(source, SimulatorConfig(lsb_nv=1000, speed=0))
    assert isinstance(frames[0].frame, Hello) and frames[0].frame.channel_leads == LEADS_12
    samples = [f.frame for f in frames if isinstance(f.frame, Samples)]
    tracker = SampleTracker()
    assert all(tracker.observe(s) == [] for s in samples)
    got = np.concatenate([s.samples for s in samples])
    expected = np.round(wfdb.rdrecord(str(path)).p_signal * 1e6 / 1000).astype(np.int64)
    assert got.shape == expected.shape == (5000, 12)
    np.testing.assert_array_equal(got, expected)
    assert dec.stats.errors == 0 and dec.stats.frames_lost == 0 and sim.log.finished == "end"


def test_record_channels_selected_by_name_in_any_case(small_record):
    path, digital = small_record
    src8 = RecordSource(path, LEADS_8, lsb_nv=1000)
    np.testing.assert_array_equal(src8.read(750), digital[:, [1, 2, 0, 3, 4, 5, 6, 7]])
    src12 = RecordSource(path.with_suffix(".hea"), LEADS_12, lsb_nv=500)  # 0.5 µV per count: twice the counts
    x = src12.read(750).astype(np.int64)
    i, ii = digital[:, 1].astype(np.int64) * 2, digital[:, 2].astype(np.int64) * 2
    np.testing.assert_array_equal(x[:, 0], i)
    np.testing.assert_array_equal(x[:, 2], ii - i)  # III derived (Contract 1)
    np.testing.assert_array_equal(x[:, 5], ii - i / 2)  # aVF
    assert src12.fs == 250 and src12.read(10).shape == (0, 12)
    looped = RecordSource(path, LEADS_8, 1000, loop=True)
    assert looped.read(1000).shape == (1000, 8)


def test_record_missing_lead_is_a_clear_error(tmp_path):
    wfdb = pytest.importorskip("wfdb")
    wfdb.wrsamp("two", 100, ["mV", "mV"], ["I", "V1"], d_signal=np.zeros((10, 2), np.int16), fmt=["16", "16"],
                adc_gain=[1000.0, 1000.0], baseline=[0, 0], write_dir=str(tmp_path))  # fmt: skip
    with pytest.raises(ValueError, match="no lead II"):
        RecordSource(tmp_path / "two", LEADS_8, 1000)
    with pytest.raises(FileNotFoundError):
        RecordSource(tmp_path / "absent", LEADS_8, 1000)


def test_commands_start_with_rate_stop_and_hello_request():
    source = SyntheticSource("sinus", LEADS_8, 1000, fs=500, seed=1)
    link = MemoryTransport()
    sim = DeviceSimulator(source, link, SimulatorConfig(speed=0, duration=1.0, wait_start=True))
    sim.begin()
    for _ in range(3):
        sim.step()
    frames, _ = _decode(bytes(link.sent))
    assert [type(f.frame) for f in frames] == [Hello]  # nothing before START
    link.push(encode_frame(Start(250), 0))
    for _ in range(5):
        sim.step()
    link.push(encode_frame(Stop(), 1))
    for _ in range(3):
        sim.step()
    link.push(encode_frame(HelloRequest(), 2))
    sim.step()
    link.push(encode_frame(Start(), 3))
    while sim.step():
        pass
    frames, dec = _decode(bytes(link.sent))
    kinds = [type(f.frame).__name__ for f in frames]
    assert kinds[:2] == ["Hello", "Hello"] and frames[1].frame.fs_hz == 250
    assert kinds[2:8] == ["Samples"] * 5 + ["Hello"]  # a frame per step, STOP, then the requested HELLO
    samples = [f.frame for f in frames if isinstance(f.frame, Samples)]
    assert samples[0].first_sample == 0
    tracker = SampleTracker()
    assert [g for s in samples for g in tracker.observe(s)] == []  # STOP paused the index: no gap
    assert sum(s.n_samples for s in samples) == 250  # 1 s at the new rate
    assert dec.stats.frames_lost == 0 and sim.log.finished == "duration"
    assert [type(f) for f in sim.log.host_frames] == [Start, Stop, HelloRequest, Start]


def test_record_refuses_another_rate(small_record):
    path, _ = small_record
    link = MemoryTransport()
    sim = DeviceSimulator(RecordSource(path, LEADS_8, 1000), link, SimulatorConfig(speed=0))
    sim.begin()
    link.push(encode_frame(Start(500), 0))
    while sim.step():
        pass
    frames, _ = _decode(bytes(link.sent))
    errors = [f.frame for f in frames if isinstance(f.frame, Event)]
    assert len(errors) == 1 and errors[0].code == EventCode.DEVICE_ERROR and b"500" in errors[0].detail
    assert sum(f.frame.n_samples for f in frames if isinstance(f.frame, Samples)) == 750


def test_faults_are_seen_as_exact_missing_samples():
    source = SyntheticSource("afib", LEADS_12, 1000, fs=500, seed=3)
    faults = FaultConfig(drop_rate=0.1, flip_rate=0.05, garbage_rate=0.1, seed=7)
    link = MemoryTransport()
    sim = DeviceSimulator(source, link, SimulatorConfig(speed=0, duration=5.0, faults=faults))
    _run_to_end(sim)
    frames, dec = _decode(bytes(link.sent))
    samples = [f.frame for f in frames if isinstance(f.frame, Samples)]
    tracker = SampleTracker()
    gaps = [g for s in samples for g in tracker.observe(s)]
    # what the simulator really lost, merged, between the first and last frame that arrived
    lost = sorted(sim.log.dropped + sim.log.corrupted)
    assert len(sim.log.dropped) > 10 and len(sim.log.corrupted) > 5 and sim.log.garbage_bursts > 10
    first, end = samples[0].first_sample, samples[-1].first_sample
    merged: list[Gap] = []
    for g in lost:
        if not first < g.start < end:
            continue
        if merged and merged[-1].start + merged[-1].count == g.start:
            merged[-1] = Gap(merged[-1].start, merged[-1].count + g.count)
        else:
            merged.append(g)
    assert gaps == merged
    assert tracker.missing_samples + tracker.samples_received + first + (2500 - end - 10) == 2500
    assert dec.stats.errors >= len(sim.log.corrupted) + sim.log.garbage_bursts
    # the samples that arrived are exactly the source's
    reference = SyntheticSource("afib", LEADS_12, 1000, fs=500, seed=3).read(2500)
    for s in samples:
        np.testing.assert_array_equal(s.samples, reference[s.first_sample : s.first_sample + s.n_samples])


def test_lead_off_interval_sets_bits_flattens_and_sends_events():
    source = SyntheticSource("sinus", LEADS_12, 1000, fs=500, seed=0)
    faults = FaultConfig(lead_off=(LeadOffInterval.parse("v2@0.5-1.0", LEADS_12),))
    link = MemoryTransport()
    _run_to_end(DeviceSimulator(source, link, SimulatorConfig(speed=0, duration=2.0, faults=faults)))
    frames, _ = _decode(bytes(link.sent))
    events = [f.frame for f in frames if isinstance(f.frame, Event)]
    assert [(e.code, e.sample, e.detail) for e in events] == [(1, 250, b"\x80\x00"), (1, 500, b"\x00\x00")]
    for s in (f.frame for f in frames if isinstance(f.frame, Samples)):
        off = 250 <= s.first_sample < 500
        assert s.lead_off == (0x80 if off else 0)
        assert (not s.samples[:, 7].any()) if off else s.samples[:, 7].any()


def test_lead_off_parse():
    assert LeadOffInterval.parse("V2@1-2.5", LEADS_8) == LeadOffInterval(3, 1.0, 2.5)
    assert LeadOffInterval.parse("0@0-1", LEADS_8).channel == 0
    for bad in ("V2", "V2@2-1", "aVR@0-1", "12@0-1", "X@0-1", "V2@a-b"):
        with pytest.raises((ValueError, KeyError)):
            LeadOffInterval.parse(bad, LEADS_8)


def test_pacing_follows_the_wall_clock():
    for speed, duration, wall in ((1.0, 0.3, 0.3), (4.0, 0.4, 0.1)):
        sim = DeviceSimulator(SyntheticSource("sinus", LEADS_8, 1000, seed=0), MemoryTransport(),
                              SimulatorConfig(speed=speed, duration=duration))  # fmt: skip
        t0 = time.monotonic()
        _run_to_end(sim)
        elapsed = time.monotonic() - t0
        assert wall * 0.9 <= elapsed < wall + 0.25, (speed, elapsed)
        assert sim.log.samples_sent == int(duration * 500)


def test_disconnect_is_seen_by_the_reader():
    source = SyntheticSource("sinus", LEADS_8, 1000, seed=0)
    config = SimulatorConfig(speed=20, faults=FaultConfig(disconnect_after=0.5))
    t0 = time.monotonic()
    frames, _, sim = _over_pty(source, config)  # returns only when the port reports EOF/EIO
    assert time.monotonic() - t0 < 5
    assert sim.log.finished == "disconnect"
    assert 0 < sum(isinstance(f.frame, Samples) for f in frames) <= 25
