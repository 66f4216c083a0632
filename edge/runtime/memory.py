"""Resident memory of the long-running runtime (issue #23 item 5: ``ecg-edge run --view`` <= 80 MB).

Two things a board's process keeps resident that it does not need, and what this module does about them:

- **Start-up code of the inference library.** Importing onnxruntime and building a session touch about 18 MiB
  of the library's 28 MiB of machine code (static initializers, the kernel's fault-around of 64 KiB per
  fault, graph optimizers that run once). A window runs a small part of it. :func:`release_library_pages`
  asks the kernel to reclaim the clean, read-only file pages of those libraries (``madvise(MADV_PAGEOUT)``,
  Linux >= 5.4): the memory is really given back (pages no other process maps leave the page cache too), and
  the code a window needs is read back in on its first use (minor or major faults once, then resident again).
  MADV_PAGEOUT never changes a page's content (a private dirty page would go to swap, not be dropped), so it is
  safe on any mapping; it is applied only to ``r-xp``/``r--p`` mappings of the named libraries.
- **Freed heap after start-up.** Parsing the model and optimizing its graph free several MiB that glibc keeps
  in the heap; :func:`trim_heap` (``malloc_trim(0)``) returns whole free pages to the kernel.

Both are no-ops where they do not apply (not Linux, not glibc, an old kernel): they return 0 / False.

A long-running command (``ecg-edge run``) calls :func:`set_long_running` before it loads the bundle; the
backends then call :func:`after_library_import` right after importing their runtime, so the import's own
start-up pages are released before the session is built and the start-up peak is lower too. Other callers
(file classification, tests, benchmarks) are left as they are.
"""

from __future__ import annotations

import sys

__all__ = [
    "INFERENCE_LIBRARIES",
    "MADV_PAGEOUT",
    "after_library_import",
    "release_library_pages",
    "resident_mib",
    "set_long_running",
    "trim_heap",
]

MADV_PAGEOUT = 21  # linux/mman.h (since 5.4)

# Path parts of the shared libraries of the inference runtimes (onnxruntime; LiteRT and its tflite fallback).
INFERENCE_LIBRARIES: tuple[str, ...] = ("/onnxruntime/", "/ai_edge_litert/", "/tflite_runtime/")


_long_running = False


def set_long_running(on: bool = True) -> None:
    """Mark this process as a long-running runtime: :func:`after_library_import` releases pages from now on."""
    global _long_running
    _long_running = bool(on)


def after_library_import() -> int:
    """Called by a backend right after importing its runtime: releases its start-up pages in a long-running
    process (:func:`set_long_running`), does nothing otherwise. Returns the bytes advised."""
    return release_library_pages() if _long_running else 0


def _libc():  # noqa: ANN202 - ctypes.CDLL | None
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes  # numpy has imported it already: no extra resident memory

        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.madvise.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


def release_library_pages(parts: tuple[str, ...] = INFERENCE_LIBRARIES, maps: str = "/proc/self/maps") -> int:
    """Ask the kernel to reclaim the read-only file pages of the libraries whose path holds one of ``parts``.

    Returns the bytes of the mappings advised (0 when nothing applied). Call it after start-up (import,
    session, warm-up), when the code that runs only once has run.
    """
    libc = _libc()
    if libc is None:
        return 0
    try:
        with open(maps) as f:
            lines = f.readlines()
    except OSError:
        return 0
    advised = 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[1] not in ("r-xp", "r--p"):
            continue
        path = fields[5].strip()
        is_library = path.endswith(".so") or ".so." in path
        if not is_library or not any(p in path for p in parts):
            continue
        start, end = (int(v, 16) for v in fields[0].split("-"))
        if libc.madvise(start, end - start, MADV_PAGEOUT) == 0:
            advised += end - start
    return advised


def trim_heap() -> bool:
    """``malloc_trim(0)`` on glibc: free heap pages go back to the kernel. False where there is none."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        return False
    return bool(trim(0))


def resident_mib() -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of this process in MiB from /proc (None where there is no /proc)."""
    try:
        with open("/proc/self/status") as f:
            status = f.read()
    except OSError:
        return None
    values = {}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    if len(values) != 2:
        return None
    return values["VmRSS"], values["VmHWM"]
