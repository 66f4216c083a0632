"""What the bedside web view costs the board: CPU and peak memory of ``ecg-edge run`` with and without ``--view``.

Each run is a real ``ecg-edge run`` process (default bundle, onnxruntime, one thread) reading the device
simulator (``ecg-device simulate``, synthetic LBBB, 8 channels at 500 Hz, real time) over a pty for
``--seconds``. With ``--view`` a page is emulated: this script polls ``/api/state?since=N`` four times a
second as the page's JavaScript does (the browser's own cost is the kiosk's, not the runtime's). The runtime's
CPU time and peak resident memory come from the kernel (``os.wait4`` rusage of the child), so they include
everything the process did. The conditions alternate, ``--repeats`` times each. Writes the ``bench_webview``
section of BENCHMARKS.md.

    python bench/bench_webview.py --seconds 45 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from report import REPO, machine, machine_line, write_section  # bench/report.py, beside this script

BUDGET_MIB = 80  # ecg-edge run --view with a page polling it (issue #23 item 5); rusage reports KiB, read as MiB


def _simulator(seconds: float) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "firmware_bridge.cli", "simulate", "--synthetic", "lbbb", "--channels", "8",
           "--duration", str(seconds + 15)]  # fmt: skip
    sim = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = sim.stdout.readline().strip()
    if not line.startswith("PTY "):
        raise SystemExit(f"the simulator did not start: {line!r}")
    return sim, line.split(" ", 1)[1]


def _poll(url: str, stop: threading.Event, stats: dict) -> None:
    """The page's polling loop: 4 requests a second, each asking only for what is new (as app.js does)."""
    cursor = version = None
    while not stop.wait(0.25):
        q = "" if cursor is None else f"?since={cursor}&v={version}"
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url + "api/state" + q, timeout=2) as res:
                body = res.read()
        except OSError:
            stats["errors"] += 1
            continue
        stats["ms"].append((time.perf_counter() - t0) * 1e3)
        stats["bytes"].append(len(body))
        state = json.loads(body)
        cursor, version = state["trace"].get("end") or cursor, state["version"]


def run_once(seconds: float, view: bool) -> dict:
    sim, port = _simulator(seconds)
    # edge.cli.entry is what the ecg-edge console script runs (BLAS capped at one thread before numpy loads).
    cmd = [sys.executable, "-m", "edge.cli.entry", "run", "--port", port, "--duration", str(seconds), "--quiet"]
    if view:
        cmd += ["--view", "127.0.0.1:0"]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stats = {"ms": [], "bytes": [], "errors": 0}
    stop = threading.Event()
    poller = None
    stderr_lines = []
    if view:
        for line in proc.stderr:
            stderr_lines.append(line)
            found = re.search(r"bedside view at (http://\S+)", line)
            if found:
                poller = threading.Thread(target=_poll, args=(found.group(1), stop, stats), daemon=True)
                poller.start()
                break
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    stop.set()
    if poller is not None:
        poller.join(5)
    sim.terminate()
    sim.wait(10)
    stderr_lines += proc.stderr.readlines()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("ecg-edge run failed:\n" + "".join(stderr_lines))
    summary = next((ln for ln in stderr_lines if "stopped" in ln), "")
    windows = re.search(r"(\d+) windows", summary)
    return {
        "view": view,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": wall,  # start-up (bundle load) included, as in the CPU time
        "max_rss_mb": usage.ru_maxrss / 1024,
        "windows": int(windows.group(1)) if windows else None,
        "polls": len(stats["ms"]),
        "poll_errors": stats["errors"],
        "poll_ms_median": statistics.median(stats["ms"]) if stats["ms"] else None,
        "poll_ms_p95": sorted(stats["ms"])[int(0.95 * (len(stats["ms"]) - 1))] if stats["ms"] else None,
        "poll_kb_median": statistics.median(stats["bytes"]) / 1024 if stats["bytes"] else None,
    }


# The breakdown: one fresh process goes through the runtime's start-up in its order and reads its own resident
# set (VmRSS) after each step, then classifies windows as the stream does; VmHWM is its peak. It runs with the
# environment edge.cli.entry sets (one BLAS thread) and marks itself long-running as `ecg-edge run` does.
_BREAKDOWN = r"""
import re, sys
def mem():
    s = open("/proc/self/status").read()
    return [int(re.search(k + r":\s+(\d+)", s).group(1)) / 1024 for k in ("VmRSS", "VmHWM")]
steps = [("Python interpreter", mem()[0])]
import numpy as np
steps.append(("numpy (one BLAS thread)", mem()[0]))
import edge.cli.main, edge.cli.run, edge.runtime.engine, edge.runtime.serial, edge.runtime.jsonl, edge.views.terminal
steps.append(("edge modules of `ecg-edge run`", mem()[0]))
import edge.views.webview
steps.append(("web view modules (`--view`: http.server, email, html)", mem()[0]))
from edge.runtime import memory
memory.set_long_running(); memory.limit_arenas(1)
import onnxruntime
steps.append(("onnxruntime library (import)", mem()[0]))
memory.after_library_import()
steps.append(("its start-up code released (madvise of the library's clean read-only pages)", mem()[0]))
from edge.runtime.engine import Classifier
c = Classifier.from_bundle(None)
steps.append(("bundle, onnxruntime session (model bytes not kept), warm-up inference", mem()[0]))
memory.release_library_pages(); memory.trim_heap()
steps.append(("start-up released again (library pages, malloc_trim of the heap)", mem()[0]))
x = np.load(sys.argv[1])
c.classify_window(x, 500.0)
steps.append(("first window (lazy imports, measurement/decision arrays, code read back in)", mem()[0]))
for _ in range(9):
    c.classify_window(x, 500.0)
steps.append(("9 more windows", mem()[0]))
watch = ("numpy.ma", "scipy", "torch", "ssl", "importlib.resources", "tempfile")
print(repr({"steps": steps, "hwm": mem()[1], "loaded": [m for m in watch if m in sys.modules]}))
"""


