"""The live runtime (edge.runtime.serial) against the device simulator on pseudo-terminals.

The runtime runs in a thread of the test process; the simulator (firmware_bridge) streams a record or
synthetic ECG over a pty, faster than real time. Pulling the cable is the simulator's disconnect; the new
"cable" is a new pty behind a symlink the runtime keeps opening.
"""

from __future__ import annotations

import io
import json
import threading
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from edge.cli.main import main as edge_main
from edge.runtime.engine import Classifier
from edge.runtime.serial import RunConfig, Runtime
from firmware_bridge.leads import LEADS_8, LEADS_12
from firmware_bridge.simulator import DeviceSimulator, FaultConfig, LeadOffInterval, SimulatorConfig
from firmware_bridge.sources import RecordSource, SyntheticSource
from firmware_bridge.transport import FdTransport, open_pty

PTBXL_RECORD = Path("ptbxl") / "records500" / "00000" / "00001_hr"


@pytest.fixture(scope="module")
def clf(tiny_bundle):
    with Classifier.from_bundle(tiny_bundle) as classifier:
        yield classifier


def _simulator(source, **config) -> tuple[DeviceSimulator, str]:
    master, path = open_pty()
    sim = DeviceSimulator(source, FdTransport(master, slave_path=path), SimulatorConfig(**config))
    return sim, path


class _Run:
    """A Runtime in a background thread, collecting its JSON lines."""

    def __init__(self, clf, port: str, **config) -> None:
        self.lines: list[dict] = []
        config.setdefault("backoff_min_s", 0.05)
        config.setdefault("backoff_max_s", 0.2)
        self.runtime = Runtime(
            clf, RunConfig(port=port, **config), on_result=lambda r, line: self.lines.append(line)
        )
        self.thread = threading.Thread(target=self.runtime.run, daemon=True)
        self.thread.start()

    def wait(self, condition, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(
                    f"timed out; {len(self.lines)} lines, stats {self.runtime.stats.as_dict()}"
                )
            time.sleep(0.02)

    def stop(self):
        self.runtime.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.runtime.stats


def _classify_json(path: Path, bundle: Path, *extra: str) -> list[dict]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert edge_main(["classify", str(path), "--json", "--bundle", str(bundle), *extra]) == 0
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def _assert_same(stream_line: dict, file_line: dict) -> None:
    assert [t["id"] for t in stream_line["top"]] == [t["id"] for t in file_line["top"]]
    np.testing.assert_allclose(
        [t["score"] for t in stream_line["top"]], [t["score"] for t in file_line["top"]], atol=1e-5
    )
    assert stream_line["window_findings"] == file_line["findings"]  # the stream states the steady set
    # the same measurement function on the same samples (contract 7): the same measurements
    a, b = stream_line.get("window_measurements") or stream_line["measurements"], file_line["measurements"]
    assert a is not None and b is not None and a.keys() == b.keys()
    assert a["beats"] == b["beats"] and a["null_reasons"] == b["null_reasons"]
    for key, value in a.items():
        if isinstance(value, float):
            assert b[key] == pytest.approx(value, abs=0.11), key
        else:
            assert b[key] == value, key


@pytest.mark.slow
def test_real_ptbxl_record_stream_equals_file_classification(shared_data, tiny_bundle, clf):
    record = shared_data / PTBXL_RECORD
    sim, path = _simulator(
        RecordSource(record, LEADS_12, 1000, loop=True), speed=0, wait_start=True, duration=30
    )
    sim.start_thread()
    run = _Run(clf, path, hop_s=10.0)
    run.wait(lambda: len(run.lines) >= 3)
    stats = run.stop()
    sim.stop()
    file_lines = _classify_json(record, tiny_bundle)
    assert [line["window_start_sample"] for line in file_lines] == [0]
    # The looped record repeats every 5000 samples, so every stream window is the file's window 0.
    assert [line["window_start_sample"] for line in run.lines[:3]] == [0, 5000, 10000]
    for line in run.lines[:3]:
        assert line["quality"]["ok"] and line["fs"] == 500 and line["source"] == path
        _assert_same(line, file_lines[0])
    assert stats.frames.errors == 0 and stats.missing_samples == 0


def _write_wfdb(folder: Path, x_mv: np.ndarray, names: list[str], fs: int) -> Path:
    wfdb = pytest.importorskip("wfdb")
    digital = np.round(x_mv.T * 1000).astype(np.int16)  # 1 µV per count, as the simulator sends
    wfdb.wrsamp(
        "synth",
        fs,
        ["mV"] * len(names),
        names,
        d_signal=digital,
        fmt=["16"] * len(names),
        adc_gain=[1000.0] * len(names),
        baseline=[0] * len(names),
        write_dir=str(folder),
    )
    return folder / "synth"


def test_stream_windows_equal_classify_on_the_same_record(tmp_path, tiny_bundle, clf):
    from firmware_bridge.synthetic import synthesize

    x = synthesize(rhythm="afib", fs=500, seed=11, duration_s=42.0)
    names = ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]  # an 8-channel device: limb leads derived
    record = _write_wfdb(tmp_path, x[[0, 1, 6, 7, 8, 9, 10, 11]], names, 500)
    sim, path = _simulator(RecordSource(record, LEADS_8, 1000), speed=0, wait_start=True, frame_samples=25)
    sim.start_thread()
    run = _Run(clf, path, hop_s=10.0)
    run.wait(lambda: len(run.lines) >= 4)
    run.stop()
    sim.stop()
    stream = {line["window_start_sample"]: line for line in run.lines}
    files = {line["window_start_sample"]: line for line in _classify_json(record, tiny_bundle)}
    assert sorted(stream) == [0, 5000, 10000, 15000]
    assert sorted(files) == [0, 5000, 10000, 15000, 16000]  # the file adds a window aligned to its end
    for start, line in stream.items():
        assert line["quality"]["ok"]
        _assert_same(line, files[start])
    assert (
        len({tuple(t["id"] for t in line["top"]) + (line["top"][0]["score"],) for line in stream.values()})
        > 1
    )


