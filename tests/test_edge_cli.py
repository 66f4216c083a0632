"""``ecg-edge classify | info | labels --bundle | run`` and the rule that the runtime never needs torch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.cli.main import main
from edge.runtime.engine import Classifier
from firmware_bridge.synthetic import synthesize

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    return synthesize(rhythm="sinus_tachy", fs=500, seed=21, duration_s=25.0)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- classify ---------------------------------------------------------------------------------------
def test_classify_npy_windows_match_the_api(tmp_path, tiny_bundle, ecg, capsys):
    path = tmp_path / "ecg.npy"
    np.save(path, ecg)
    assert main(["classify", str(path), "--fs", "500", "--json", "--bundle", str(tiny_bundle)]) == 0
    lines = _json_lines(capsys.readouterr().out)
    assert [line["window_start_sample"] for line in lines] == [0, 5000, 7500]  # + one aligned to the end
    with Classifier.from_bundle(tiny_bundle) as clf:
        ref = clf.classify_window(ecg[:, 5000:10000], 500)
    assert [t["id"] for t in lines[1]["top"]] == [t["id"] for t in ref.top]
    assert lines[1]["findings"] == ref.findings and lines[1]["source"] == str(path)
    assert (
        main(["classify", str(path), "--fs", "500", "--json", "--hop", "5", "--bundle", str(tiny_bundle)])
        == 0
    )
    assert [line["window_start_sample"] for line in _json_lines(capsys.readouterr().out)] == [
        0,
        2500,
        5000,
        7500,
    ]


def test_classify_eight_channel_npy_with_leads(tmp_path, tiny_bundle, ecg, capsys):
    path = tmp_path / "ecg8.npy"
    np.save(path, ecg[[0, 1, 6, 7, 8, 9, 10, 11], :5000])
    assert (
        main(
            [
                "classify",
                str(path),
                "--fs",
                "500",
                "--leads",
                "I,II,V1,V2,V3,V4,V5,V6",
                "--json",
                "--bundle",
                str(tiny_bundle),
            ]
        )
        == 0
    )
    (line,) = _json_lines(capsys.readouterr().out)
    assert line["quality"]["ok"] and len(line["top"]) == 5


def test_classify_csv_with_and_without_time(tmp_path, tiny_bundle, ecg, capsys):
    names = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    t = np.arange(5000) / 500
    with_time = tmp_path / "with_time.csv"
    rows = np.column_stack([t, ecg[:, :5000].T])
    np.savetxt(with_time, rows, delimiter=",", header=",".join(["time", *names]), comments="", fmt="%.6f")
    no_time = tmp_path / "no_time.csv"
    np.savetxt(no_time, ecg[:, :5000].T, delimiter=",", header=",".join(names), comments="", fmt="%.6f")
    assert main(["classify", str(with_time), "--json", "--bundle", str(tiny_bundle)]) == 0
    (a,) = _json_lines(capsys.readouterr().out)
    assert main(["classify", str(no_time), "--fs", "500", "--json", "--bundle", str(tiny_bundle)]) == 0
    (b,) = _json_lines(capsys.readouterr().out)
    assert a["fs"] == 500 and [x["id"] for x in a["top"]] == [x["id"] for x in b["top"]]
    assert main(["classify", str(no_time), "--bundle", str(tiny_bundle)]) == 1
    assert "give --fs" in capsys.readouterr().err


def test_classify_wfdb_table_and_whole(tmp_path, tiny_bundle, ecg, capsys):
    wfdb = pytest.importorskip("wfdb")
    names = ["i", "ii", "v1", "v2", "v3", "v4", "v5", "v6"]  # odd case, no derived leads
    x = ecg[[0, 1, 6, 7, 8, 9, 10, 11]]
    wfdb.wrsamp(
        "rec",
        500,
        ["mV"] * 8,
        names,
        d_signal=np.round(x.T * 1000).astype(np.int16),
        fmt=["16"] * 8,
        adc_gain=[1000.0] * 8,
        baseline=[0] * 8,
        write_dir=str(tmp_path),
    )
    assert main(["classify", str(tmp_path / "rec.hea"), "--bundle", str(tiny_bundle)]) == 0
    out = capsys.readouterr().out
    assert "500 Hz" in out and "0.0 s" in out and "10.0 s" in out and "OK" in out
    assert main(["classify", str(tmp_path / "rec"), "--whole", "--json", "--bundle", str(tiny_bundle)]) == 0
    (line,) = _json_lines(capsys.readouterr().out)
    assert line["whole"] is True and line["windows"] == 3 and line["quality"]["windows_ok"] == 3


def test_classify_errors_are_one_line(tmp_path, tiny_bundle, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((5000, 12), np.float32))
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((12, 1000), np.float32))
    odd = tmp_path / "x.txt"
    odd.write_text("hello")
    for args, message in [
        ([str(tmp_path / "missing.npy"), "--fs", "500"], "file not found"),
        ([str(bad), "--fs", "500"], "looks like [samples, leads]"),
        ([str(short), "--fs", "500"], "the model needs 10 s"),
        ([str(bad)], "give --fs"),
        ([str(odd)], "unknown format"),
    ]:
        assert main(["classify", *args, "--bundle", str(tiny_bundle)]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert main(["classify", str(short), "--fs", "500", "--bundle", str(tmp_path / "nope")]) == 1
    assert "bundle" in capsys.readouterr().err


def test_missing_default_bundle_says_so(monkeypatch, tmp_path, capsys):
    import edge.bundle.loader

    monkeypatch.setattr(edge.bundle.loader, "default_bundle_path", lambda: tmp_path / "default")
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert "default bundle is not installed" in err and err.count("\n") == 1


# --- info and labels --------------------------------------------------------------------------------
def test_info(tiny_bundle, capsys):
    assert main(["info", "--bundle", str(tiny_bundle)]) == 0
    out = capsys.readouterr().out
    for text in (
        "ecg-clip-ja/bundle v1",
        "encoder_int8.onnx",
        "onnx_int8",
        "100 Hz, 10 s windows",
        "input ecg [batch, 12, 1000]",
        "labels      100",
        "TEST_NEW1",
        "thresholds  100 set",
        "static QDQ",
        "text encoder",
        "provenance",
        "sha256 of every one matches",
    ):
        assert text in out, text
    assert main(["info", "--bundle", str(tiny_bundle), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["embedding_dim"] == 64


def test_info_refuses_a_tampered_bundle(tmp_path, tiny_bundle, capsys):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    with (copy / "label_embeddings.npy").open("r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\x00\x01\x02\x03")
    assert main(["info", "--bundle", str(copy)]) == 1
    assert "sha256 does not match" in capsys.readouterr().err


def test_labels_with_bundle_lists_thresholds_and_new_labels(tiny_bundle, capsys):
    assert main(["labels", "--bundle", str(tiny_bundle)]) == 0
    out = capsys.readouterr().out
    table, note = out.split("\n未検証 (zero-shot): ")
    assert "threshold" in table and "TEST_NEW2" in table and "new" in table and len(table.splitlines()) == 101
    assert note.startswith("2 label(s) had no training example") and "TEST_NEW1, TEST_NEW2" in note
    assert main(["labels", "試験", "--bundle", str(tiny_bundle), "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert {h["id"] for h in hits} == {"TEST_NEW1", "TEST_NEW2"} and all("threshold" in h for h in hits)


# --- no torch ---------------------------------------------------------------------------------------
_BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed on the bedside device")
        return None
sys.meta_path.insert(0, _NoTorch())
"""