def breakdown() -> dict:
    """Resident memory after each start-up step of the runtime, in one fresh process (no server running)."""
    import ast
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        window = Path(tmp) / "lbbb.npy"
        make = ("import numpy as np; from firmware_bridge.synthetic import synthesize; "
                f"np.save({str(window)!r}, synthesize(duration_s=10.0, rhythm='lbbb'))")
        subprocess.run([sys.executable, "-c", make], cwd=REPO, check=True)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        out = subprocess.run([sys.executable, "-c", _BREAKDOWN, str(window)], cwd=REPO, check=True,
                             capture_output=True, text=True, env=env).stdout
    return ast.literal_eval(out.strip().splitlines()[-1])


def breakdown_lines(b: dict) -> list[str]:
    lines = [
        "",
        "Where the resident memory goes (one fresh process taking the runtime's start-up steps in order, "
        "then classifying the synthetic LBBB window as the stream does; no server thread, no serial port):",
        "",
        "| step | resident after (MiB) | added (MiB) |",
        "|---|---:|---:|",
    ]
    prev = 0.0
    for name, rss in b["steps"]:
        lines.append(f"| {name} | {rss:.1f} | {rss - prev:+.1f} |")
        prev = rss
    loaded = ", ".join(b["loaded"]) or "none"
    lines += ["", f"Peak of that process (VmHWM): {b['hwm']:.1f} MiB. Of numpy.ma, scipy, torch, ssl, "
              f"importlib.resources, tempfile loaded after the windows: {loaded}.",
              "",
              "What `ecg-edge run` does at start-up to stay under the budget (edge/runtime/memory.py): onnxruntime's "
              "Python session no longer keeps the model's bytes (2.5 MiB); the library's clean read-only pages "
              "(start-up code: static initializers, graph optimizers, the kernel's fault-around) are dropped from "
              "the process after the import and again after the warm-up, and the code a window needs is read back "
              "from the page cache on first use; `malloc_trim` after the warm-up; one malloc arena for all threads "
              "(the web view answers each request on a new thread); numpy's BLAS capped at one thread by the console "
              "entry. None changes a result (the JSON lines of a stream are identical)."]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=45.0, help="length of each run (default 45)")
    p.add_argument("--repeats", type=int, default=2, help="runs per condition, alternating (default 2)")
    p.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    args = p.parse_args()
    runs = []
    for _ in range(args.repeats):
        for view in (False, True):
            r = run_once(args.seconds, view)
            runs.append(r)
            print(json.dumps(r), flush=True)
    rows = []
    for view in (False, True):
        rs = [r for r in runs if r["view"] == view]
        cpu = [100 * r["cpu_s"] / r["wall_s"] for r in rs]
        rss = [r["max_rss_mb"] for r in rs]
        rows.append((view, statistics.mean(cpu), min(cpu), max(cpu), statistics.mean(rss), max(rss), rs))
    base, web = rows
    polled = [r for r in web[6] if r["polls"]]
    lines = [
        "## Bedside web view: cost on the runtime",
        "",
        f"`python bench/bench_webview.py --seconds {args.seconds:g} --repeats {args.repeats}`: `ecg-edge run` (default "
        "bundle, onnxruntime, 1 thread) on the simulator (synthetic LBBB, 8 channels, 500 Hz, real time) over a "
        "pty, with and without `--view` and a page polling `/api/state` 4 times a second. CPU = (user + system "
        f"time) / wall time of the runtime process; memory = its peak resident set (rusage). N = {args.repeats} "
        f"runs of {args.seconds:g} s per condition, alternating.",
        "",
        "| runtime | CPU, mean (min-max) | peak RSS, mean (max) |",
        "|---|---|---|",
        f"| without `--view` | {base[1]:.1f} % ({base[2]:.1f}-{base[3]:.1f}) | {base[4]:.1f} MB ({base[5]:.1f}) |",
        f"| with `--view` and a polling page | {web[1]:.1f} % ({web[2]:.1f}-{web[3]:.1f}) | {web[4]:.1f} MB "
        f"({web[5]:.1f}) |",
        "",
        f"Difference: {web[1] - base[1]:+.1f} % of one core and {web[4] - base[4]:+.1f} MB peak RSS.",
    ]
    if polled:
        n = sum(r["polls"] for r in polled)
        med = statistics.median(r["poll_ms_median"] for r in polled)
        p95 = max(r["poll_ms_p95"] for r in polled)
        kb = statistics.median(r["poll_kb_median"] for r in polled)
        errors = sum(r["poll_errors"] for r in web[6])
        lines.append(
            f"Polls answered: {n} ({errors} failed, about one per run as the runtime stops); response time median {med:.1f} ms, p95 {p95:.1f} ms; "
            f"median response {kb:.1f} KiB (0.25 s of 12 leads at 250 Hz plus the state)."
        )
    budget = "met" if web[5] <= BUDGET_MIB else "**not met**"
    lines.append(f"Budget: {BUDGET_MIB} MB resident with a page polling (issue #23): {budget} (max {web[5]:.1f}).")
    lines += breakdown_lines(breakdown())
    lines += ["", machine_line(machine())]
    write_section(args.markdown, "bench_webview", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
