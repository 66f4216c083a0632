"""Write the README's edge-runtime figures and edge dependency list from their one source each.

The README once quoted start-up, the paired torch/int8 ratio, streaming CPU and the bundle size from earlier
runs than BENCHMARKS.md and the model card. Now its table between ``<!-- readme_figures:start -->`` and
``<!-- readme_figures:end -->`` is generated here from BENCHMARKS.md's ``bench_edge`` section (written by
``bench/bench_edge.py``) and the default bundle's manifest (the bytes of every file it lists, as the model
card counts them); the list of what ``pip install .[edge]`` installs (between ``<!-- edge_deps:start -->``
and ``<!-- edge_deps:end -->``, twice) from pyproject.toml. ``make bench`` runs it after the benchmarks;
``--check`` exits 1 when the README differs (tests/test_readme_figures.py runs it).

    python scripts/update_readme_figures.py [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BENCHMARKS = REPO / "BENCHMARKS.md"
BUNDLE = REPO / "edge" / "bundles" / "default"
PYPROJECT = REPO / "pyproject.toml"
FIGURES = ("<!-- readme_figures:start -->", "<!-- readme_figures:end -->")
DEPS = ("<!-- edge_deps:start -->", "<!-- edge_deps:end -->")


class FigureError(ValueError):
    """A figure the source no longer states (its wording changed): fix the pattern, never guess the value."""


def _find(pattern: str, text: str, what: str) -> re.Match:
    m = re.search(pattern, text)
    if m is None:
        raise FigureError(f"BENCHMARKS.md bench_edge section: {what} not found (pattern {pattern!r})")
    return m


def edge_section(text: str) -> str:
    start, end = "<!-- bench_edge:start -->", "<!-- bench_edge:end -->"
    if start not in text or end not in text:
        raise FigureError("BENCHMARKS.md has no bench_edge section: run bench/bench_edge.py")
    return text[text.index(start) : text.index(end)]


def bench_figures(text: str) -> dict:
    """The edge figures as BENCHMARKS.md states them (strings, exactly as written there)."""
    sec = edge_section(text)
    return {
        "bundle_id": _find(r"Bundle: `([^`]+)`", sec, "bundle id").group(1),
        "machine": _find(r"Machine: ([^,]+, \d+ cores)", sec, "machine").group(1),
        "int8_ms": _find(r"\| int8 ONNX \(onnxruntime\) \| ([\d.]+) \|", sec, "int8 ms per window").group(1),
        "paired": _find(
            r"paired: median ([\d.]+x) \(range ([\d.]+)–([\d.]+x)\)", sec, "paired ratio"
        ).groups(),
        "stream": _find(
            r"\| wire bytes -> Runtime \| [\d.]+ \| \d+ \| ([\d.]+) \|", sec, "streaming CPU"
        ).group(1),
        "startup": _find(
            r"start-up, process start to first window classified: ([\d.]+ s)", sec, "start-up"
        ).group(1),
        "rss": _find(r"resident memory[^:]*: ([\d.]+ MiB)", sec, "resident memory").group(1),
        "load": (m.group(1) if (m := re.search(r"Load average while it ran: ([\d.]+)", sec)) else None),
    }


def _verdict(met: bool) -> str:
    return "" if met else " **not met**"


def bundle_size() -> tuple[float, list[str], str]:
    """(MB of every file the default bundle's manifest lists, its encoder formats, its id as the runtime
    names it: ``edge.runtime.engine.bundle_id``, name and the start of the sorted manifest's sha256)."""
    man = json.loads((BUNDLE / "manifest.json").read_text(encoding="utf-8"))
    size = sum(int(f["bytes"]) for f in man["files"].values())
    formats = sorted(k for k, name in (man.get("models") or {}).items() if name) or ["onnx_int8"]
    digest = hashlib.sha256(json.dumps(man, sort_keys=True).encode()).hexdigest()[:12]
    name = man.get("name") or man.get("provenance", {}).get("name") or "bundle"
    return size / 1e6, formats, f"{name}@{digest}"


def figures_table(bench_text: str) -> str:
    f = bench_figures(bench_text)
    mb, formats, current = bundle_size()
    ratio, low, high = f["paired"]
    mib = float(f["rss"].split()[0])
    int8_met = float(f["int8_ms"]) <= 1.0 and float(ratio.rstrip("x")) >= 8.0
    rows = [
        "| edge runtime figure | result | target |",
        "|---|---|---|",
        f"| int8 ONNX per window, 1 thread; torch eager fp32 / int8 (paired, median and range) | {f['int8_ms']} ms; "
        f"{ratio.replace('x', '×')} ({low}–{high.replace('x', '×')}) | ≤ 1 ms; ≥ 8×{_verdict(int8_met)} |",
        f"| streaming pipeline, 12 leads at 500 Hz (wire bytes to output) | {f['stream']} % of one core | ≤ 1 %"
        f"{_verdict(float(f['stream']) <= 1.0)} |",
        f"| runtime resident memory (no torch, no scipy), with measurements | {f['rss']} ({mib * 1.048576:.1f} MB) | "
        f"≤ 80 MB{_verdict(mib * 1.048576 <= 80.0)} |",
        f"| start-up to first window classified | {f['startup']} | ≤ 1 s{_verdict(float(f['startup'].split()[0]) <= 1.0)} |",
        f"| bundle size (every file of the manifest; {', '.join(formats)}) | {mb:.2f} MB | ≤ 3 MB{_verdict(mb <= 3.0)} |",
    ]
    which = f"bundle `{f['bundle_id']}`" + (
        ""
        if current == f["bundle_id"]
        else f" (size: the shipped bundle `{current}`, re-exported since; timings not re-run)"
    )
    load = (
        f" with a load average of {f['load']} (medians; the fastest runs are in BENCHMARKS.md)"
        if f["load"]
        else ""
    )
    note = (
        f"Edge figures of {which} on {f['machine']}{load}, copied from BENCHMARKS.md's edge section and "
        f"the bundle's manifest by `scripts/update_readme_figures.py` (`make bench` runs it)."
    )
    return "\n".join([note, "", *rows])


def edge_dependencies() -> str:
    """What ``pip install .[edge]`` installs: the core dependencies and the edge extra, by name."""
    text = PYPROJECT.read_text(encoding="utf-8")
    core = re.search(r"^dependencies = \[(.*?)\]", text, re.S | re.M)
    edge = re.search(r"^edge = \[(.*?)\]", text, re.M)
    if core is None or edge is None:
        raise FigureError("pyproject.toml: dependencies or the edge extra not found")
    names = re.findall(r'"([A-Za-z0-9_.-]+)', core.group(1) + edge.group(1))
    return ", ".join(dict.fromkeys(names))


def _replace(text: str, markers: tuple[str, str], body: str, inline: bool) -> str:
    start, end = markers
    if start not in text:
        raise FigureError(f"README.md has no {start} marker")
    sep = "" if inline else "\n"
    return re.sub(
        re.escape(start) + r".*?" + re.escape(end),
        lambda m: f"{start}{sep}{body}{sep}{end}",
        text,
        flags=re.S,
    )


def updated_readme() -> str:
    text = README.read_text(encoding="utf-8")
    text = _replace(text, FIGURES, figures_table(BENCHMARKS.read_text(encoding="utf-8")), inline=False)
    return _replace(text, DEPS, edge_dependencies(), inline=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md differs, write nothing")
    args = ap.parse_args(argv)
    try:
        new = updated_readme()
    except (FigureError, OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"update_readme_figures: error: {exc}", file=sys.stderr)
        return 1
    if README.read_text(encoding="utf-8") == new:
        print("README.md figures are up to date")
        return 0
    if args.check:
        print("README.md figures differ from BENCHMARKS.md / the bundle / pyproject.toml: run "
              "python scripts/update_readme_figures.py", file=sys.stderr)  # fmt: skip
        return 1
    README.write_text(new, encoding="utf-8")
    print("README.md figures written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
