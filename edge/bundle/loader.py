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

Hostile bundles (contract 3, "Integrity of the manifest itself"): before the manifest is parsed its
bytes are checked against the package's pin (the default bundle) or its Ed25519 signature
(``edge.bundle.signing``); then every field is validated (``edge.bundle.manifest``); symlinks, absolute paths and
``..`` are refused; a zip is checked for entry count, names, types and total size before anything is
extracted (``edge.bundle.archive``), and a failed load removes its extraction.
"""

from __future__ import annotations

import json
import logging
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.bundle.manifest import ManifestError, validate_manifest
from edge.bundle.schema import (
    BUNDLE_FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    MODEL_KEYS,
    REQUIRED_KEYS,
    BundleError,
    new_sha256,
)
from edge.dsp.signal import SignalConfig, SignalError
from edge.bundle.schema import SIGNATURE_NAME
from edge.bundle.signing import SigningError, Trust, verify_manifest_signature

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
    "default_bundle_pin",
    "manifest_sha256",
    "new_sha256",
]

logger = logging.getLogger(__name__)



def sha256_file(path: str | Path) -> str:
    h = new_sha256()
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
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.name not in (MANIFEST_NAME, SIGNATURE_NAME)
    )
    manifest = {"format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION, **manifest}
    manifest["files"] = {p.name: file_entry(p) for p in files}
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"manifest lacks {missing}")
    (folder / MANIFEST_NAME).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest


def manifest_sha256(folder: str | Path) -> str:
    """sha256 of a bundle's ``manifest.json`` bytes (what the default bundle's pin holds)."""
    return sha256_file(Path(folder) / MANIFEST_NAME)


def default_bundle_pin() -> str:
    """The sha256 of the default bundle's manifest, pinned in the package (``edge/bundles/default.sha256``)."""
    path = default_bundle_path().with_suffix(".sha256")
    try:
        return path.read_text(encoding="ascii").split()[0].lower()
    except (OSError, IndexError, UnicodeDecodeError):
        raise BundleError(f"the default bundle's pin {path} is missing or empty") from None


def _regular(path: Path, what: str) -> Path:
    """``path`` if it is a regular file (not a symlink, not a folder); BundleError otherwise."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        raise BundleError(f"{path}: {what} missing") from None
    if stat.S_ISLNK(mode):
        raise BundleError(f"{path}: {what} is a symbolic link (refused)")
    if not stat.S_ISREG(mode):
        raise BundleError(f"{path}: {what} is not a regular file")
    return path


def _manifest_bytes(folder: Path) -> bytes:
    path = folder / MANIFEST_NAME
    if not path.exists() and not path.is_symlink():
        raise BundleError(f"{folder}: not a bundle (no {MANIFEST_NAME})")
    _regular(path, "manifest")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path}: manifest larger than {MAX_MANIFEST_BYTES >> 20} MiB")
    return path.read_bytes()


def check_trust(folder: Path, data: bytes, trust: Trust | None = None) -> str:
    """Decide whether the manifest's bytes may be read (see ``edge.bundle.signing``); returns who vouches for them."""
    path = folder / MANIFEST_NAME
    if folder.resolve() == default_bundle_path().resolve():
        pin = default_bundle_pin()
        if new_sha256(data).hexdigest() != pin:
            raise BundleError(
                f"{path}: the default bundle's manifest does not match the sha256 pinned in the package "
                f"({pin[:12]}...): edited, or re-exported without updating edge/bundles/default.sha256"
            )
        return "pinned default bundle"
    trust = trust if trust is not None else Trust.from_config()
    sig = folder / SIGNATURE_NAME
    if sig.exists() or sig.is_symlink():
        _regular(sig, "signature")
        try:
            kid, trusted = verify_manifest_signature(sig, data, trust)
        except SigningError as exc:
            raise BundleError(str(exc)) from None
        if trusted:
            return f"signed by trusted key {kid}"
        if trust.require_signature:
            raise BundleError(f"{path}: signed by key {kid}, which this device does not trust (--trust-key)")
        if trust.warn_unsigned:
            logger.warning(
                "%s: signed by key %s, which this device does not trust (none configured)", path, kid
            )
        return f"signed by untrusted key {kid}"
    if trust.require_signature:
        raise BundleError(
            f"{path}: unsigned; this device only loads manifests signed by a trusted key (ecg-export --sign-key)"
        )
    if trust.warn_unsigned:
        logger.warning("%s: unsigned bundle; its manifest is not protected (ecg-export --sign-key)", path)
    return "unsigned"


