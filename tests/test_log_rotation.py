"""Log rotation of ``ecg-edge run --out`` (docs/deploy.md): rename + SIGHUP loses no line, splits none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.runtime.jsonl import JsonLinesFile

REPO = Path(__file__).resolve().parents[1]


def test_reopen_after_rename_keeps_every_line(tmp_path):
    path = tmp_path / "findings.jsonl"
    sink = JsonLinesFile(path)
    for i in range(3):
        assert sink.write(json.dumps({"n": i}))
    path.rename(tmp_path / "findings.jsonl.1")
    assert sink.write(json.dumps({"n": 3}))  # before the reopen: still the renamed file
    sink.request_reopen()
    for i in range(4, 6):
        assert sink.write(json.dumps({"n": i}))
    sink.close()
    old = [json.loads(s)["n"] for s in (tmp_path / "findings.jsonl.1").read_text().splitlines()]
    new = [json.loads(s)["n"] for s in path.read_text().splitlines()]
    assert old == [0, 1, 2, 3] and new == [4, 5]


def test_reopen_of_a_partial_line_starts_a_new_line(tmp_path):
    path = tmp_path / "f.jsonl"
    sink = JsonLinesFile(path)
    sink.write('{"n": 0}')
    path.rename(tmp_path / "f.jsonl.1")
    path.write_text('{"broken": ')  # someone left a partial line in the new file
    sink.request_reopen()
    sink.write('{"n": 1}')
    sink.close()
    assert path.read_text().splitlines() == ['{"broken": ', '{"n": 1}']


def test_sighup_during_a_run_rotates_without_losing_a_window(tmp_path):
    sim = subprocess.Popen(
        [sys.executable, "-m", "firmware_bridge.cli", "simulate", "--synthetic", "sinus", "--speed", "4",
         "--channels", "8", "--wait-start"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        line = sim.stdout.readline().strip()
        assert line.startswith("PTY "), sim.stderr.read()
        out = tmp_path / "findings.jsonl"
        run = subprocess.Popen(
            [sys.executable, "-m", "edge.cli.main", "run", "--port", line[4:], "--quiet", "--out", str(out),
             "--max-windows", "8"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (not out.exists() or out.read_text().count("window_start") < 3):
            time.sleep(0.05)
        out.rename(tmp_path / "findings.jsonl.1")  # what logrotate does (create mode, not copytruncate)
        run.send_signal(signal.SIGHUP)
        _, err = run.communicate(timeout=90)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    assert run.returncode == 0, err
    first = (tmp_path / "findings.jsonl.1").read_text(encoding="utf-8").splitlines()
    second = out.read_text(encoding="utf-8").splitlines()
    assert first and second and os.path.getsize(out) > 0
    starts = [json.loads(s)["window_start_sample"] for s in first + second if "window_start" in s]
    assert len(starts) == 8 and starts == sorted(starts)  # every window once, in order, whole lines
    steps = {b - a for a, b in zip(starts, starts[1:], strict=False)}
    assert steps == {1000}  # 2 s hop at 500 Hz: no window lost at the rotation
