"""Benchmark of the bedside runtime: inference per window, streaming CPU, memory, start-up time.

    python bench/bench_edge.py --bundle edge/bundles/default [--checkpoint runs/x/checkpoint.pt]

Measures, single-threaded, medians of repeated runs, on the machine it runs on (noted in the output):

- inference per window (batch 1): int8 ONNX, fp32 ONNX (when the bundle has it), int8 LiteRT (when the
  bundle has it and ai-edge-litert is installed), and torch eager fp32 (the checkpoint's encoder, or the
  manifest's architecture with random weights: the timing does not depend on the weights); and one whole
  ``Classifier.classify_window`` on a raw 12-lead 500 Hz window (quality, preprocessing, int8 inference,
  scoring);
- the streaming pipeline's CPU time per second of 12-lead 500 Hz ECG, as % of one core: process CPU time
  while a long synthetic stream goes at full speed (a) through ``StreamClassifier`` and (b) as wire-protocol
  bytes through ``Runtime.process_bytes`` (COBS, CRC, frames, missing-sample tracking, ring, windows);
- resident memory (VmHWM) of a process that loads the bundle and classifies a window, without torch;
- start-up time: a fresh process, from its start to the first window classified;
- the CPU's int8 instruction set (AVX2 / AVX-512 / VNNI from /proc/cpuinfo), the encoder's multiply-accumulates
  per window counted from the ONNX graph, and the measured int8 time over the instruction set's limit
  (``bench/int8_limit.py`` explains the limit), on one thread and on two;
- the whole window split by stage (quality and integrity, preprocessing, measurements, int8 encoder, decision),
  medians of the same repeats, so the budget's owner of each stage can see its share.

Writes its section of BENCHMARKS.md between ``<!-- bench_edge:start -->`` and ``<!-- bench_edge:end -->``
(other bench scripts own other sections), with the command that produced it. Torch is allowed here, in the
benchmark only; the runtime never imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from int8_limit import count_macs, cpu_int8, int8_limit_ms  # bench/int8_limit.py, beside this script
from report import REPO, machine, machine_line, write_section  # bench/report.py, beside this script

FS = 500


_FASTEST: dict[int, float] = {}  # id(fn) -> fastest run (ms) of the last median_ms on it


def median_ms(fn, repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    _FASTEST[id(fn)] = min(times) * 1e3
    return statistics.median(times) * 1e3


def paired_ratio(slow, fast, rounds: int = 21, per_round: int = 20) -> dict:
    """Median over interleaved rounds of (time of ``slow``) / (time of ``fast``): both are timed in each
    round, one after the other, so a busy or idle spell of the machine affects both alike."""
    for _ in range(5):
        slow()
        fast()
    ratios = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            slow()
        t1 = time.perf_counter()
        for _ in range(per_round):
            fast()
        t2 = time.perf_counter()
        ratios.append((t1 - t0) / (t2 - t1))
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "rounds": rounds,
            "per_round": per_round}


def raw_window(seconds: float = 10.0, seed: int = 0) -> np.ndarray:
    from firmware_bridge.synthetic import synthesize

    return synthesize(rhythm="sinus", fs=FS, seed=seed, duration_s=seconds)


def bench_inference(bundle_path: Path, checkpoint: Path | None, repeats: int) -> tuple[dict, list[str]]:
    from edge.bundle.loader import BundleError, load_bundle
    from edge.runtime.backends import get_backend
    from edge.runtime.engine import Classifier

    notes: list[str] = []
    out: dict = {}
    from edge.dsp.signal import preprocess

    bundle = load_bundle(bundle_path)

    inp = preprocess(raw_window(), FS, bundle.signal)[None]
    int8 = None  # the runtime's int8 backend, kept open for the paired comparisons
    for key, backend, label in (
        ("onnx_int8", "onnx", "int8 ONNX (onnxruntime)"),
        ("onnx_fp32", "onnx", "fp32 ONNX (onnxruntime)"),
        ("tflite_int8", "litert", "int8 TFLite (LiteRT)"),
    ):
        try:
            model = bundle.model_path(key)
        except BundleError:
            notes.append(f"{label}: the bundle has no {key} model")
            continue
        try:
            be = get_backend(backend, model, threads=1)
        except Exception as exc:  # noqa: BLE001 - a missing runtime is a note, not a failure
            notes.append(f"{label}: not measured ({exc})")
            continue
        run = lambda be=be: be(inp)  # noqa: E731
        out[label] = median_ms(run, repeats)
        if key == "onnx_int8":
            out["int8 fastest"] = _FASTEST[id(run)]
        if key != "onnx_int8":
            be.close()
            continue
        int8 = be
        # the same model with onnxruntime's default graph optimizers, for comparison
        from edge.runtime.backends import ONNX_DISABLED_OPTIMIZERS, OnnxBackend

        plain = OnnxBackend.from_file(model, threads=1, disabled_optimizers=())
        out[f"int8 ONNX, onnxruntime default optimizers (runtime disables {', '.join(ONNX_DISABLED_OPTIMIZERS)})"] = \
            median_ms(lambda p=plain: p(inp), repeats)
        out["paired_optimizers"] = paired_ratio(lambda p=plain: p(inp), lambda q=int8: q(inp))
        plain.close()
    try:
        import torch

        torch.set_num_threads(1)
        if checkpoint is not None:
            from training.checkpoint import load_checkpoint

            model, _ = load_checkpoint(checkpoint)
            encode = model.encode_ecg
            label = "torch eager fp32 (checkpoint)"
        else:
            from training.model import ECGEncoder, EncoderConfig

            model = ECGEncoder(EncoderConfig.from_dict(bundle.manifest["model"]["encoder"])).eval()
            encode = model
            label = "torch eager fp32 (manifest architecture, random weights)"
            notes.append(
                "torch: no --checkpoint given; timed the manifest's architecture with random weights"
            )
        t = torch.from_numpy(inp)
        with torch.inference_mode():
            out[label] = median_ms(lambda: encode(t), repeats)
            if int8 is not None:
                out["paired"] = paired_ratio(lambda: encode(t), lambda: int8(inp))
    except ImportError:
        notes.append("torch eager: torch not installed")
    except (KeyError, ValueError, FileNotFoundError) as exc:
        notes.append(f"torch eager: not measured ({exc})")
    with Classifier.from_bundle(bundle_path, threads=1) as clf:
        raw = raw_window()
        out["whole classify_window, raw 12-lead 500 Hz (int8 ONNX)"] = median_ms(
            lambda: clf.classify_window(raw, FS), repeats
        )
        out["stages"] = bench_stages(clf, raw, repeats)
    try:
        two = get_backend("onnx", bundle.model_path("onnx_int8"), threads=2)
        run2 = lambda: two(inp)  # noqa: E731
        out["int8 ONNX, 2 threads"] = median_ms(run2, repeats)
        out["int8 fastest, 2 threads"] = _FASTEST[id(run2)]
        two.close()
    except Exception as exc:  # noqa: BLE001 - a note, not a failure
        notes.append(f"int8 ONNX on 2 threads: not measured ({exc})")
    if int8 is not None:
        int8.close()
    bundle.close()
    return out, notes


def bench_stages(clf, raw: np.ndarray, repeats: int) -> dict:
    """Median ms of each stage of ``Classifier.classify_window`` on one raw 12-lead window."""
    from edge.dsp.integrity import check_integrity
    from edge.dsp.measure import measure
    from edge.dsp.quality import QualityConfig, assess_window
    from edge.dsp.signal import LEADS
    from edge.runtime.result import Quality, Result

    inp = clf.preprocess(raw, FS)[None]
    measured = measure(raw, FS, LEADS)
    scores = clf.score(clf.embed(inp))[0]
    no_integrity = QualityConfig(integrity=None)

    def decide() -> None:
        r = Result(quality=Quality(ok=True, usable_leads=list(LEADS)), fs=FS)
        r.measurements = measured
        clf.decide(r, scores)

    return {
        "quality (without integrity)": median_ms(lambda: assess_window(raw, LEADS, fs=FS, config=no_integrity), repeats),
        "integrity (Einthoven, Goldberger, reversal, scale)": median_ms(lambda: check_integrity(raw, LEADS, fs=FS), repeats),
        "preprocess (signal contract)": median_ms(lambda: clf.preprocess(raw, FS), repeats),
        "measure (contract 7)": median_ms(lambda: measure(raw, FS, LEADS), repeats),
        "int8 encoder + cosine": median_ms(lambda: clf.score(clf.embed(inp)), repeats),
        "decision (rhythm, criteria, rules, why)": median_ms(decide, repeats),
    }


def bench_int8_limit(bundle_path: Path, inf: dict) -> dict:
    """The instruction set, the MACs per window and the measured int8 time over the limit (1 and 2 threads)."""
    from edge.bundle.loader import load_bundle

    cpu = cpu_int8()
    with load_bundle(bundle_path) as bundle:
        macs = count_macs(bundle.model_path("onnx_int8"))
    one = inf.get("int8 ONNX (onnxruntime)")
    two = inf.get("int8 ONNX, 2 threads")
    lim1, lim2 = int8_limit_ms(macs["macs"], cpu, 1), int8_limit_ms(macs["macs"], cpu, 2)
    return {
        "loadavg": os.getloadavg(),
        "fastest_1": inf.pop("int8 fastest", None),
        "fastest_2": inf.pop("int8 fastest, 2 threads", None),
        **cpu,
        **macs,
        "limit_ms_1": lim1,
        "limit_ms_2": lim2,
        "ratio_1": None if not (one and lim1) else one / lim1,
        "ratio_2": None if not (two and lim2) else two / lim2,
    }


def bench_stream(bundle_path: Path, seconds: float) -> dict:
    from edge.runtime.engine import Classifier
    from edge.runtime.serial import RunConfig, Runtime
    from edge.runtime.stream import StreamClassifier
    from firmware_bridge.frames import Hello, Samples, encode_frame
    from firmware_bridge.leads import LEADS_12
    from firmware_bridge.synthetic import to_counts

    x = raw_window(seconds, seed=1)  # [12, T] mV
    counts = to_counts(x, 1000)
    out = {}
    with Classifier.from_bundle(bundle_path, threads=1) as clf:
        stream = StreamClassifier(clf, FS, n_channels=12, hop_s=2.0)
        block = FS // 20  # 50 ms per read, as the runtime reads a real-time port
        xt = np.ascontiguousarray(x.T)
        t0 = time.process_time()
        windows = 0
        for a in range(0, xt.shape[0], block):
            windows += len(stream.feed(xt[a : a + block], a))
        cpu = time.process_time() - t0
        out["StreamClassifier"] = {"cpu_s": cpu, "windows": windows, "percent_of_core": 100 * cpu / seconds}

        wire = [encode_frame(Hello(FS, LEADS_12, 1000), 0)]
        seq = 1
        for a in range(0, counts.shape[1], 10):
            wire.append(encode_frame(Samples(a, counts[:, a : a + 10].T), seq & 0xFFFF))
            seq += 1
        data = b"".join(wire)
        per_read = len(data) * block // counts.shape[1]
        runtime = Runtime(clf, RunConfig(port="bench", hop_s=2.0))
        t0 = time.process_time()
        for a in range(0, len(data), per_read):
            runtime.process_bytes(data[a : a + per_read])
        cpu = time.process_time() - t0
        out["wire bytes -> Runtime"] = {
            "cpu_s": cpu,
            "windows": runtime.stats.windows,
            "percent_of_core": 100 * cpu / seconds,
        }
    return out


_CHILD = r"""
import json, sys, time
t0 = time.time()
import numpy as np
from edge.runtime.engine import Classifier
t_import = time.time()
clf = Classifier.from_bundle(sys.argv[1], threads=1)
t_load = time.time()
x = np.load(sys.argv[2])
r = clf.classify_window(x, 500)
t_first = time.time()
status = open("/proc/self/status").read()
hwm = int([l for l in status.splitlines() if l.startswith("VmHWM")][0].split()[1])
print(json.dumps({"t_first": t_first, "import_s": t_import - t0, "load_s": t_load - t_import,
                  "first_window_s": t_first - t_load, "vmhwm_kb": hwm,
                  "torch_imported": "torch" in sys.modules, "ok": bool(r.quality["ok"])}))
