"""Writing a bundle folder (DESIGN.md, contract 3) in the shape ``edge.bundle.loader`` reads and verifies.

The folder is assembled in a temporary sibling folder, verified by :func:`edge.bundle.loader.load_bundle`,
signed there (``export.signing``; a bundle is never in place unsigned), and only then swapped into place in
one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``; a plain rename when ``--out`` does not exist yet), so a
failed or killed export leaves either the old bundle or the new one at ``--out``, never a half-written, half-
deleted or unsigned one. Work folders of killed exports (``.<out>.export-<pid>-*``) are removed by the next
export to the same place.
Files: the int8 encoders of the requested formats (``encoder_int8.onnx`` and/or
``encoder_int8.tflite``), optionally ``encoder_fp32.onnx``, ``label_embeddings.npy`` (float32, no pickle) and ``labels.json`` (the same
label list as the manifest's, row order of the embedding matrix). :func:`edge.bundle.loader.write_manifest`
adds the sha256 and size of every file.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from edge.bundle.loader import MANIFEST_NAME, MODEL_KEYS, BundleError, load_bundle, write_manifest
from edge.bundle.signing import SigningError, Trust

from .onnx_export import ExportError
from .signing import load_private_key, public_key_of, sign_manifest

__all__ = ["FILE_NAMES", "SIZE_BUDGET_BYTES", "BundleDraft", "check_destination", "folder_size", "zip_bundle",
           "check_sign_key", "sign_bundle", "swap_into_place"]

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
        remove_stale_work(self.out)
        self.work = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.export-{os.getpid()}-", dir=self.out.parent))
        self.key_id: str | None = None  # the key that signed the bundle, once finished
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

    def finish(self, manifest: dict, labels: list[dict], embeddings: np.ndarray,
               sign_key: str | Path | None = None) -> dict:
        """Write embeddings, labels and manifest, verify with ``load_bundle``, sign with ``sign_key``, then swap
        the finished folder into place atomically."""
        shutil.rmtree(self.scratch, ignore_errors=True)
        if not (self.models.get("onnx_int8") or self.models.get("tflite_int8")):
            raise ExportError("a bundle needs an int8 encoder (ONNX or TFLite)")
        np.save(self.work / EMBEDDINGS_NAME, np.ascontiguousarray(embeddings, dtype=np.float32), allow_pickle=False)
        (self.work / LABELS_NAME).write_text(json.dumps(labels, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        manifest = write_manifest(self.work, {**manifest, "models": self.models, "labels": labels,
                                              "label_embeddings": EMBEDDINGS_NAME})
        # What the device will do, before it ships (not signed yet: checked as a bundle, then signed below).
        with load_bundle(self.work, verify=True, trust=Trust(allow_unsigned=True, warn=False)) as bundle:
            if bundle.label_ids != [lb["id"] for lb in labels]:
                raise ExportError("the written bundle's labels do not match the label embeddings' rows")
        for p in self.work.iterdir():  # mkdtemp makes the folder private; a bundle is meant to be read
            p.chmod(0o644)
        if sign_key is not None:
            self.key_id = sign_bundle(self.work, sign_key)
        self.work.chmod(0o755)
        _fsync_tree(self.work)
        swap_into_place(self.work, self.out)
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
    """Sign a bundle folder's manifest (``manifest.sig``), check it as a device trusting only this key would,
    and (``zip_path``) rewrite that zip with the signature in it; returns the key id. Signs in place: for a bundle
    that is already in use, sign a copy and swap it in (:func:`swap_into_place`)."""
    folder = Path(folder)
    try:
        public = public_key_of(load_private_key(key_path))
        kid = sign_manifest(folder, key_path)
    except SigningError as exc:
        raise ExportError(str(exc)) from None
    try:
        with load_bundle(folder, verify=True, trust=Trust([public])):
            pass
    except BundleError as exc:
        raise ExportError(f"the signed bundle does not verify: {exc}") from None
    (folder / "manifest.sig").chmod(0o644)
    if zip_path is not None:
        zip_bundle(folder, zip_path)
    logger.info("signed %s with key %s", folder, kid)
    return kid


def _fsync_tree(folder: Path) -> None:
    """Flush a finished bundle's files and folder to disk before it replaces the old one (power loss)."""
    for p in [*folder.iterdir(), folder]:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"cannot swap {a} into {b}: {os.strerror(err)}")


def swap_into_place(work: Path, out: Path) -> None:
    """Put the finished folder ``work`` at ``out`` in one atomic step; the old ``out`` (if any) is removed after.

    Where the exchange is not available (not Linux, an old kernel, some file systems), the old bundle is
    renamed aside first, so a kill between the two renames leaves it at ``.<out>.old-<pid>`` (logged)."""
    work, out = Path(work), Path(out)
    if not out.exists() and not out.is_symlink():
        os.rename(work, out)
    elif _exchange(work, out):
        _remove(work)  # now the old bundle
    else:
        aside = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, aside)
        os.rename(work, out)
        _remove(aside)
    try:
        fd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_work(out: Path) -> None:
    """Remove work folders that killed exports to ``out`` left behind (their process is gone)."""
    for p in out.parent.glob(f".{out.name}.export-*"):
        try:
            pid = int(p.name.removeprefix(f".{out.name}.export-").split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running (another export to the same place)
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        _remove(p)


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
