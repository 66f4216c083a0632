"""Writing a bundle folder (DESIGN.md, contract 3) in the shape ``edge.bundle.loader`` reads and verifies.

The folder is assembled in a temporary sibling folder and renamed into place only when complete and
verified by :func:`edge.bundle.loader.load_bundle`, so a failed export never leaves a half-written bundle.
Files: the int8 encoders of the requested formats (``encoder_int8.onnx`` and/or
``encoder_int8.tflite``), optionally ``encoder_fp32.onnx``, ``label_embeddings.npy`` (float32, no pickle) and ``labels.json`` (the same
label list as the manifest's, row order of the embedding matrix). :func:`edge.bundle.loader.write_manifest`
adds the sha256 and size of every file.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from edge.bundle.loader import MANIFEST_NAME, MODEL_KEYS, BundleError, load_bundle, write_manifest
from edge.bundle.signing import SigningError, Trust, load_private_key, sign_manifest

from .onnx_export import ExportError

__all__ = ["FILE_NAMES", "SIZE_BUDGET_BYTES", "BundleDraft", "check_destination", "folder_size", "zip_bundle"]

logger = logging.getLogger(__name__)

# manifest["models"] key -> file name in the bundle
FILE_NAMES = {"onnx_int8": "encoder_int8.onnx", "onnx_fp32": "encoder_fp32.onnx", "tflite_int8": "encoder_int8.tflite"}
EMBEDDINGS_NAME = "label_embeddings.npy"
LABELS_NAME = "labels.json"
SIZE_BUDGET_BYTES = 3 * 1024 * 1024  # the bedside board's budget for the shipped resnet1d18-small bundle


def folder_size(folder: str | Path) -> int:
    """Bytes of all files in a bundle folder (manifest included)."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file())


def check_destination(out: str | Path, overwrite: bool = False) -> None:
    """Refuse to replace an existing non-empty ``out`` unless ``overwrite`` (checked before any work)."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not overwrite:
        raise ExportError(f"{out} already exists; choose another --out or pass --force to replace it")


class BundleDraft:
    """A bundle being assembled in a work folder next to its destination; :meth:`finish` moves it there."""

    def __init__(self, out: str | Path, overwrite: bool = False) -> None:
        self.out = Path(out)
        check_destination(self.out, overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
        self.scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=self.work))  # removed before the manifest
        self.models: dict[str, str | None] = dict.fromkeys(MODEL_KEYS)

    def path(self, key: str) -> Path:
        """Where the model file for a ``MODEL_KEYS`` entry is written (inside the bundle)."""
        return self.work / FILE_NAMES[key]

    def scratch_path(self, name: str) -> Path:
        """A file that is needed during the export but not shipped."""
        return self.scratch / name

    def add_model(self, key: str, source: Path | None = None) -> None:
        """Ship a model file (``source`` is moved in, or it was written at :meth:`path` already)."""
        dest = self.path(key)
        if source is not None and Path(source) != dest:
            shutil.copyfile(source, dest)
        if not dest.is_file():
            raise ExportError(f"model file for {key} was not written")
        self.models[key] = dest.name

    def finish(self, manifest: dict, labels: list[dict], embeddings: np.ndarray) -> dict:
        """Write embeddings, labels and manifest, verify with ``load_bundle``, move into place."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        if not (self.models.get("onnx_int8") or self.models.get("tflite_int8")):
            raise ExportError("a bundle needs an int8 encoder (ONNX or TFLite)")
        np.save(self.work / EMBEDDINGS_NAME, np.ascontiguousarray(embeddings, dtype=np.float32), allow_pickle=False)
        (self.work / LABELS_NAME).write_text(json.dumps(labels, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        manifest = write_manifest(self.work, {**manifest, "models": self.models, "labels": labels,
                                              "label_embeddings": EMBEDDINGS_NAME})
        # What the device will do, before it ships (unsigned yet: ecg-export --sign-key signs the result).
        with load_bundle(self.work, verify=True, trust=Trust(warn_unsigned=False)) as bundle:
            if bundle.label_ids != [lb["id"] for lb in labels]:
                raise ExportError("the written bundle's labels do not match the label embeddings' rows")
        for p in self.work.iterdir():  # mkdtemp makes the folder private; a bundle is meant to be read
            p.chmod(0o644)
        self.work.chmod(0o755)
        if self.out.is_dir():
            shutil.rmtree(self.out)
        elif self.out.exists():
            self.out.unlink()
        self.work.rename(self.out)
        logger.info("wrote bundle %s", self.out)
        return manifest

    def discard(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)


def check_sign_key(key_path: str | Path) -> None:
    """Load the private key before a long export, so a bad --sign-key fails at once."""
    try:
        load_private_key(key_path)
    except SigningError as exc:
        raise ExportError(str(exc)) from None


def sign_bundle(folder: str | Path, key_path: str | Path, zip_path: str | Path | None = None) -> str:
    """Sign a written bundle's manifest (``manifest.sig``), check it as a device trusting only this key
    would, and rewrite ``zip_path`` with the signature in it; returns the key id."""
    from cryptography.hazmat.primitives import serialization

    from edge.bundle.signing import PublicKey

    folder = Path(folder)
    try:
        key = load_private_key(key_path)
        kid = sign_manifest(folder, key_path)
    except SigningError as exc:
        raise ExportError(str(exc)) from None
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        with load_bundle(folder, verify=True, trust=Trust([PublicKey(raw)], require_signature=True)):
            pass
    except BundleError as exc:
        raise ExportError(f"the signed bundle does not verify: {exc}") from None
    (folder / "manifest.sig").chmod(0o644)
    if zip_path is not None:
        zip_bundle(folder, zip_path)
    logger.info("signed %s with key %s", folder, kid)
    return kid


def zip_bundle(folder: str | Path, zip_path: str | Path | None = None) -> Path:
    """Zip a bundle folder (flat, manifest first) to ``zip_path`` (default ``<folder>.zip``)."""
    folder = Path(folder)
    zip_path = Path(zip_path) if zip_path else folder.with_name(folder.name + ".zip")
    names = [MANIFEST_NAME] + sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST_NAME)
    tmp = zip_path.with_name(zip_path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            zf.write(folder / name, arcname=name)
    tmp.replace(zip_path)
    return zip_path
