"""Resident memory of the long-running runtime (issue #23 item 5: ``ecg-edge run --view`` <= 80 MB).

What a board's process keeps resident that it does not need, and what this module does about it:

- **Start-up code of the inference library.** Importing onnxruntime and building a session touch about 18 MiB
  of the library's 28 MiB of machine code (static initializers, the kernel's fault-around of 64 KiB per
  fault, graph optimizers that run once). A window runs a small part of it. :func:`release_library_pages`
  drops the library's clean, read-only file pages from this process (``madvise``): they are the file's bytes,
  so the code a window needs is read back in on its first use (from the page cache: minor faults, once) and
  the rest stops counting against the process. ``MADV_DONTNEED`` is used only on mappings without a single
  written page (smaps), ``MADV_PAGEOUT`` (never loses content) on other read-only ones.
- **One malloc arena per thread.** glibc gives each new thread its own arena (a heap of its own); the web view
  answers every request on a new thread. :func:`limit_arenas` (``mallopt(M_ARENA_MAX, 1)``) before the first
  thread keeps them all in one heap.
- **Freed heap after start-up.** Parsing the model and optimizing its graph free several MiB that glibc keeps
  in the heap; :func:`trim_heap` (``malloc_trim(0)``) returns whole free pages to the kernel.

All are no-ops where they do not apply (not Linux, not glibc, an old kernel): they return 0 / False.

A long-running command (``ecg-edge run``) calls :func:`set_long_running` before it loads the bundle; the
backends then call :func:`after_library_import` right after importing their runtime, so the import's own
start-up pages are released before the session is built and the start-up peak is lower too. Other callers
(file classification, tests, benchmarks) are left as they are.
"""

from __future__ import annotations

import sys

__all__ = [
    "INFERENCE_LIBRARIES",
    "M_ARENA_MAX",
    "MADV_DONTNEED",
    "MADV_PAGEOUT",
    "after_library_import",
    "limit_arenas",
    "release_library_pages",
    "resident_mib",
    "set_long_running",
    "trim_heap",
]

M_ARENA_MAX = -8  # malloc.h (glibc)
MADV_DONTNEED = 4  # linux/mman.h
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


def _mappings(smaps: str) -> list[tuple[int, int, str, str, dict[str, int]]]:
    """``(start, end, perms, path, {field: kB})`` of every mapping in a /proc/PID/smaps file."""
    out: list[tuple[int, int, str, str, dict[str, int]]] = []
    with open(smaps) as f:
        for line in f:
            head, _, rest = line.partition(" ")
            if "-" in head and not head.endswith(":"):
                fields = line.split(maxsplit=5)
                a, b = (int(v, 16) for v in fields[0].split("-"))
                out.append((a, b, fields[1], fields[5].strip() if len(fields) > 5 else "", {}))
            elif out and head.endswith(":") and rest.strip().endswith("kB"):
                out[-1][4][head[:-1]] = int(rest.split()[0])
    return out


def release_library_pages(parts: tuple[str, ...] = INFERENCE_LIBRARIES, smaps: str = "/proc/self/smaps") -> int:
    """Give back the resident read-only file pages of the libraries whose path holds one of ``parts``.

    A read-only mapping none of whose pages was ever written (``Anonymous`` and ``Private_Dirty`` 0 in smaps: no
    copy-on-write page, so every page equals the file's) is dropped with ``MADV_DONTNEED``: a later access reads
    the same bytes back from the file. Any other read-only mapping of the library (e.g. its relocated RELRO
    data) only gets ``MADV_PAGEOUT``, which never loses content. Returns the bytes of the mappings advised (0
    when nothing applied). Call it after start-up (import, session, warm-up), when the code that runs only once
    has run.
    """
    libc = _libc()
    if libc is None:
        return 0
    try:
        mappings = _mappings(smaps)
    except (OSError, ValueError, IndexError):
        return 0
    advised = 0
    for start, end, perms, path, kb in mappings:
        is_library = path.endswith(".so") or ".so." in path
        if perms not in ("r-xp", "r--p") or not is_library or not any(p in path for p in parts):
            continue
        clean = kb.get("Anonymous", 1) == 0 and kb.get("Private_Dirty", 1) == 0
        if libc.madvise(start, end - start, MADV_DONTNEED if clean else MADV_PAGEOUT) == 0:
            advised += end - start
    return advised


def limit_arenas(n: int = 1) -> bool:
    """glibc's ``mallopt(M_ARENA_MAX, n)``: threads created from now on share ``n`` malloc arenas instead of
    getting one each (the web view answers every request on a new thread). False where there is no glibc."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, int(n)))


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