@pytest.mark.parametrize("device_counter", ["continues", "restarts"])
def test_pulled_cable_reconnects_without_restarting(tmp_path, clf, device_counter):
    link = tmp_path / "ecg-port"
    first, p1 = _simulator(
        SyntheticSource("sinus", LEADS_8, 1000, seed=1),
        speed=20,
        wait_start=True,
        faults=FaultConfig(disconnect_after=12.0),
    )
    link.symlink_to(p1)
    first.start_thread()
    run = _Run(clf, str(link), hop_s=2.0)
    run.wait(lambda: first.log.finished == "disconnect" and not run.runtime.connected)
    before = len(run.lines)
    assert before >= 1 and run.lines[0]["window_start_sample"] == 0
    second, p2 = _simulator(SyntheticSource("sinus", LEADS_8, 1000, seed=1), speed=20, wait_start=True)
    if device_counter == "continues":
        second.sample_index = 7000  # the device went on counting during a 2 s outage
    link.unlink()
    link.symlink_to(p2)
    second.start_thread()
    run.wait(
        lambda: any(
            line["window_start_sample"] >= 8000 and line["segment"] > 0 for line in run.lines[before:]
        )
    )
    stats = run.stop()
    second.stop()
    assert stats.reconnects >= 1 and stats.connects >= 2 and stats.hellos >= 2
    after = run.lines[before:]
    assert after, "no window after the reconnection"
    if device_counter == "continues":
        starts = [line["window_start_sample"] for line in run.lines]
        assert starts == sorted(set(starts))  # nothing classified twice, nothing out of order
        assert stats.missing_samples >= 1000 and stats.stream_restarts == 0
        for line in run.lines:
            s = line["window_start_sample"]
            if s < 7000 < s + 5000:  # windows over the outage: missing samples, no findings
                assert line["quality"]["missing_samples"] >= 1000 and line["skipped"] and not line["findings"]
            if s >= 7000:
                assert line["quality"]["ok"]
        assert {line["segment"] for line in run.lines} == {1}
    else:
        assert (
            stats.stream_restarts == 1 and after[0]["window_start_sample"] == 0 and after[0]["quality"]["ok"]
        )
        assert after[0]["segment"] == run.lines[0]["segment"] + 1


def test_new_hello_with_another_rate_reconfigures(tmp_path, clf):
    link = tmp_path / "ecg-port"
    first, p1 = _simulator(
        SyntheticSource("sinus", LEADS_12, 1000, seed=2),
        speed=20,
        wait_start=True,
        faults=FaultConfig(disconnect_after=11.0),
    )
    link.symlink_to(p1)
    first.start_thread()
    run = _Run(clf, str(link), hop_s=2.0)
    run.wait(lambda: first.log.finished == "disconnect" and not run.runtime.connected)
    second, p2 = _simulator(SyntheticSource("afib", LEADS_8, 1000, fs=250, seed=3), speed=20, wait_start=True)
    link.unlink()
    link.symlink_to(p2)
    second.start_thread()
    run.wait(lambda: sum(line["fs"] == 250 for line in run.lines) >= 2)
    stats = run.stop()
    second.stop()
    slow = [line for line in run.lines if line["fs"] == 250]
    assert stats.reconfigurations == 1
    assert [line["window_start_sample"] for line in slow[:2]] == [0, 500]  # 2 s hops at 250 Hz
    assert all(line["quality"]["ok"] for line in slow)


