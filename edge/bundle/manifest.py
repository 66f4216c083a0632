"""Strict validation of a bundle manifest (DESIGN.md, contract 3, "Integrity of the manifest itself").

Every field the runtime reads is checked for type, range and name before anything is built from it; a bad
one raises :class:`ManifestError` with a one-line message naming the field (``signal.fs``,
``labels[3].threshold``). Checksums protect the files and the signature protects the manifest; this
protects the runtime from a manifest that is well signed but wrong, and from crashes deep inside numpy
or onnxruntime on values nobody meant. Fields the runtime does not read (metrics, provenance, ...) are
only checked for their container type.
"""

from __future__ import annotations

import math
import re
from typing import Any

from edge.bundle.schema import BUNDLE_FORMAT, FORMAT_VERSION, MODEL_KEYS

__all__ = ["ManifestError", "validate_manifest", "FILE_NAME_RE", "MAX_FILE_BYTES", "MAX_LABELS"]

FILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # flat, no folders, no dot-files
LABEL_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
MAX_FILE_BYTES = 256 * 2**20  # one file of a bundle (an fp32 ResNet1d-18 is about 16 MB)
MAX_FILES = 16
MAX_LABELS = 10_000
RESERVED_NAMES = ("manifest.json", "manifest.sig")


class ManifestError(ValueError):
    """A manifest field of the wrong type, out of range or badly named; the message names the field."""


def _fail(field: str, problem: str) -> ManifestError:
    return ManifestError(f"manifest field {field}: {problem}")


def _get(d: dict, key: str, field: str, required: bool = True) -> Any:
    if key not in d:
        if required:
            raise _fail(field, "missing")
        return None
    return d[key]


