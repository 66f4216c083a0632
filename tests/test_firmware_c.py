"""The C reference implementation (firmware_bridge/c) against the same golden vectors, via its Makefile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

C_DIR = Path(__file__).resolve().parents[1] / "firmware_bridge" / "c"


@pytest.mark.skipif(
    shutil.which("cc") is None or shutil.which("make") is None, reason="no C compiler or make"
)
def test_c_reference_implementation_passes_golden_vectors():
    proc = subprocess.run(["make", "-C", str(C_DIR), "test"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ", 0 failures" in proc.stdout


def _example_device(*args: str) -> tuple[subprocess.Popen, str]:
    """Build firmware_bridge/c/example_device and start it on a new pty; returns (process, pty path)."""
    proc = subprocess.run(["make", "-C", str(C_DIR), "example"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    device = subprocess.Popen(
        [str(C_DIR / "build" / "example_device"), "--pty", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    path = device.stdout.readline().strip()
    assert path.startswith("/dev/"), device.stderr.read()
    return device, path


def _run_host(port: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    import sys

    cmd = [sys.executable, "-m", "edge.cli.main", "run", "--port", port, "--quiet", "--out", str(out), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=C_DIR.parents[1])


@pytest.mark.skipif(
    shutil.which("cc") is None or shutil.which("make") is None, reason="no C compiler or make"
)
@pytest.mark.parametrize("fs", [None, 250])
def test_c_example_device_streams_into_ecg_edge_run(tmp_path, fs):
    import json

    device, port = _example_device("--wait-start", "--speed", "2", "--seconds", "90")  # gentle on a loaded CI
    try:
        out = tmp_path / "findings.jsonl"
        host = _run_host(port, out, "--max-windows", "3", *(["--fs", str(fs)] if fs else []))
    finally:
        device.terminate()
        device.wait(timeout=10)
    assert host.returncode == 0, host.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    changed = [line for line in lines if line.get("event") == "device_changed"]
    windows = [line for line in lines if "window_start_sample" in line]
    assert changed and changed[-1]["device"] == "example-device-c" and changed[-1]["fs"] == (fs or 500)
    assert changed[-1]["leads"] == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert len(windows) == 3 and all(w["quality"]["ok"] and len(w["top"]) == 5 for w in windows)
    assert windows[0]["window_start_sample"] == 0  # a waiting device starts its index at START
    assert "0 bad frames" in host.stderr and "0 missing samples" in host.stderr


@pytest.mark.skipif(
    shutil.which("cc") is None or shutil.which("make") is None, reason="no C compiler or make"
)
def test_c_example_device_refuses_an_unsupported_rate(tmp_path):
    # START with 300 Hz: EVENT 4 (device error) and nothing changes, so a device waiting for START stays
    # silent; the host logs the device's message and asks again, and never classifies anything.
    device, port = _example_device("--wait-start", "--seconds", "30")
    try:
        host = _run_host(port, tmp_path / "f.jsonl", "--fs", "300", "--duration", "3")
    finally:
        device.terminate()
        device.wait(timeout=10)
    assert host.returncode == 0, host.stderr
    assert "fs 300 Hz not supported" in host.stderr and "0 windows" in host.stderr
