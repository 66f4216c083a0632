"""The bundle (DESIGN.md, contract 3): what the device loads, verified file by file.

A bundle is a directory (or a ``.zip`` of one) with ``manifest.json`` and the files it lists:

- the ECG encoder as int8 ONNX (optionally also fp32 ONNX and a full-int8 ``.tflite``),
- ``label_embeddings.npy``: float32 ``[n_labels, embedding_dim]``, unit rows, in label row order,
- ``labels.json``: the labels (id, ja, en, category, parents, description_ja, threshold, new).

The manifest carries the format version, the sha256 and size of every file, the signal contract,
the model's input/output names and shapes, the embedding dimension and logit scale, per-label
decision thresholds, the label list in row order, the text encoder used, the quantization mode and
its measured agreement with fp32, metrics and provenance. :func:`load_bundle` checks every checksum
and refuses a bundle that does not match, saying which file and how.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .signal import SignalConfig

__all__ = [
    "BUNDLE_FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MODEL_KEYS",
    "BundleError",
    "Bundle",
    "sha256_file",
    "file_entry",
    "write_manifest",
    "verify_bundle",
    "load_bundle",
    "default_bundle_path",
]

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = "ecg-clip-ja/bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# manifest["models"] keys -> what they are; the runtime picks one by backend
MODEL_KEYS = ("onnx_int8", "onnx_fp32", "tflite_int8")
REQUIRED_KEYS = (
    "format",
    "format_version",
    "files",
    "models",
    "signal",
    "model",
    "embedding_dim",
    "labels",
    "label_embeddings",
    "quantization",
    "text_encoder",
    "provenance",
)


class BundleError(ValueError):
    """A bundle that is missing, malformed, or whose files do not match their checksums."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: str | Path) -> dict:
    """``{"sha256": ..., "bytes": ...}`` of a file, as the manifest lists it."""
    p = Path(path)
    return {"sha256": sha256_file(p), "bytes": p.stat().st_size}


def write_manifest(folder: str | Path, manifest: dict) -> dict:
    """Fill in ``files`` (checksums of every file in ``folder`` except the manifest) and write it."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME)
    manifest = {"format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION, **manifest}
    manifest["files"] = {p.name: file_entry(p) for p in files}
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"manifest lacks {missing}")
    (folder / MANIFEST_NAME).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{folder}: not a bundle (no {MANIFEST_NAME})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: manifest is not valid JSON ({exc})") from None
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: format {manifest.get('format')!r} is not {BUNDLE_FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format version {manifest.get('format_version')} is not supported "
            f"(this runtime reads version {FORMAT_VERSION})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"{path}: manifest lacks {missing}")
    return manifest


def verify_bundle(folder: str | Path) -> dict:
    """Check every listed file's size and sha256, and that no unlisted file is referenced; returns the manifest."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    problems = []
    for name, entry in manifest["files"].items():
        path = folder / name
        if Path(name).name != name:
            problems.append(f"{name}: file names must not contain folders")
        elif not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{name}: {path.stat().st_size} bytes, manifest says {entry['bytes']}")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{name}: sha256 does not match the manifest (file changed or corrupted)")
    referenced = [manifest["label_embeddings"], *[v for v in manifest["models"].values() if v]]
    problems += [
        f"{name}: referenced but not listed in files" for name in referenced if name not in manifest["files"]
    ]
    if not problems and "labels.json" in manifest["files"]:
        # manifest.json itself carries no checksum: its label list must equal the checksummed labels.json.
        try:
            listed = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            listed = None
        key = ("id", "ja", "en", "threshold", "new")
        if not isinstance(listed, list) or [[lb.get(k) for k in key] for lb in listed] != [
            [lb.get(k) for k in key] for lb in manifest["labels"]
        ]:
            problems.append("the manifest's labels differ from labels.json (manifest edited?)")
    if problems:
        raise BundleError(f"bundle {folder} failed verification: " + "; ".join(problems))
    return manifest


@dataclass
class Bundle:
    """A verified bundle: manifest, signal contract, labels, label embeddings and thresholds."""

    folder: Path
    manifest: dict
    signal: SignalConfig
    labels: list[dict]
    embeddings: np.ndarray  # float32 [n_labels, embedding_dim], unit rows
    thresholds: np.ndarray  # float32 [n_labels]
    _tmp: str | None = field(default=None, repr=False)

    @property
    def label_ids(self) -> list[str]:
        return [lb["id"] for lb in self.labels]

    def model_path(self, key: str = "onnx_int8") -> Path:
        """Path of the encoder file for a ``MODEL_KEYS`` entry; BundleError if the bundle lacks it."""
        name = self.manifest["models"].get(key)
        if not name:
            have = [k for k, v in self.manifest["models"].items() if v]
            raise BundleError(f"bundle {self.folder} has no {key} model (it has {have})")
        return self.folder / name

    def close(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_bundle_path() -> Path:
    """The default bundle shipped inside the edge package."""
    return Path(__file__).resolve().parent / "bundles" / "default"


def load_bundle(path: str | Path | None = None, verify: bool = True) -> Bundle:
    """Load (and by default verify) a bundle folder or zip; ``None`` loads the shipped default bundle."""
    path = Path(path) if path is not None else default_bundle_path()
    tmp = None
    if path.is_file() and zipfile.is_zipfile(path):
        tmp = tempfile.mkdtemp(prefix="ecg-bundle-")
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = Path(info.filename).name  # flatten: bundles have no subfolders; blocks path traversal
                if name and not info.is_dir():
                    (Path(tmp) / name).write_bytes(zf.read(info))
        folder = Path(tmp)
    elif path.is_dir():
        folder = path
    else:
        raise BundleError(f"bundle {path} not found (expected a folder with {MANIFEST_NAME} or a .zip)")
    try:
        manifest = verify_bundle(folder) if verify else _read_manifest(folder)
        emb = np.load(folder / manifest["label_embeddings"], allow_pickle=False).astype(np.float32)
        labels = manifest["labels"]
        if emb.shape != (len(labels), manifest["embedding_dim"]):
            raise BundleError(
                f"{folder}: label embeddings of shape {emb.shape}, manifest says "
                f"{(len(labels), manifest['embedding_dim'])}"
            )
        # A missing or null threshold (JSON has no infinity) means: never reported as a finding.
        thresholds = np.array(
            [np.inf if lb.get("threshold") is None else lb["threshold"] for lb in labels], dtype=np.float32
        )
        signal = SignalConfig.from_dict(manifest["signal"])
    except BundleError:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle(folder, manifest, signal, labels, emb, thresholds, tmp)