"""


def bench_process(bundle_path: Path, runs: int) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "window.npy"
        np.save(npy, raw_window())
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        rows = []
        for _ in range(runs):
            t_start = time.time()
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD, str(bundle_path), str(npy)],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            )
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["startup_s"] = row["t_first"] - t_start
            rows.append(row)
    med = {
        k: statistics.median(r[k] for r in rows)
        for k in ("startup_s", "import_s", "load_s", "first_window_s", "vmhwm_kb")
    }
    med["torch_imported"] = any(r["torch_imported"] for r in rows)
    return med


def render(
    cmd: str,
    info: dict,
    bundle_id: str,
    inf: dict,
    notes: list[str],
    stream: dict,
    proc: dict,
    repeats: int,
    seconds: float,
    runs: int,
    limit: dict | None = None,
) -> str:
    lines = [
        "## Edge runtime (`bench/bench_edge.py`)",
        "",
        f"Command: `{cmd}`  ",
        f"Bundle: `{bundle_id}`  ",
        machine_line(info),
        "",
        f"Inference per 10 s window, batch 1, single thread, median of {repeats} runs:",
        "",
        "| model | ms per window | torch eager fp32 / this |",
        "|---|---:|---:|",
    ]
    stages = inf.pop("stages", None)
    paired = inf.pop("paired", None)
    paired_opt = inf.pop("paired_optimizers", None)
    eager = next((v for k, v in inf.items() if k.startswith("torch eager")), None)
    lines += [f"| {k} | {v:.3f} | {f'{eager / v:.1f}x' if eager else '–'} |" for k, v in inf.items()
              if isinstance(v, float)]
    if paired:
        lines += ["", f"torch eager fp32 / int8 ONNX, paired: median {paired['median']:.1f}x (range "
                      f"{paired['min']:.1f}–{paired['max']:.1f}x) over {paired['rounds']} interleaved rounds of "
                      f"{paired['per_round']} runs each (less sensitive to the machine's load changing between "
                      "the two medians above)."]
    if paired_opt:
        lines += ["", f"int8 ONNX with onnxruntime's default optimizers / as the runtime loads it, paired: median "
                      f"{paired_opt['median']:.2f}x (range {paired_opt['min']:.2f}–{paired_opt['max']:.2f}x) over "
                      f"{paired_opt['rounds']} interleaved rounds."]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    if limit:
        lines += [
            "",
            f"**int8 on this CPU's instruction set.** CPU: {limit['model']}, int8 path **{limit['isa']}** (flags: "
            f"{', '.join(limit['flags'])}; no AVX-512, no VNNI where not listed), clock "
            f"{limit['clock_ghz']:.2f} GHz as reported. The encoder does {limit['macs'] / 1e6:.1f} M multiply-"
            f"accumulates per window (counted from the ONNX graph: Conv {limit['conv_macs'] / 1e6:.1f} M, Gemm "
            f"{limit['gemm_macs'] / 1e6:.2f} M; the 2.9 M of the stem run in fp32). Limit = MACs / "
            f"({limit['macs_per_cycle']} MACs per cycle per core x cores x clock): {limit['instructions']} "
            "(reciprocal throughput 0.5 cycle each, uops.info / AMD family 19h guide; see bench/int8_limit.py).",
            "",
            "",
            f"Load average while it ran: {', '.join(f'{v:.1f}' for v in limit['loadavg'])} (1/5/15 min) on "
            f"{os.cpu_count()} cores shared with other work: the medians carry that load; the fastest run is the "
            "least disturbed one.",
            "",
            "| threads | int8 limit ms | median ms | median / limit (goal <= 1.5x) | fastest ms | fastest / limit |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for k, key in ((1, "int8 ONNX (onnxruntime)"), (2, "int8 ONNX, 2 threads")):
            meas, lim, ratio = inf.get(key), limit.get(f"limit_ms_{k}"), limit.get(f"ratio_{k}")
            fast = limit.get(f"fastest_{k}")
            if meas and lim:
                lines.append(f"| {k} | {lim:.3f} | {meas:.3f} | {ratio:.2f}x | {fast:.3f} | {fast / lim:.2f}x |")
            else:
                lines.append(f"| {k} | – | – | – | – | – |")
    if stages:
        total = sum(stages.values())
        lines += ["", "Whole window by stage (median ms of the same repeats; the stages' sum beside the whole):", "",
                  "| stage | ms | share |", "|---|---:|---:|"]
        lines += [f"| {k} | {v:.3f} | {100 * v / total:.0f} % |" for k, v in stages.items()]
        lines.append(f"| sum of stages | {total:.3f} | |")
    lines += [
        "",
        f"Streaming CPU, 12 leads at {FS} Hz, {seconds:g} s of synthetic ECG at full speed, a window "
        "every 2 s (process CPU time / seconds of ECG):",
        "",
        "| path | CPU s | windows | % of one core |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {k} | {v['cpu_s']:.3f} | {v['windows']} | {v['percent_of_core']:.3f} |" for k, v in stream.items()
    ]
    lines += [
        "",
        f"Process (median of {runs} fresh processes; load bundle with sha256 verification, classify one "
        "window):",
        "",
        f"- start-up, process start to first window classified: {proc['startup_s']:.2f} s "
        f"(imports {proc['import_s']:.2f} s, bundle load + warm-up {proc['load_s']:.2f} s, "
        f"first window {proc['first_window_s'] * 1e3:.1f} ms)",
        f"- resident memory high-water mark (VmHWM; ru_maxrss is not used, it survives exec from the "
        f"benchmark's own torch-loaded process): {proc['vmhwm_kb'] / 1024:.1f} MiB; "
        f"torch imported: {proc['torch_imported']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--bundle", type=Path, help="bundle folder or zip (default: the shipped default bundle)")
    p.add_argument("--checkpoint", type=Path, help="training checkpoint for the torch eager comparison")
    p.add_argument("--repeats", type=int, default=200, help="timed runs per inference figure (default 200)")
    p.add_argument(
        "--stream-seconds", type=float, default=600.0, help="seconds of ECG to stream (default 600)"
    )
    p.add_argument("--runs", type=int, default=3, help="fresh processes for start-up and memory (default 3)")
    p.add_argument(
        "--markdown", type=Path, default=REPO / "BENCHMARKS.md", help="file to update (default BENCHMARKS.md)"
    )
    p.add_argument("--no-write", action="store_true", help="print the section only")
    args = p.parse_args(argv)
    from edge.bundle.loader import default_bundle_path, load_bundle
    from edge.runtime.engine import bundle_id

    bundle = args.bundle or default_bundle_path()
    if not (bundle.exists()):
        print(f"bench_edge: bundle {bundle} not found (pass --bundle)", file=sys.stderr)
        return 1
    with load_bundle(bundle) as b:
        bid = bundle_id(b)
    info = machine()
    print(f"machine: {info}", file=sys.stderr)
    inf, notes = bench_inference(bundle, args.checkpoint, args.repeats)
    print(f"inference: {inf}", file=sys.stderr)
    limit = bench_int8_limit(bundle, inf)
    print(f"int8 limit: {limit}", file=sys.stderr)
    stream = bench_stream(bundle, args.stream_seconds)
    print(f"stream: {stream}", file=sys.stderr)
    proc = bench_process(bundle, args.runs)
    print(f"process: {proc}", file=sys.stderr)
    cmd = "python bench/bench_edge.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = render(
        cmd.strip(), info, bid, inf, notes, stream, proc, args.repeats, args.stream_seconds, args.runs, limit
    )
    print(section)
    if not args.no_write:
        write_section(args.markdown, "bench_edge", section)
        print(f"wrote {args.markdown}", file=sys.stderr)
        if args.markdown.resolve() == (REPO / "BENCHMARKS.md").resolve():  # the README's edge table follows
            import subprocess

            subprocess.run([sys.executable, str(REPO / "scripts" / "update_readme_figures.py")], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
