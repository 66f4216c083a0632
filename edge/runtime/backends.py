"""Inference backends for the ECG encoder behind one tiny interface.

Every backend is built with ``Backend.from_file(path, threads=1)``, is called as
``backend(x) -> float32[B, D]`` on the model input ``float32[B, 12, T]`` (the output of
``edge.dsp.signal.preprocess``, stacked), and is released with ``close()``; ``name`` says which it is.
The interface follows LiteRT's ``CompiledModel.from_file`` and tinygrad's ``runtime/ops_*.py``:
one small class per runtime, its heavy import done lazily inside it, so ``import edge.runtime.backends``
costs nothing and a board needs only the runtime it uses.

- :class:`OnnxBackend`: onnxruntime, CPU, ``intra_op_num_threads=threads``, one inter-op thread,
  sequential execution and no spinning threads (a bedside board must not burn a core waiting).
  onnxruntime's ``QDQPropagationTransformer`` is switched off (:data:`ONNX_DISABLED_OPTIMIZERS`): it
  moves the quantization of the fp32 stem's output in front of the max-pool, which then runs through
  onnxruntime's slow generic uint8 pooling instead of its fp32 kernel. Max-pooling commutes with the
  (monotone) quantization, so the output is bit for bit the same (tested); on x86-64 the int8 encoder
  is about 6 % faster (``bench/bench_edge.py`` measures both, paired).
- :class:`LiteRTBackend`: ``ai_edge_litert.interpreter.Interpreter`` (fallback
  ``tflite_runtime.interpreter``). Handles float models and full-int8 models whose input and output
  are int8/uint8 with scale and zero point, models with a fixed batch of 1 (run window by window),
  and channels-last inputs ``[B, T, 12]`` as some converters produce.

:func:`get_backend` picks one by name (``"onnx"`` or ``"litert"``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge.runtime.memory import after_library_import

__all__ = [
    "BACKENDS",
    "ONNX_DISABLED_OPTIMIZERS",
    "BackendError",
    "Backend",
    "OnnxBackend",
    "LiteRTBackend",
    "get_backend",
    "model_key_for",
]

logger = logging.getLogger(__name__)

# onnxruntime graph optimizers the ONNX backend switches off (see the module docstring).
ONNX_DISABLED_OPTIMIZERS: tuple[str, ...] = ("QDQPropagationTransformer",)


class BackendError(RuntimeError):
    """An inference runtime that is missing, or a model it cannot load or run."""


class Backend:
    """Base class: ``from_file(path, threads)``, ``__call__(x[B, 12, T]) -> [B, D]``, ``close()``, ``name``."""

    name = "base"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def from_file(cls, path: str | Path, threads: int = 1) -> Backend:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the runtime's resources; the backend cannot be called afterwards."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


def _check_input(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise BackendError(f"model input must be [batch, leads, samples], got shape {x.shape}")
    return x


class OnnxBackend(Backend):
    """onnxruntime on the CPU; runs a whole batch at once when the model's batch dimension is dynamic."""

    name = "onnx"

    def __init__(self, path: Path, session) -> None:  # noqa: ANN001 - onnxruntime.InferenceSession
        super().__init__(path)
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = session.get_outputs()[0].name
        self.input_shape = list(inp.shape)
        # A batch dimension fixed to 1 (a string or None means dynamic) forces window-by-window runs.
        self.fixed_batch = self.input_shape[0] if isinstance(self.input_shape[0], int) else None

    @classmethod
    def from_file(cls, path: str | Path, threads: int = 1,
                  disabled_optimizers: tuple[str, ...] | None = None, data: bytes | None = None) -> OnnxBackend:
        """``data``: the model's bytes as verified at bundle load (run as given, ``path`` only names them)."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("the onnx backend needs onnxruntime: pip install onnxruntime") from None
        after_library_import()  # ecg-edge run: the import's start-up code back to the kernel (edge.runtime.memory)
        path = Path(path)
        if data is None and not path.is_file():
            raise BackendError(f"model file {path} not found")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # One small model, one window at a time: onnxruntime's arena and memory-pattern planning keep
        # buffers the device does not need (-1 MiB resident, latency unchanged within noise: issue 16).
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
        disabled = list(ONNX_DISABLED_OPTIMIZERS if disabled_optimizers is None else disabled_optimizers)
        try:
            session = ort.InferenceSession(str(path) if data is None else data, sess_options=opts,
                                           providers=["CPUExecutionProvider"],
                                           disabled_optimizers=disabled)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... classes
            raise BackendError(f"onnxruntime cannot load {path}: {exc}") from None
        # onnxruntime's Python session keeps the model's bytes to re-create itself on another provider
        # (``_model_bytes``: "holding the memory indefinitely", its own comment): with the CPU provider only there
        # is nothing to fall back to, and it drops them itself for sessions it cannot re-create. 2.5 MiB resident.
        if hasattr(session, "disable_fallback"):
            session.disable_fallback()
        if getattr(session, "_model_bytes", None) is not None:
            session._model_bytes = None
        return cls(path, session)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_input(x)
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            if self.fixed_batch != 1:
                raise BackendError(f"model takes a fixed batch of {self.fixed_batch}, got {x.shape[0]}")
            outs = [
                self.session.run([self.output_name], {self.input_name: x[i : i + 1]})[0]
                for i in range(len(x))
            ]
            return np.concatenate(outs).astype(np.float32, copy=False)
        return self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float32, copy=False)

    def close(self) -> None:
        self.session = None


def _import_litert_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        logger.info("ai_edge_litert not installed; using the tflite_runtime fallback")
        return Interpreter
    except ImportError:
        raise BackendError(
            "the litert backend needs LiteRT: pip install ai-edge-litert (the litert extra)"
        ) from None


class LiteRTBackend(Backend):
    """LiteRT (TFLite) interpreter; int8 I/O is quantized and dequantized with the model's own parameters."""

    name = "litert"

    def __init__(self, path: Path, interpreter) -> None:  # noqa: ANN001 - litert Interpreter
        super().__init__(path)
        self.interpreter = interpreter
        self._in = interpreter.get_input_details()[0]
        self._out = interpreter.get_output_details()[0]
        shape = [int(s) for s in self._in["shape"]]
        if len(shape) != 3:
            raise BackendError(f"{path}: model input has shape {shape}; expected 3 dimensions")
        # [B, 12, T] as exported from torch, or [B, T, 12] channels-last (onnx2tf and friends).
        self.channels_last = shape[2] == 12 and shape[1] != 12
        self.batch = shape[0]
        self._in_q = self._quant(self._in)
        self._out_q = self._quant(self._out)

    @staticmethod
    def _quant(detail: dict) -> tuple[float, int, np.dtype] | None:
        """(scale, zero_point, dtype) for an integer tensor, None for a float one."""
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            return None
        scale, zero = detail.get("quantization", (0.0, 0))
        params = detail.get("quantization_parameters") or {}
        if params.get("scales") is not None and len(params["scales"]) == 1:
            scale, zero = float(params["scales"][0]), int(params["zero_points"][0])
        if not scale:
            raise BackendError(f"integer tensor {detail.get('name')!r} has no quantization scale")
        return float(scale), int(zero), dtype

    @classmethod
    def from_file(cls, path: str | Path, threads: int = 1, data: bytes | None = None) -> LiteRTBackend:
        interpreter_cls = _import_litert_interpreter()
        after_library_import()
        path = Path(path)
        if data is None and not path.is_file():
            raise BackendError(f"model file {path} not found")
        try:
            source = {"model_path": str(path)} if data is None else {"model_content": data}
            interp = interpreter_cls(**source, num_threads=max(1, int(threads)))
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"LiteRT cannot load {path}: {exc}") from None
        return cls(path, interp)

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        if self._in_q is None:
            return x.astype(self._in["dtype"], copy=False)
        scale, zero, dtype = self._in_q
        info = np.iinfo(dtype)
        return np.clip(np.rint(x / scale) + zero, info.min, info.max).astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self._out_q is None:
            return y.astype(np.float32, copy=False)
        scale, zero, _ = self._out_q
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        interp = self.interpreter
        if tuple(interp.get_input_details()[0]["shape"]) != x.shape:
            interp.resize_tensor_input(self._in["index"], list(x.shape))
            interp.allocate_tensors()
        interp.set_tensor(self._in["index"], self._quantize(x))
        interp.invoke()
        return self._dequantize(interp.get_tensor(self._out["index"]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = _check_input(x)
        if self.channels_last:
            x = np.ascontiguousarray(x.transpose(0, 2, 1))
        if self.batch == 1 and x.shape[0] != 1:
            # Fixed-batch models are the norm for TFLite; running them window by window avoids a resize.
            return np.concatenate([self._run(x[i : i + 1]) for i in range(x.shape[0])])
        return self._run(x)

    def close(self) -> None:
        self.interpreter = None


BACKENDS: dict[str, type[Backend]] = {"onnx": OnnxBackend, "litert": LiteRTBackend}


def model_key_for(backend: str, precision: str = "int8") -> str:
    """Which bundle model (``edge.bundle.loader.MODEL_KEYS``) a backend runs: ``onnx`` -> ``onnx_int8``..."""
    if backend == "onnx":
        return "onnx_fp32" if precision == "fp32" else "onnx_int8"
    if backend == "litert":
        return "tflite_int8"
    raise BackendError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")


def get_backend(name: str, path: str | Path, threads: int = 1, data: bytes | None = None) -> Backend:
    """Load ``path`` (or ``data``, the bytes verified at bundle load) with the backend ``name`` (onnx, litert)."""
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise BackendError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})") from None
    return cls.from_file(path, threads=threads, data=data)