def _read_manifest(folder: Path, data: bytes | None = None) -> dict:
    path = folder / MANIFEST_NAME
    data = _manifest_bytes(folder) if data is None else data
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{path}: manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: manifest is not a JSON object")
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
    try:
        return validate_manifest(manifest)
    except ManifestError as exc:
        raise BundleError(f"{path}: {exc}") from None


def verify_bundle(folder: str | Path, trust: Trust | None = None) -> dict:
    """Check the manifest's pin or signature, its fields, every listed file's size and sha256; returns it."""
    return _verify(Path(folder), trust)[0]


def _verify(folder: Path, trust: Trust | None) -> tuple[dict, str]:
    data = _manifest_bytes(folder)
    vouch = check_trust(folder, data, trust)
    manifest = _read_manifest(folder, data)
    problems = []
    for name, entry in manifest["files"].items():
        path = folder / name
        if Path(name).name != name:
            problems.append(f"{name}: file names must not contain folders")
        elif path.is_symlink():
            problems.append(f"{name}: a symbolic link (refused)")
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
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            listed = None
        key = ("id", "ja", "en", "threshold", "new")
        if (
            not isinstance(listed, list)
            or not all(isinstance(lb, dict) for lb in listed)
            or [[lb.get(k) for k in key] for lb in listed]
            != [[lb.get(k) for k in key] for lb in manifest["labels"]]
        ):
            problems.append("the manifest's labels differ from labels.json (manifest edited?)")
    if problems:
        raise BundleError(f"bundle {folder} failed verification: " + "; ".join(problems))
    return manifest, vouch


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
    trust: str = ""  # who vouches for the manifest: pinned default, signed by key ..., unsigned

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
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def default_bundle_path() -> Path:
    """The default bundle shipped inside the edge package."""
    return Path(__file__).resolve().parent.parent / "bundles" / "default"


def load_bundle(path: str | Path | None = None, verify: bool = True, trust: Trust | None = None) -> Bundle:
    """Load (and by default verify) a bundle folder or zip; ``None`` loads the shipped default bundle.

    ``trust`` (default: ``Trust.from_config()``, see ``edge.bundle.signing``) decides which signatures count.
    """
    path = Path(path) if path is not None else default_bundle_path()
    tmp = None
    if path.is_file():  # zip support is imported only for a zip (+1 MiB resident otherwise)
        import tempfile
        import zipfile

        if not zipfile.is_zipfile(path):
            raise BundleError(f"bundle {path} is a file but not a zip (truncated or corrupt?)")
        tmp = tempfile.mkdtemp(prefix="ecg-bundle-")
        folder = Path(tmp)
    elif path.is_dir():
        folder = path
    else:
        raise BundleError(f"bundle {path} not found (expected a folder with {MANIFEST_NAME} or a .zip)")
    try:
        if tmp:
            from edge.bundle.archive import extract_zip

            extract_zip(path, folder)
        return _load_folder(folder, path, verify, trust, tmp)
    except BaseException:
        if tmp:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_folder(folder: Path, path: Path, verify: bool, trust: Trust | None, tmp: str | None) -> Bundle:
    if verify:
        manifest, vouch = _verify(folder, trust)
    else:
        manifest, vouch = _read_manifest(folder), "not verified"
    name = manifest["label_embeddings"]
    try:
        emb = np.load(_regular(folder / name, "label embeddings"), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BundleError(f"{path}: {name} is not a numeric .npy array ({exc})") from None
    labels = manifest["labels"]
    if emb.dtype.kind not in "fiu" or emb.shape != (len(labels), manifest["embedding_dim"]):
        raise BundleError(
            f"{path}: label embeddings of shape {emb.shape} and dtype {emb.dtype}, manifest says "
            f"{(len(labels), manifest['embedding_dim'])} numbers"
        )
    emb = emb.astype(np.float32)
    if not np.isfinite(emb).all():
        raise BundleError(f"{path}: {name} holds NaN or infinite values")
    # A missing or null threshold (JSON has no infinity) means: never reported as a finding.
    thresholds = np.array(
        [np.inf if lb.get("threshold") is None else lb["threshold"] for lb in labels], dtype=np.float32
    )
    try:
        signal = SignalConfig.from_dict(manifest["signal"])
    except (SignalError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: manifest field signal: {exc}") from None
    return Bundle(folder, manifest, signal, labels, emb, thresholds, tmp, vouch)
