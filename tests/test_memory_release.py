"""What ``ecg-edge run`` does to stay under its resident-memory budget (issue #23 item 5; edge.runtime.memory):
which mappings it asks the kernel to reclaim, that the model still gives the same embeddings afterwards, that
onnxruntime no longer keeps the model's bytes, and that the console entry caps numpy's BLAS at one thread."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edge.runtime import memory

REPO_ROOT = __file__.rsplit("/tests/", 1)[0]

def _smaps(perms_path_dirty: list[tuple[str, str, int]]) -> str:
    out, addr = [], 0x7F0000000000
    for perms, path, dirty in perms_path_dirty:
        out.append(f"{addr:x}-{addr + 0x4000:x} {perms} 00000000 08:01 1                    {path}")
        out += ["Size:                 16 kB", "Rss:                  12 kB", f"Private_Dirty:        {dirty} kB",
                f"Anonymous:            {dirty} kB", "THPeligible:    0", "VmFlags: rd ex mr mw me"]
        addr += 0x4000
    return "\n".join(out) + "\n"


_ORT = "/venv/onnxruntime/capi/onnxruntime_pybind11_state.so"
_SMAPS = [
    ("r--p", _ORT, 0),  # 0: clean headers and rodata -> DONTNEED
    ("r-xp", _ORT, 0),  # 1: clean code -> DONTNEED
    ("r--p", _ORT, 8),  # 2: relocated RELRO (written once) -> PAGEOUT, never DONTNEED
    ("rw-p", _ORT, 4),  # 3: writable data: left alone
    ("r--p", "/venv/onnxruntime/datasets/model.onnx", 0),  # 4: not a library
    ("r-xp", "/venv/numpy/_core/_multiarray_umath.so", 0),  # 5: not an inference runtime
    ("r-xp", "/venv/ai_edge_litert/libtensorflowlite.so.2", 0),  # 6: LiteRT's code -> DONTNEED
    ("rw-p", "", 0),  # 7: anonymous
]


class _FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def madvise(self, start: int, length: int, advice: int) -> int:
        self.calls.append((start, length, advice))
        return 0

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1


def test_only_read_only_pages_of_the_inference_libraries_are_advised(tmp_path, monkeypatch):
    smaps = tmp_path / "smaps"
    smaps.write_text(_smaps(_SMAPS))
    fake = _FakeLibc()
    monkeypatch.setattr(memory, "_libc", lambda: fake)
    advised = memory.release_library_pages(smaps=str(smaps))
    base = 0x7F0000000000
    want = [(0, memory.MADV_DONTNEED), (1, memory.MADV_DONTNEED), (2, memory.MADV_PAGEOUT), (6, memory.MADV_DONTNEED)]
    assert fake.calls == [(base + i * 0x4000, 0x4000, advice) for i, advice in want]
    assert advised == 4 * 0x4000


def test_nothing_is_released_unless_the_process_is_long_running(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "release_library_pages", lambda: calls.append(1) or 4096)
    monkeypatch.setattr(memory, "_long_running", False)
    assert memory.after_library_import() == 0 and calls == []
    memory.set_long_running()  # monkeypatch restores _long_running afterwards
    assert memory.after_library_import() == 4096 and calls == [1]


def test_no_libc_means_no_release(monkeypatch):
    monkeypatch.setattr(memory, "_libc", lambda: None)
    assert memory.release_library_pages() == 0
    assert memory.trim_heap() is False
    assert memory.limit_arenas(1) is False


def test_arenas_are_limited_through_mallopt(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setattr(memory, "_libc", lambda: fake)
    assert memory.limit_arenas(1) is True
    assert fake.calls == [("mallopt", memory.M_ARENA_MAX, 1)]


_RELEASED_SESSION = """
import sys
import numpy as np
from edge.runtime import memory
from edge.runtime.engine import Classifier
from firmware_bridge.synthetic import synthesize
memory.set_long_running()
c = Classifier.from_bundle(None)
assert c.backend.session._model_bytes is None, "onnxruntime still holds the model's bytes"
x = np.stack([c.preprocess(synthesize(duration_s=10.0, rhythm=r, seed=3), 500.0) for r in ("sinus", "lbbb", "afib")])
before = c.embed(x)
advised = memory.release_library_pages()
trimmed = memory.trim_heap()
after = c.embed(x)
np.save(sys.argv[1], np.stack([before, after]))
print(advised)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_PAGEOUT and /proc are Linux's")
def test_embeddings_are_bit_identical_after_the_release(tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "emb.npy"
    res = subprocess.run([sys.executable, "-c", _RELEASED_SESSION, str(out)], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    if res.returncode != 0:
        pytest.fail(res.stderr[-2000:])
    assert int(res.stdout.split()[-1]) > 1 << 20  # onnxruntime's code mappings were advised
    before, after = np.load(out)
    assert np.array_equal(before, after)


_THREADS = """
import os
{setup}
import numpy  # noqa: F401
print(os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task")))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_the_console_entry_caps_blas_at_one_thread():
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}  # fmt: skip
    run = lambda setup: subprocess.run(  # noqa: E731
        [sys.executable, "-c", _THREADS.format(setup=setup)], cwd=REPO_ROOT, capture_output=True, text=True,
        env=env, timeout=60,
    ).stdout.split()
    assert run("import edge.cli.entry") == ["1", "1"]  # the variable set, and no BLAS worker thread
    env["OPENBLAS_NUM_THREADS"] = "2"
    assert run("import edge.cli.entry")[0] == "2"  # a value the user set is kept
