"""The CPU's int8 instruction set, the encoder's multiply-accumulates, and the int8 throughput limit they imply.

Used by ``bench/bench_edge.py`` to say how far the measured int8 encoder time is from what the machine's
instruction set allows (issue #23: the budget on a plain board).

The limit is ``MACs per window / (MACs per cycle per core x cores used x clock)``. MACs per cycle per core
come from the widest int8 dot-product path the CPU has, as onnxruntime's MLAS kernels use it, with two
vector multiply pipes per core (AMD Zen 2/3/4, Intel Skylake and later):

- AVX2 without VNNI: ``vpmaddubsw`` (32 u8 x s8 products summed pairwise to s16) then ``vpmaddwd`` against
  ones (to s32) per 256-bit register: two multiply-pipe instructions per 32 MACs, two pipes -> 32 MACs/cycle.
- AVX-VNNI (256-bit ``vpdpbusd``): one instruction per 32 MACs -> 64 MACs/cycle.
- AVX-512BW without VNNI: the AVX2 pair on 512-bit registers -> 64 MACs/cycle.
- AVX-512 VNNI (``vpdpbusd`` zmm): one instruction per 64 MACs -> 128 MACs/cycle.

(Instruction throughputs: uops.info and AMD's Software Optimization Guide for family 19h: ``vpmaddubsw`` and
``vpmaddwd`` ymm, reciprocal throughput 0.5 cycle on the two multiply pipes.) The clock is the highest the
machine reports (``cpuinfo_max_freq``, else ``cpu MHz`` of /proc/cpuinfo, which in a virtual machine is the
nominal clock: boost may make the real limit lower).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

__all__ = ["cpu_int8", "count_macs", "int8_limit_ms"]

# instruction set -> (MACs per cycle per core, the instructions behind it)
_PATHS = {
    "AVX-512 VNNI": (128, "vpdpbusd zmm (64 MACs), 2 per cycle"),
    "AVX-VNNI": (64, "vpdpbusd ymm (32 MACs), 2 per cycle"),
    "AVX-512BW": (64, "vpmaddubsw + vpmaddwd zmm (64 MACs per pair), 1 pair per cycle"),
    "AVX2": (32, "vpmaddubsw + vpmaddwd ymm (32 MACs per pair), 1 pair per cycle on 2 multiply pipes"),
    "SSE4.1": (16, "pmaddubsw + pmaddwd xmm (16 MACs per pair), 1 pair per cycle"),
}


def _cpuinfo() -> tuple[set[str], float | None, str]:
    flags: set[str] = set()
    mhz = None
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("flags", "features") and not flags:
                flags = set(value.split())
            elif key == "cpu mhz" and mhz is None:
                mhz = float(value)
            elif key == "model name" and model == "unknown":
                model = value.strip()
    except OSError:
        pass
    with contextlib.suppress(OSError, ValueError):  # a VM usually has no cpufreq: keep cpuinfo's clock
        mhz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1000.0
    return flags, mhz, model


def cpu_int8() -> dict:
    """``{"isa", "macs_per_cycle", "instructions", "flags", "clock_ghz", "model"}`` of this machine's CPU."""
    flags, mhz, model = _cpuinfo()
    if {"avx512_vnni", "avx512vnni"} & flags:
        isa = "AVX-512 VNNI"
    elif {"avx_vnni", "avxvnni"} & flags:
        isa = "AVX-VNNI"
    elif "avx512bw" in flags:
        isa = "AVX-512BW"
    elif "avx2" in flags:
        isa = "AVX2"
    elif "sse4_1" in flags:
        isa = "SSE4.1"
    else:
        isa = "unknown (no x86 int8 dot-product path found; ARM NEON/dotprod not modelled)"
    per_cycle, how = _PATHS.get(isa, (None, ""))
    shown = sorted(f for f in flags if f.startswith(("avx", "sse4", "fma")) or "vnni" in f)
    return {
        "isa": isa,
        "macs_per_cycle": per_cycle,
        "instructions": how,
        "flags": shown,
        "clock_ghz": None if mhz is None else mhz / 1000.0,
        "model": model,
    }


def count_macs(onnx_path: str | Path) -> dict:
    """Multiply-accumulates of one window (batch 1) through the ONNX graph: every Conv (output elements x
    input channels per group x kernel size) and Gemm/MatMul, with shapes from ONNX shape inference."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(onnx_path))
    for inp in model.graph.input:
        dim = inp.type.tensor_type.shape.dim[0]
        if dim.dim_param or not dim.dim_value:
            dim.ClearField("dim_param")
            dim.dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in [*model.graph.value_info, *model.graph.input, *model.graph.output]
    }
    inits = {t.name: numpy_helper.to_array(t).shape for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}

    def weight_shape(name: str):
        if name in inits:
            return inits[name]
        node = producer.get(name)
        if node is not None and node.op_type == "DequantizeLinear":
            return weight_shape(node.input[0])
        return shapes.get(name)

    total, conv, gemm = 0, 0, 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):
            w = weight_shape(node.input[3] if node.op_type == "QLinearConv" else node.input[1])
            out = shapes.get(node.output[0])
            if not w or not out:
                continue
            macs = int(np.prod(out[1:])) * int(np.prod(w[1:]))
            conv += macs
        elif node.op_type in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"):
            a, w = shapes.get(node.input[0]), weight_shape(node.input[1])
            if not a or not w:
                continue
            trans_b = any(at.name == "transB" and at.i for at in node.attribute)
            macs = int(np.prod(a)) * int(w[0] if node.op_type == "Gemm" and trans_b else w[-1])
            gemm += macs
        else:
            continue
        total += macs
    return {"macs": total, "conv_macs": conv, "gemm_macs": gemm}


def int8_limit_ms(macs: int, cpu: dict, cores: int = 1) -> float | None:
    """The shortest time (ms) the instruction set allows for ``macs`` on ``cores`` cores at the reported clock."""
    if not cpu.get("macs_per_cycle") or not cpu.get("clock_ghz"):
        return None
    return macs / (cpu["macs_per_cycle"] * cores * cpu["clock_ghz"] * 1e9) * 1e3
