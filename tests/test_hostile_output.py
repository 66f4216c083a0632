"""Power loss, a full disk and Ctrl-C at start-up (issue 16; DESIGN.md contract 5): the output survives."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.runtime.jsonl import JsonLinesFile

REPO = Path(__file__).resolve().parents[1]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")


def test_partial_last_line_is_never_glued_to_the_next(tmp_path):
    """Was: the next window glued onto a line cut by power loss: one corrupt line, one window lost."""
    out = tmp_path / "ward.jsonl"
    out.write_text(
        '{"window_start_sample": 0}\n{"window_start_sample": 1000, "top": [{"id"', encoding="utf-8"
    )
    sink = JsonLinesFile(out)
    assert sink.write(json.dumps({"window_start_sample": 2000}))
    sink.close()
    lines = _lines(out)
    assert lines[-1] == "" and len(lines) == 4  # two old lines, the new one whole, final newline
    assert json.loads(lines[2]) == {"window_start_sample": 2000}
    assert lines[1].startswith('{"window_start_sample": 1000') and not lines[1].endswith("}")


def test_empty_and_complete_files_get_no_extra_newline(tmp_path):
    for text in ("", '{"a": 1}\n'):
        out = tmp_path / "f.jsonl"
        out.write_text(text, encoding="utf-8")
        sink = JsonLinesFile(out)
        sink.write('{"b": 2}')
        sink.close()
        assert out.read_text(encoding="utf-8") == text + '{"b": 2}\n'


class _Disk:
    """os.write that fails with ENOSPC while ``full`` (after writing ``partial`` bytes of the first call)."""

    def __init__(self, monkeypatch) -> None:  # noqa: ANN001
        self.full = False
        self.partial = 0
        real = os.write

        def write(fd: int, data) -> int:  # noqa: ANN001
            if self.full:
                if self.partial:
                    n, self.partial = self.partial, 0
                    return real(fd, bytes(data[:n]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(fd, data)

        monkeypatch.setattr("edge.runtime.jsonl.os.write", write)


def test_full_disk_drops_lines_says_so_and_resumes(tmp_path, monkeypatch):
    """Was: --out on a full disk stopped the monitoring (exit 1)."""
    out = tmp_path / "ward.jsonl"
    events: list[dict] = []
    sink = JsonLinesFile(out, fsync=True, on_event=events.append)
    disk = _Disk(monkeypatch)
    assert sink.write('{"w": 0}')
    disk.full, disk.partial = True, 3  # the disk fills in the middle of a line
    assert not sink.write('{"w": 1}') and not sink.write('{"w": 2}')
    assert sink.failing and "No space left" in sink.failing and sink.lines_lost == 2
    assert [e["event"] for e in events] == ["disk_full"]
    disk.full = False
    assert sink.write('{"w": 3}')
    sink.close()
    lines = [line for line in _lines(out) if line]
    assert lines[0] == '{"w": 0}' and lines[1] == '{"w'  # the cut line alone
    note = json.loads(lines[2])
    assert note["event"] == "disk_full" and note["lines_lost"] == 2 and "No space left" in note["reason"]
    assert lines[3] == '{"w": 3}' and [e["event"] for e in events] == ["disk_full", "disk_writable"]


def test_other_write_errors_are_not_swallowed(tmp_path, monkeypatch):
    sink = JsonLinesFile(tmp_path / "x.jsonl")

    def bad(fd, data):  # noqa: ANN001
        raise OSError(errno.EBADF, "bad fd")

    monkeypatch.setattr("edge.runtime.jsonl.os.write", bad)
    with pytest.raises(OSError):
        sink.write("{}")
    sink.close()


def test_run_on_a_full_disk_keeps_classifying(tiny_bundle, capfd):
    """``--out /dev/full``: every window still reaches stdout, a disk_full event says why the file lacks them."""
    from edge.cli.main import main
    from firmware_bridge.leads import LEADS_12
    from firmware_bridge.simulator import DeviceSimulator, SimulatorConfig
    from firmware_bridge.sources import SyntheticSource
    from firmware_bridge.transport import FdTransport, open_pty

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    master, path = open_pty()
    source = SyntheticSource("sinus", LEADS_12, 1000, seed=2)
    sim = DeviceSimulator(
        source, FdTransport(master, slave_path=path), SimulatorConfig(speed=0, wait_start=True)
    )
    sim.start_thread()
    try:
        rc = main(["run", "--port", path, "--bundle", str(tiny_bundle), "--out", "/dev/full", "--max-windows", "3",
                   "--hop", "1"])  # fmt: skip
    finally:
        sim.stop()
    captured = capfd.readouterr()
    assert rc == 0, captured.err
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert sum("window_start_sample" in line for line in lines) == 3
    full = [line for line in lines if line.get("event") == "disk_full"]
    assert len(full) == 1 and "No space left" in full[0]["reason"]
    assert "Traceback" not in captured.err


def _wait_for_library(pid: int, name: str, timeout_s: float = 30.0) -> None:
    """Wait until process ``pid`` has mapped a shared library whose path contains ``name``."""
    deadline = time.monotonic() + timeout_s
    maps = Path(f"/proc/{pid}/maps")
    while time.monotonic() < deadline:
        try:
            if name in maps.read_text():
                return
        except OSError:
            return  # the process ended already
        time.sleep(0.002)
    raise AssertionError(f"process {pid} never loaded {name}")


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
@pytest.mark.parametrize("delay_s", [0.0, 0.03, 0.08, 0.15, 0.3])
def test_ctrl_c_during_start_up_stops_cleanly(delay_s):
    """Was: a KeyboardInterrupt traceback (5 of 12 tries) or "the onnx backend needs onnxruntime".

    SIGINT arrives ``delay_s`` after numpy was mapped: while numpy, the bundle and onnxruntime load, or in the
    first reads. (``ecg-edge``'s main() defers Ctrl-C from its first line, and edge.cli.main imports only the
    standard library before it; the interpreter's own start-up, before main(), is not covered.)
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli.main", "run", "--port", "loop://", "--no-live", "--duration", "5"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_library(proc.pid, "numpy")
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err and "needs onnxruntime" not in err
    assert "stopped (SIGINT)" in err or "interrupted" in err


@pytest.mark.parametrize("fs", ["0", "49", "70000"])
def test_run_fs_outside_the_host_limits_is_one_line(capsys, fs):
    """Was: a FrameFormatError traceback from the START frame."""
    from edge.cli.main import main

    assert main(["run", "--port", "loop://", "--fs", fs, "--duration", "0.1", "--no-live"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--fs {fs} is outside" in err and "Traceback" not in err


# --- issue 25, item 9 -------------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
@pytest.mark.parametrize("delay_s", [0.0, 0.01, 0.02, 0.04, 0.07])
def test_ctrl_c_while_the_cli_modules_load_stops_cleanly(delay_s):
    """Was: SIGINT in the first ~100 ms printed a KeyboardInterrupt traceback (6 of 24 tries): importing
    edge.cli.main takes ~100 ms, before main() could defer Ctrl-C. The console entry (edge.cli.entry) now
    remembers it from its first line. SIGINT comes once _json is mapped, i.e. inside those imports."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli.entry", "run", "--port", "loop://", "--no-live", "--duration", "5"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_library(proc.pid, "_json")
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err and ("stopped (SIGINT)" in err or "interrupted" in err), err


def test_console_script_goes_through_the_deferring_entry():
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'ecg-edge = "edge.cli.entry:main"' in text
    entry = (REPO / "edge" / "cli" / "entry.py").read_text(encoding="utf-8")
    code = [ln for ln in entry.splitlines() if ln.startswith(("import ", "from "))]
    assert code[0] == "import _signal"  # nothing to load before the handler is in place
    # after it, only what the interpreter's own start-up has loaded already (os: the BLAS thread cap)
    assert [ln.split()[1] for ln in code[1:]] in ([], ["os"]), code


def test_a_run_that_did_not_stop_cleanly_leaves_a_resumed_event(tmp_path):
    """Was: a restart after kill -9 left no line saying that windows were missing."""
    out = tmp_path / "ward.jsonl"
    sink = JsonLinesFile(out, resume=True)
    assert sink.resumed is None  # a new file
    sink.write(json.dumps({"t": "2026-01-01T10:00:00+00:00", "window_start_sample": 0}))
    sink.close("SIGTERM")  # a clean stop
    assert json.loads(_lines(out)[-2]) | {"t": None} == {"version": 3, "t": None, "event": "stopped", "reason": "SIGTERM"}
    sink = JsonLinesFile(out, resume=True)
    assert sink.resumed is None  # after a clean stop: nothing is missing
    sink.write(json.dumps({"t": "2026-01-01T10:05:00+00:00", "window_start_sample": 5000}))
    os.close(sink.fd)  # kill -9: no close(), no stopped line
    sink = JsonLinesFile(out, resume=True)
    sink.close("done")
    lines = [json.loads(x) for x in _lines(out) if x]
    resumed = lines[-2]
    assert resumed["event"] == "resumed" and resumed["last_t"] == "2026-01-01T10:05:00+00:00"
    assert "missing" in resumed["note"] and "no clean stop" in resumed["after"]
    out.write_text('{"t": "2026-01-01T11:00:00+00:00", "window_start_sample": 0}\n{"t": "2026-01-01T11:0')
    sink = JsonLinesFile(out, resume=True)  # power cut in the middle of a line
    sink.close()
    assert sink.resumed["after"].startswith("a partial last line")


def test_run_writes_stopped_and_resumed_lines(tmp_path, capfd):
    from edge.cli.main import main

    out = tmp_path / "ward.jsonl"
    args = ["run", "--port", "loop://", "--no-live", "--duration", "0.3", "--quiet", "--out", str(out)]
    assert main(args) == 0
    assert json.loads(_lines(out)[-2])["event"] == "stopped"
    with out.open("a", encoding="utf-8") as fh:  # a window after which the process was killed
        fh.write(json.dumps({"t": "2026-01-01T10:00:00+00:00", "window_start_sample": 0}) + "\n")
    assert main(args) == 0
    events = [json.loads(x).get("event") for x in _lines(out) if x]
    assert events[-2:] == ["resumed", "stopped"]
    assert "Traceback" not in capfd.readouterr().err


def test_lines_lost_to_a_disk_failing_until_exit_are_counted(tmp_path, monkeypatch, caplog):
    """Was: lines lost in a disk outage that lasted until exit were counted nowhere."""
    out = tmp_path / "ward.jsonl"
    sink = JsonLinesFile(out)
    disk = _Disk(monkeypatch)
    assert sink.write('{"w": 0}')
    disk.full = True
    for i in range(1, 4):
        assert not sink.write(json.dumps({"w": i}))
    with caplog.at_level("ERROR"):
        sink.close("SIGTERM")
    assert sink.lost_at_exit == 3
    assert any("3 line(s) lost" in r.getMessage() for r in caplog.records)