def test_fault_injection_flags_windows_and_never_crashes(clf):
    faults = FaultConfig(
        drop_rate=0.006,
        flip_rate=0.006,
        garbage_rate=0.05,
        seed=5,
        lead_off=(LeadOffInterval(7, 14.0, 16.0),),
    )
    sim, path = _simulator(
        SyntheticSource("pvc", LEADS_12, 1000, seed=4),
        speed=0,
        wait_start=True,
        duration=40,
        frame_samples=50,
        faults=faults,
    )
    sim.start_thread()
    run = _Run(clf, path, hop_s=2.0)
    run.wait(lambda: run.lines and run.lines[-1]["window_start_sample"] >= 15000)
    stats = run.stop()
    sim.stop()
    lost = sim.log.dropped + sim.log.corrupted
    assert sim.log.garbage_bursts and sim.log.dropped and sim.log.corrupted
    assert stats.frames.errors >= len(sim.log.corrupted)  # every corrupted frame was caught and counted
    lost_samples = np.zeros(20000, bool)
    for gap in lost:
        lost_samples[gap.start : gap.start + gap.count] = True
    for line in run.lines:
        s = line["window_start_sample"]
        q = line["quality"]
        assert q["missing_samples"] == lost_samples[s : s + 5000].sum()
        assert ("V2" in q["lead_off"]) == (s < 8000 and s + 5000 > 7000)  # V2 off from 14 s to 16 s
        assert q["ok"] == (q["missing_samples"] == 0 and not q["lead_off"])
        assert line["skipped"] != q["ok"] and (q["ok"] or not line["findings"])
    assert any(line["quality"]["ok"] for line in run.lines) and any(
        not line["quality"]["ok"] for line in run.lines
    )


def test_port_that_never_opens_is_retried_until_stopped(tmp_path, clf):
    run = _Run(clf, str(tmp_path / "no-such-port"), hop_s=2.0, backoff_min_s=0.01, backoff_max_s=0.05)
    time.sleep(0.3)
    stats = run.stop()
    assert stats.connects == 0 and stats.windows == 0 and stats.stop_reason == "stopped"


def test_duration_and_max_windows_stop_the_run(clf):
    sim, path = _simulator(
        SyntheticSource("sinus", LEADS_12, 1000, seed=6), speed=0, wait_start=True, duration=60
    )
    sim.start_thread()
    runtime = Runtime(clf, RunConfig(port=path, hop_s=1.0, max_windows=4))
    stats = runtime.run()
    sim.stop()
    assert stats.windows == 4 and stats.stop_reason == "windows"
    runtime = Runtime(clf, RunConfig(port="loop://", duration_s=0.3))  # a port that never says HELLO
    stats = runtime.run()
    assert stats.stop_reason == "duration" and stats.windows == 0 and stats.hellos == 0


def test_replayed_bytes_need_a_hello_and_usable_channels(clf):
    from firmware_bridge.frames import Event, EventCode, Hello, Samples, encode_frame
    from firmware_bridge.synthetic import synthesize, to_counts

    counts = to_counts(synthesize(rhythm="sinus", fs=500, seed=9, duration_s=12.0), 1000)  # int16 [12, T]
    lines = []
    runtime = Runtime(
        clf, RunConfig(port="capture.bin", hop_s=2.0), on_result=lambda r, line: lines.append(line)
    )
    seq = iter(range(10_000))

    def frames(first: int, n: int, leads=LEADS_12) -> bytes:
        out = b""
        for a in range(first, first + n, 50):
            out += encode_frame(Samples(a, counts[list(leads), a : a + 50].T), next(seq))
        return out

    runtime.process_bytes(frames(0, 1000))  # before any HELLO: ignored
    assert runtime.stats.samples_ignored == 1000 and not lines
    runtime.process_bytes(encode_frame(Hello(500, (0, 1, 6), 1000, device_id="3-lead"), next(seq)))
    runtime.process_bytes(frames(0, 1000, (0, 1, 6)))  # three channels cannot make 12 leads: ignored
    assert runtime.stats.samples_ignored == 2000 and runtime.stream is None
    runtime.process_bytes(encode_frame(Hello(500, LEADS_12, 1000, device_id="12-lead"), next(seq)))
    runtime.process_bytes(encode_frame(Event(EventCode.BATTERY_LOW, 0), next(seq)))
    runtime.process_bytes(frames(0, 6000))
    assert [line["window_start_sample"] for line in lines] == [0, 1000]
    assert lines[0]["device"] == "12-lead" and lines[0]["quality"]["ok"] and runtime.stats.events == 1


def test_live_view_renders_the_last_window(clf):
    from edge.views.terminal import LiveView
    from firmware_bridge.frames import Hello, Samples, encode_frame
    from firmware_bridge.synthetic import synthesize, to_counts

    counts = to_counts(synthesize(rhythm="sinus", fs=500, seed=10, duration_s=10.0), 1000)
    runtime = Runtime(clf, RunConfig(port="/dev/ttyUSB0"))
    screen = io.StringIO()
    view = LiveView(screen)
    view.update(runtime)
    assert "最初の判定まで" in screen.getvalue()
    runtime.process_bytes(encode_frame(Hello(500, LEADS_12, 1000, device_id="bed-7"), 0))
    for i, a in enumerate(range(0, 5000, 100)):
        runtime.process_bytes(encode_frame(Samples(a, counts[:, a : a + 100].T), i + 1))
    view.update(runtime)
    text = screen.getvalue()
    top = runtime.last_result.top[0]
    assert "\x1b[H\x1b[2J" in text and "bed-7" in text and "信号品質" in text and "OK" in text
    assert top["ja"] in text and f"{top['score']:+.3f}" in text and "所見:" in text
