"""On-disk cache of frozen text embeddings, keyed by the encoder spec and the text.

A frozen encoder gives the same vector for the same text, so label banks are embedded once per machine:
``<root>/<spec digest>/<key[:2]>/<key>.npy`` with ``key = sha256(spec JSON, text)``, plus ``spec.json``
and ``texts.jsonl`` for people. Writes are atomic, nothing is pickled, a broken entry is recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .text_encoders import TextEncoder

__all__ = ["EmbeddingCache", "default_cache_dir", "encode_cached"]

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$ECG_CLIP_CACHE/text`` when the variable is set, else ``~/.cache/ecg-clip-ja/text``."""
    env = os.environ.get("ECG_CLIP_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "ecg-clip-ja") / "text"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class EmbeddingCache:
    """Frozen text embeddings on disk: ``<root>/<spec digest>/<key[:2]>/<key>.npy``, no pickle.

    ``key`` is sha256 of (canonical JSON of the encoder spec, text). Each encoder folder holds its
    ``spec.json`` and a ``texts.jsonl`` (key -> text) for people who look inside. Writes are atomic
    (temporary file + rename), so parallel runs can share a cache.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    @staticmethod
    def key(spec: dict[str, Any], text: str) -> str:
        return hashlib.sha256((_canonical(spec) + "\x00" + text).encode("utf-8")).hexdigest()

    def _folder(self, spec: dict[str, Any]) -> Path:
        return self.root / hashlib.sha256(_canonical(spec).encode("utf-8")).hexdigest()[:16]

    def _path(self, spec: dict[str, Any], key: str) -> Path:
        return self._folder(spec) / key[:2] / f"{key}.npy"

    def get(self, spec: dict[str, Any], text: str, dim: int | None = None) -> np.ndarray | None:
        """The cached vector, or ``None`` when absent or unreadable (then it is recomputed)."""
        path = self._path(spec, self.key(spec, text))
        if not path.is_file():
            return None
        try:
            vec = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable cache entry %s: %s", path, exc)
            return None
        wrong_shape = vec.ndim != 1 or (dim is not None and vec.shape[0] != dim)
        if wrong_shape or vec.dtype != np.float32 or not np.isfinite(vec).all():
            log.warning("ignoring malformed cache entry %s", path)
            return None
        return vec

    def put(self, spec: dict[str, Any], text: str, vec: np.ndarray) -> None:
        key = self.key(spec, text)
        path = self._path(spec, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = self._folder(spec)
        if not (folder / "spec.json").is_file():
            _atomic_write(folder / "spec.json", (_canonical(spec) + "\n").encode("utf-8"))
        buf = io.BytesIO()
        np.save(buf, np.asarray(vec, dtype=np.float32), allow_pickle=False)
        _atomic_write(path, buf.getvalue())
        with open(folder / "texts.jsonl", "a", encoding="utf-8") as f:
            f.write(_canonical({"key": key, "text": text}) + "\n")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def encode_cached(
    encoder: TextEncoder, texts: Sequence[str], cache: EmbeddingCache | str | Path | None = None
) -> np.ndarray:
    """``encoder.encode(texts)`` through an :class:`EmbeddingCache` (``None``: the default location).

    Only texts missing from the cache are encoded, in one call, each unique text once.
    """
    if isinstance(texts, str):
        raise TypeError("encode_cached() takes a sequence of strings, not one string: wrap it in a list")
    texts = [str(t) for t in texts]
    if not isinstance(cache, EmbeddingCache):
        cache = EmbeddingCache(cache)
    spec = encoder.spec()
    found: dict[str, np.ndarray] = {}
    for t in dict.fromkeys(texts):
        vec = cache.get(spec, t, encoder.dim)
        if vec is not None:
            found[t] = vec
    missing = [t for t in dict.fromkeys(texts) if t not in found]
    log.debug("embedding cache %s: %d hits, %d misses", cache.root, len(found), len(missing))
    if missing:
        emb = np.asarray(encoder.encode(missing), dtype=np.float32)
        if emb.shape != (len(missing), encoder.dim):
            raise ValueError(
                f"{encoder.name} returned shape {emb.shape}, expected {(len(missing), encoder.dim)}"
            )
        for t, vec in zip(missing, emb, strict=True):
            cache.put(spec, t, vec)
            found[t] = vec
    if not texts:
        return np.zeros((0, encoder.dim), np.float32)
    return np.stack([found[t] for t in texts]).astype(np.float32)
