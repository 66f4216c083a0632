"""The README's edge figures and edge dependency list are generated from their sources (issue 24):
BENCHMARKS.md's bench_edge section, the default bundle's manifest and pyproject.toml."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "update_readme_figures", REPO / "scripts" / "update_readme_figures.py"
)
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)


def test_readme_agrees_with_benchmarks_bundle_and_pyproject(capsys):
    assert figures.main(["--check"]) == 0, capsys.readouterr().err


def test_readme_states_each_benchmark_figure_as_written():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    bench = figures.bench_figures((REPO / "BENCHMARKS.md").read_text(encoding="utf-8"))
    table = readme[readme.index(figures.FIGURES[0]) : readme.index(figures.FIGURES[1])]
    for value in (bench["int8_ms"], bench["stream"], bench["rss"], bench["startup"], bench["paired"][0]):
        assert value.replace("x", "×") in table, value
    mb, _, _ = figures.bundle_size()
    assert f"{mb:.2f} MB" in table
    rows = [line for line in readme.splitlines() if "start-up" in line or "bundle size" in line]
    assert all(
        figures.FIGURES[0] in readme[: readme.index(r)] for r in rows
    )  # no second, stale copy elsewhere


def test_edge_dependency_list_is_pyproject_s():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    lists = re.findall(re.escape(figures.DEPS[0]) + r"(.*?)" + re.escape(figures.DEPS[1]), readme)
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    edge = re.search(r"^edge = \[(.*?)\]", pyproject, re.M).group(1)
    names = re.findall(r'"([A-Za-z0-9_.-]+)', edge)
    assert len(lists) == 2 and all(lst == figures.edge_dependencies() for lst in lists)
    assert all(
        name in lists[0] for name in ["numpy", "pyserial", *names]
    )  # cryptography while the extra has it


def test_a_changed_benchmark_wording_is_an_error_not_a_guess():
    with pytest.raises(figures.FigureError, match="start-up"):
        figures.bench_figures("<!-- bench_edge:start -->\nBundle: `b@1`\nMachine: X, 2 cores\n"
                              "| int8 ONNX (onnxruntime) | 0.3 | 1x |\npaired: median 9.0x (range 8.0–10.0x)\n"
                              "| wire bytes -> Runtime | 1 | 2 | 0.2 |\n<!-- bench_edge:end -->")  # fmt: skip


def _section(int8_ms: str, startup: str, rss: str) -> str:
    return (
        "<!-- bench_edge:start -->\nBundle: `b@1`\nMachine: X, 2 cores, Python\n"
        f"| int8 ONNX (onnxruntime) | {int8_ms} | 1x |\npaired: median 9.0x (range 8.0–10.0x)\n"
        "| wire bytes -> Runtime | 1 | 2 | 0.2 |\n"
        f"- start-up, process start to first window classified: {startup} s (imports)\n"
        f"- resident memory high-water mark (VmHWM): {rss} MiB; torch imported: False\n<!-- bench_edge:end -->"
    )


def test_a_figure_beyond_its_target_is_marked_not_met():
    met = figures.figures_table(_section("0.3", "0.2", "75.0"))
    assert "not met" not in met.split("bundle size")[0]
    missed = figures.figures_table(_section("7.9", "1.6", "80.3"))
    rows = {line.split(" | ")[0]: line for line in missed.splitlines() if line.startswith("| ")}
    assert (
        "**not met**"
        in rows["| int8 ONNX per window, 1 thread; torch eager fp32 / int8 (paired, median and range)"]
    )
    assert "**not met**" in rows["| start-up to first window classified"]
    assert (
        "84.2 MB" in missed
        and "**not met**" in rows["| runtime resident memory (no torch, no scipy), with measurements"]
    )