def _dict(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(field, f"must be an object, got {type(value).__name__}")
    return value


def _str(value: Any, field: str, pattern: re.Pattern | None = None, max_len: int = 1000) -> str:
    if not isinstance(value, str):
        raise _fail(field, f"must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        raise _fail(field, f"longer than {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise _fail(field, f"{value[:80]!r} is not an allowed name")
    return value


def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, f"must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise _fail(field, f"{value} is outside {lo}..{hi}")
    return value


def _num(value: Any, field: str, lo: float, hi: float, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(field, f"must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < lo or value > hi or (lo_open and value == lo):
        raise _fail(field, f"{value} is outside {'(' if lo_open else '['}{lo:g}, {hi:g}]")
    return value


def _files(files: Any) -> dict:
    files = _dict(files, "files")
    if not 1 <= len(files) <= MAX_FILES:
        raise _fail("files", f"lists {len(files)} files, expected 1..{MAX_FILES}")
    for name, entry in files.items():
        field = f"files[{name[:80]!r}]"
        _str(name, field, FILE_NAME_RE)
        if name in RESERVED_NAMES:
            raise _fail(field, "a reserved name")
        entry = _dict(entry, field)
        _str(_get(entry, "sha256", f"{field}.sha256"), f"{field}.sha256", SHA256_RE)
        _int(_get(entry, "bytes", f"{field}.bytes"), f"{field}.bytes", 0, MAX_FILE_BYTES)
    return files


def _listed(value: Any, field: str, files: dict) -> str:
    name = _str(value, field, FILE_NAME_RE)
    if name not in files:
        raise _fail(field, f"{name!r} is not listed in files")
    return name


def _signal(signal: Any) -> tuple[float, float]:
    from edge.dsp.signal import NORMALIZATIONS, SignalConfig

    signal = _dict(signal, "signal")
    known = set(SignalConfig.__dataclass_fields__)
    unknown = sorted(set(signal) - known)
    if unknown:
        raise _fail(f"signal.{unknown[0]}", "unknown field (this runtime would ignore it)")
    missing = sorted(known - set(signal))
    if missing:
        raise _fail(f"signal.{missing[0]}", "missing")
    fs = _num(signal["fs"], "signal.fs", 10.0, 2000.0)
    window_s = _num(signal["window_s"], "signal.window_s", 1.0, 120.0)
    band = signal["band_hz"]
    if not isinstance(band, list) or len(band) != 2:
        raise _fail("signal.band_hz", "must be a list [low, high]")
    lo = _num(band[0], "signal.band_hz[0]", 0.0, fs / 2, lo_open=True)
    hi = _num(band[1], "signal.band_hz[1]", 0.0, fs / 2, lo_open=True)
    if not lo < hi < fs / 2:
        raise _fail("signal.band_hz", f"[{lo:g}, {hi:g}] must satisfy 0 < low < high < fs/2 = {fs / 2:g}")
    _int(signal["filter_order"], "signal.filter_order", 1, 8)
    if signal["normalization"] not in NORMALIZATIONS:
        raise _fail("signal.normalization", f"{str(signal['normalization'])[:40]!r} not in {NORMALIZATIONS}")
    _num(signal["clip"], "signal.clip", 0.0, 1000.0, lo_open=True)
    _num(signal["eps"], "signal.eps", 0.0, 1.0, lo_open=True)
    return fs, window_s


def _dim(value: Any, field: str) -> None:
    if value is None or isinstance(value, str):
        _str(value or "", field, max_len=64)  # a dynamic (named) dimension
    else:
        _int(value, field, 1, 1 << 20)


def _model(model: Any, n_samples: int, embedding_dim: int) -> None:
    model = _dict(model, "model")
    for key in ("input_name", "output_name"):
        _str(_get(model, key, f"model.{key}"), f"model.{key}", max_len=200)
    shape = _get(model, "input_shape", "model.input_shape")
    if not isinstance(shape, list) or len(shape) != 3:
        raise _fail("model.input_shape", "must be [batch, 12, samples]")
    _dim(shape[0], "model.input_shape[0]")
    if shape[1] != 12 or isinstance(shape[1], bool):
        raise _fail("model.input_shape[1]", f"{shape[1]!r} must be 12 (leads)")
    if shape[2] != n_samples or isinstance(shape[2], bool):
        raise _fail("model.input_shape[2]", f"{shape[2]!r} must be signal.fs * signal.window_s = {n_samples}")
    out = _get(model, "output_shape", "model.output_shape")
    if not isinstance(out, list) or len(out) != 2:
        raise _fail("model.output_shape", "must be [batch, embedding_dim]")
    _dim(out[0], "model.output_shape[0]")
    if out[1] != embedding_dim or isinstance(out[1], bool):
        raise _fail("model.output_shape[1]", f"{out[1]!r} must equal embedding_dim = {embedding_dim}")


def _labels(labels: Any) -> None:
    if not isinstance(labels, list) or not 1 <= len(labels) <= MAX_LABELS:
        raise _fail("labels", f"must be a list of 1..{MAX_LABELS} labels")
    seen: set[str] = set()
    for i, label in enumerate(labels):
        field = f"labels[{i}]"
        label = _dict(label, field)
        label_id = _str(_get(label, "id", f"{field}.id"), f"{field}.id", LABEL_ID_RE)
        if label_id in seen:
            raise _fail(f"{field}.id", f"{label_id!r} appears twice")
        seen.add(label_id)
        for key in ("ja", "en"):
            _str(_get(label, key, f"{field}.{key}"), f"{field}.{key}", max_len=200)
        if label.get("threshold") is not None:  # null: never a finding
            _num(label["threshold"], f"{field}.threshold", -1.0, 1.0)
        for key in ("new", "zero_shot"):
            if key in label and not isinstance(label[key], bool):
                raise _fail(f"{field}.{key}", f"must be true or false, got {type(label[key]).__name__}")
        for key in ("category", "description_ja"):
            if key in label:
                _str(label[key], f"{field}.{key}", max_len=2000)
        if "parents" in label and not (
            isinstance(label["parents"], list) and all(isinstance(p, str) for p in label["parents"])
        ):
            raise _fail(f"{field}.parents", "must be a list of label ids")


def validate_manifest(manifest: Any) -> dict:
    """Check every field the runtime reads; returns the manifest or raises :class:`ManifestError`."""

    manifest = _dict(manifest, "(top level)")
    if _get(manifest, "format", "format") != BUNDLE_FORMAT:
        raise _fail("format", f"{str(manifest['format'])[:60]!r} is not {BUNDLE_FORMAT!r}")
    if _get(manifest, "format_version", "format_version") != FORMAT_VERSION or isinstance(
        manifest["format_version"], bool
    ):
        raise _fail(
            "format_version",
            f"{manifest['format_version']!r} is not supported (this runtime reads {FORMAT_VERSION})",
        )
    files = _files(_get(manifest, "files", "files"))
    models = _dict(_get(manifest, "models", "models"), "models")
    for key, name in models.items():
        if key not in MODEL_KEYS:
            raise _fail(f"models.{str(key)[:40]}", f"unknown model key (expected one of {MODEL_KEYS})")
        if name is not None:
            _listed(name, f"models.{key}", files)
    if not any(models.values()):
        raise _fail("models", "names no encoder")
    _listed(_get(manifest, "label_embeddings", "label_embeddings"), "label_embeddings", files)
    fs, window_s = _signal(_get(manifest, "signal", "signal"))
    embedding_dim = _int(_get(manifest, "embedding_dim", "embedding_dim"), "embedding_dim", 1, 4096)
    _model(_get(manifest, "model", "model"), int(round(fs * window_s)), embedding_dim)
    if "logit_scale" in manifest:
        _num(manifest["logit_scale"], "logit_scale", 0.0, 1000.0, lo_open=True)
    _labels(_get(manifest, "labels", "labels"))
    for key in ("quantization", "provenance"):
        _dict(_get(manifest, key, key), key)
    text_encoder = _get(manifest, "text_encoder", "text_encoder")
    if not isinstance(text_encoder, (dict, str)):
        raise _fail("text_encoder", f"must be an object or a string, got {type(text_encoder).__name__}")
    for key in ("name", "created"):
        if key in manifest:
            _str(manifest[key], key, max_len=200)
    for key in ("metrics", "thresholds"):
        if key in manifest:
            _dict(manifest[key], key)
    if "decision" in manifest:  # measurement criteria and consistency rules the findings use (edge/interpret/)
        decision = _dict(manifest["decision"], "decision")
        if "criteria_weight" in decision:
            _num(decision["criteria_weight"], "decision.criteria_weight", 0.0, 1.0)
        from edge.bundle.decision_schema import validate_decision

        problem = validate_decision(decision, manifest)  # once, here: never at the first window
        if problem:
            raise ManifestError(f"manifest field {problem}")
    return manifest
