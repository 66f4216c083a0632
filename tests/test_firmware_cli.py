"""``ecg-device simulate | dump | record`` (DESIGN.md, Contract 6), called through ``main(argv)``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.cli import main
from firmware_bridge.frames import Hello, Samples, encode_frame
from firmware_bridge.leads import LEADS_8
from firmware_bridge.simulator import DeviceSimulator, SimulatorConfig
from firmware_bridge.sources import SyntheticSource
from firmware_bridge.stream import StreamDecoder
from firmware_bridge.transport import FdTransport, iter_chunks, open_port, open_pty

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "argv", [["--help"], ["simulate", "--help"], ["dump", "--help"], ["record", "--help"]]
)
def test_help_explains(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: ecg-device" in out
    if argv[0] == "simulate":
        assert "PTY /dev/pts/N" in out and "--wait-start" in out and "--lead-off" in out


def _capture(tmp_path: Path) -> Path:
    frames = [Hello(500, LEADS_8, 1000, 1, 0, "cap")]
    frames += [Samples(10 * i, np.full((10, 8), i, np.int16)) for i in range(6)]
    wire = [encode_frame(f, i) for i, f in enumerate(frames)]
    flipped = bytearray(wire[3])
    flipped[12] ^= 0x10  # frame seq 3 (samples 20..29) corrupted
    data = (
        b"\x00"
        + wire[0]
        + wire[1]
        + wire[2]
        + bytes(flipped)
        + b"\xde\xad\x00"
        + wire[4]
        + wire[6]
        + wire[5][:9]
    )
    path = tmp_path / "capture.bin"
    path.write_bytes(data)
    return path


def test_dump_json_lines_with_corruption(tmp_path, capsys):
    assert main(["dump", str(_capture(tmp_path)), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert [(f["type"], f["seq"]) for f in frames] == [("HELLO", 0), ("SAMPLES", 1), ("SAMPLES", 2),
                                                       ("SAMPLES", 4), ("SAMPLES", 6)]  # fmt: skip
    assert frames[0]["channel_leads"] == list(LEADS_8) and frames[0]["device_id"] == "cap"
    assert frames[3]["samples"] == [[3] * 8] * 10 and frames[3]["first_sample"] == 30
    assert summary["frames_ok"] == 5 and summary["crc_errors"] + summary["cobs_errors"] >= 2
    assert summary["seq_gaps"] == 2 and summary["frames_lost"] == 2
    assert summary["missing_samples"] == 20 and summary["sample_gaps"] == [[20, 10], [40, 10]]
    assert summary["bytes_discarded"] > 9  # includes the unfinished frame at the end


def test_dump_text(tmp_path, capsys):
    assert main(["dump", str(_capture(tmp_path))]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("seq=0") and "HELLO" in out[0] and "leads=I,II,V1" in out[0]
    assert out[-1].startswith("summary frames_ok=5")


def test_dump_missing_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["dump", str(tmp_path / "nope.bin")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ecg-device: error:") and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--record", "/nonexistent/rec"],
        ["simulate", "--lead-off", "bogus", "--duration", "1"],
        ["simulate", "--drop-rate", "2"],
        ["simulate", "--speed", "0"],
        ["simulate", "--synthetic", "no_such_rhythm", "--duration", "1"],
        ["record", "--port", "/nonexistent/tty", "--out", "x.bin"],
    ],
)
def test_bad_input_gives_one_line_error(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("ecg-device: error:") and err.count("\n") == 1


def test_simulate_on_a_pyserial_url(capsys):
    argv = ["simulate", "--port", "loop://", "--synthetic", "sinus", "--speed", "0", "--duration", "0.2"]
    assert main(argv) == 0
    assert "finished (duration): 11 frames, 100 samples" in capsys.readouterr().err


def test_record_from_a_simulated_device(tmp_path, capsys):
    master, path = open_pty()
    transport = FdTransport(master, slave_path=path)
    sim = DeviceSimulator(SyntheticSource("pvc", LEADS_8, 1000, seed=2), transport,
                          SimulatorConfig(speed=0, duration=1.0))  # fmt: skip

    def device() -> None:
        if transport.wait_for_peer(timeout=10):
            sim.run()

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    out = tmp_path / "rec.bin"
    assert main(["record", "--port", path, "--out", str(out), "--duration", "20"]) == 0
    thread.join(5)
    assert "(port closed)" in capsys.readouterr().err
    frames = StreamDecoder().feed(out.read_bytes())
    assert isinstance(frames[0].frame, Hello)
    assert sum(f.frame.n_samples for f in frames if isinstance(f.frame, Samples)) == 500


def test_simulate_cli_prints_pty_and_streams(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "firmware_bridge.cli", "simulate", "--synthetic", "sinus", "--channels", "8",
           "--speed", "0", "--duration", "1", "--seed", "1", "--device-id", "pty-test"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("PTY /dev/"), line + proc.stderr.read()
        port = open_port(line.split(" ", 1)[1], timeout=0.05)
        dec = StreamDecoder()
        frames = list(dec.iter_frames(iter_chunks(port)))
        port.close()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()
    assert frames[0].frame == Hello(500, LEADS_8, 1000, 1, 0, "pty-test")
    samples = [f.frame for f in frames if isinstance(f.frame, Samples)]
    assert [s.first_sample for s in samples] == list(range(0, 500, 10))
    assert dec.stats.errors == 0 and dec.stats.frames_lost == 0