def _python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_edge_never_imports_torch():
    code = (
        "import sys\n"
        "import edge, edge.runtime.engine, edge.runtime.serial, edge.cli.main, edge.cli.runtime, edge.runtime.backends, edge.dsp.quality\n"
        "import edge.readers.records, edge.views.terminal, edge.cli.info, edge.dsp.ring\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime imported at import time'\n"
        "print('ok')"
    )
    proc = _python(code)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_classify_runs_with_torch_blocked(tmp_path, tiny_bundle, ecg):
    path = tmp_path / "ecg.npy"
    np.save(path, ecg[:, :5000])
    code = _BLOCK_TORCH + (
        "from edge.cli.main import main\n"
        f"rc = main(['classify', {str(path)!r}, '--fs', '500', '--json', '--bundle', {str(tiny_bundle)!r}])\n"
        "assert 'torch' not in sys.modules\n"
        "assert 'scipy.signal' not in sys.modules, 'scipy.signal costs ~78 MB of resident memory on the device'\n"
        "sys.exit(rc)\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    (line,) = _json_lines(proc.stdout)
    assert line["quality"]["ok"] and len(line["top"]) == 5


# --- run as a process: SIGTERM keeps every line written ---------------------------------------------
def test_sigterm_during_run_keeps_all_written_lines(tmp_path, tiny_bundle):
    from firmware_bridge.leads import LEADS_12
    from firmware_bridge.simulator import DeviceSimulator, SimulatorConfig
    from firmware_bridge.sources import SyntheticSource
    from firmware_bridge.transport import FdTransport, open_pty

    master, port = open_pty()
    sim = DeviceSimulator(
        SyntheticSource("sinus", LEADS_12, 1000, seed=8),
        FdTransport(master, slave_path=port),
        SimulatorConfig(speed=10, wait_start=True),
    )
    sim.start_thread()
    out = tmp_path / "run.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "edge.cli.main",
        "run",
        "--port",
        port,
        "--bundle",
        str(tiny_bundle),
        "--hop",
        "1",
        "--out",
        str(out),
        "--fsync",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and sum('"event"' not in ln for ln in out.read_text().splitlines()) >= 3):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no windows written"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        sim.stop()
    assert proc.returncode == 0, stderr
    every = _json_lines(out.read_text())
    written = [line for line in every if "event" not in line]  # event lines (device_changed) come too
    assert len(written) >= 3 and out.read_text().endswith("\n")
    assert [line["window_start_sample"] for line in written] == [i * 500 for i in range(len(written))]
    assert _json_lines(stdout) == every  # stdout is not a terminal: the same JSON lines
    assert "stopped (SIGTERM)" in stderr and f"{len(written)} windows" in stderr


def test_run_with_a_malformed_port_url_fails_at_once(tiny_bundle, capsys):
    assert main(["run", "--port", "nosuch://device", "--bundle", str(tiny_bundle), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "cannot open nosuch://device" in err and err.count("\n") == 1
