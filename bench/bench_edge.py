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
- start-up time: a fresh process, from its start to the first window classified.

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
from report import REPO, machine, machine_line, write_section  # bench/report.py, beside this script

FS = 500


def median_ms(fn, repeats: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
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
    from edge.runtime.backends import get_backend
    from edge.bundle.loader import BundleError, load_bundle
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
        out[label] = median_ms(lambda be=be: be(inp), repeats)
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
    if int8 is not None:
        int8.close()
    bundle.close()
    return out, notes


def bench_stream(bundle_path: Path, seconds: float) -> dict:
    from edge.runtime.engine import Classifier
from edge.runtime.stream import StreamClassifier
    from edge.runtime.serial import RunConfig, Runtime
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
    paired = inf.pop("paired", None)
    paired_opt = inf.pop("paired_optimizers", None)
    eager = next((v for k, v in inf.items() if k.startswith("torch eager")), None)
    lines += [f"| {k} | {v:.3f} | {f'{eager / v:.1f}x' if eager else '–'} |" for k, v in inf.items()]
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
    stream = bench_stream(bundle, args.stream_seconds)
    print(f"stream: {stream}", file=sys.stderr)
    proc = bench_process(bundle, args.runs)
    print(f"process: {proc}", file=sys.stderr)
    cmd = "python bench/bench_edge.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = render(
        cmd.strip(), info, bid, inf, notes, stream, proc, args.repeats, args.stream_seconds, args.runs
    )
    print(section)
    if not args.no_write:
        write_section(args.markdown, "bench_edge", section)
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
