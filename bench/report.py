"""Shared pieces of the bench scripts: the machine they ran on, and their section of BENCHMARKS.md.

Each script owns one section between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` and rewrites
only that, so the scripts can be run separately and in any order.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEADER = "# Benchmarks\n\nWritten by the scripts in `bench/` (`make bench`); every figure names the command that produced it.\n"


def median_ci(v) -> tuple[float, float]:
    """Distribution-free 95 % interval of the median (binomial order statistics)."""
    import numpy as np

    v = np.sort(np.asarray(v, dtype=float))
    n = v.size
    if n < 6:
        return float(v[0]), float(v[-1])
    half = 1.96 * np.sqrt(n) / 2.0
    lo, hi = int(np.floor(n / 2.0 - half)), int(np.ceil(n / 2.0 + half))
    return float(v[max(lo, 0)]), float(v[min(hi, n - 1)])


def lead_names(sig_names: list[str]) -> list[str]:
    """A record's channel names in the device's spelling (``canonical_lead_name``); others kept as they are."""
    from edge.dsp.signal import SignalError, canonical_lead_name

    out = []
    for s in sig_names:
        try:
            out.append(canonical_lead_name(s))
        except SignalError:
            out.append(s)
    return out


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def machine() -> dict:
    """CPU model, core count, Python and library versions."""
    import numpy as np

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "onnxruntime": ort,
            "numpy": np.__version__, "platform": platform.platform()}


def machine_line(info: dict) -> str:
    return (f"Machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, onnxruntime "
            f"{info['onnxruntime']}, numpy {info['numpy']} ({info['platform']})")


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of the markdown file with ``body``."""
    start, end = markers(name)
    section = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda m: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def cpu_profile(run, title: str, tottime: int = 30, cumulative: int = 30) -> str:
    """``run()`` under cProfile with the CPU-time clock (the machine is shared), as text: the ``tottime`` and
    ``cumulative`` tops, headed by ``title``."""
    import cProfile
    import io
    import pstats
    import time

    pr = cProfile.Profile(timer=time.process_time)
    pr.enable()
    run()
    pr.disable()
    s = io.StringIO()
    st = pstats.Stats(pr, stream=s)
    st.sort_stats("tottime").print_stats(tottime)
    st.sort_stats("cumulative").print_stats(cumulative)
    return f"{title}\n" + s.getvalue()

