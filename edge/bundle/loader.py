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
bytes are checked against the package's pin (the default bundle) or its Ed25519 signature by a trusted key
(``edge.bundle.signing``; unsigned bundles only with ``Trust(allow_unsigned=True)``, marked unsigned); a
trusted key's older bundle is refused as a rollback (``edge.bundle.state``); then every field is validated
(``edge.bundle.manifest``). Each file is read once: its bytes are checked against the manifest and the same
bytes are what the runtime uses (:meth:`Bundle.model_bytes` goes to onnxruntime / LiteRT), so a file swapped
after the check is never run. Symlinks, absolute paths and ``..`` are refused; a zip is checked for entry
count, names, types and total size, and its signature is checked before anything is written to disk
(``edge.bundle.archive``).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.bundle.folder import FolderSource as _FolderSource
from edge.bundle.manifest import MAX_FILE_BYTES, ManifestError, validate_manifest
from edge.bundle.schema import (
    BUNDLE_FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    MODEL_KEYS,
    REQUIRED_KEYS,
    SIGNATURE_NAME,
    BundleError,
    new_sha256,
)
from edge.bundle.signing import SigningError, Trust, read_signature, verify_manifest_signature
from edge.bundle.state import check_rollback
from edge.dsp.signal import SignalConfig, SignalError

__all__ = [
    "BUNDLE_FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "MODEL_KEYS",
    "BundleError",
    "Bundle",
    "Vouch",
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
UNSIGNED_WARNING = "署名のないバンドル (unsigned bundle, loaded with --allow-unsigned)"


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


@dataclass(frozen=True)
class Vouch:
    """Who vouches for a manifest: the text shown, whether it loaded only by ``--allow-unsigned``, the key."""

    text: str
    unsigned: bool = False
    public_key: bytes | None = None


def check_trust(source, data: bytes, trust: Trust, is_default: bool) -> Vouch:  # noqa: ANN001
    """Decide whether the manifest's bytes may be read at all (see ``edge.bundle.signing``)."""
    path = source.path
    if is_default:
        pin = default_bundle_pin()
        if new_sha256(data).hexdigest() != pin:
            raise BundleError(
                f"{path}: the default bundle's manifest does not match the sha256 pinned in the package "
                f"({pin[:12]}...): edited, or re-exported without updating edge/bundles/default.sha256"
            )
        return Vouch("pinned default bundle")
    if source.has(SIGNATURE_NAME):
        where = f"{path}/{SIGNATURE_NAME}" if isinstance(source, _FolderSource) else f"{path}:{SIGNATURE_NAME}"
        try:
            sig = read_signature(source.read(SIGNATURE_NAME, 16 * 1024), where)
            trusted = verify_manifest_signature(sig, data, trust, where)
        except SigningError as exc:
            raise BundleError(str(exc)) from None
        kid = sig.public_key.key_id
        if trusted:
            return Vouch(f"signed by trusted key {kid}", public_key=sig.public_key.raw)
        if not trust.allow_unsigned:
            raise BundleError(
                f"{path}: signed by key {kid}, which this device does not trust "
                "(ecg-edge trust add KEY.pub, --trust-key; --allow-unsigned loads it marked unsigned)"
            )
        text = f"signed by untrusted key {kid}"
    elif not trust.allow_unsigned:
        raise BundleError(
            f"{path}: unsigned bundle refused; this device loads manifests signed by a trusted key "
            "(ecg-export signs by default; --allow-unsigned loads it marked unsigned)"
        )
    else:
        text = "unsigned"
    if trust.warn:
        logger.warning("%s: %s, loaded with --allow-unsigned: its manifest is not protected", path, text)
    return Vouch(text, unsigned=True)


def _parse_manifest(path: Path, data: bytes) -> dict:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{path}: manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: manifest is not a JSON object")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: format {str(manifest.get('format'))[:60]!r} is not {BUNDLE_FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format version {str(manifest.get('format_version'))[:20]} is not supported "
            f"(this runtime reads version {FORMAT_VERSION})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"{path}: manifest lacks {missing}")
    try:
        return validate_manifest(manifest)
    except ManifestError as exc:
        raise BundleError(f"{path}: {exc}") from None


def _read_files(source, manifest: dict, verify: bool) -> dict[str, bytes]:  # noqa: ANN001
    """Every listed file's bytes, read once and (``verify``) checked against the manifest's size and sha256."""
    blobs: dict[str, bytes] = {}
    problems = []
    for name, entry in manifest["files"].items():
        if Path(name).name != name:
            problems.append(f"{name}: file names must not contain folders")
            continue
        try:
            data = source.read(name, entry["bytes"] if verify else MAX_FILE_BYTES)
        except BundleError as exc:
            problems.append(f"{name}: {str(exc).rsplit(': ', 1)[-1]}")
            continue
        if verify and len(data) != entry["bytes"]:
            problems.append(f"{name}: {len(data)} bytes, manifest says {entry['bytes']}")
        elif verify and new_sha256(data).hexdigest() != entry["sha256"]:
            problems.append(f"{name}: sha256 does not match the manifest (file changed or corrupted)")
        else:
            blobs[name] = data
    referenced = [manifest["label_embeddings"], *[v for v in manifest["models"].values() if v]]
    problems += [f"{n}: referenced but not listed in files" for n in referenced if n not in manifest["files"]]
    if verify and not problems and "labels.json" in blobs:
        # manifest.json itself carries no checksum: its label list must equal the checksummed labels.json.
        try:
            listed = json.loads(blobs["labels.json"].decode("utf-8"))
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
        raise BundleError(f"bundle {source.path} failed verification: " + "; ".join(problems))
    return blobs


@dataclass
class Bundle:
    """A verified bundle: manifest, signal contract, labels, label embeddings, thresholds and model bytes."""

    folder: Path
    manifest: dict
    signal: SignalConfig
    labels: list[dict]
    embeddings: np.ndarray  # float32 [n_labels, embedding_dim], unit rows
    thresholds: np.ndarray  # float32 [n_labels]
    _tmp: str | None = field(default=None, repr=False)
    trust: str = ""  # who vouches for the manifest: pinned default, signed by key ..., unsigned
    unsigned: bool = False  # loaded only because of --allow-unsigned: every view and JSON line says so
    models: dict[str, bytes] = field(default_factory=dict, repr=False)  # verified model bytes by file name

    @property
    def label_ids(self) -> list[str]:
        return [lb["id"] for lb in self.labels]

    @property
    def warning(self) -> str | None:
        """The line every view shows for a bundle loaded with --allow-unsigned (None otherwise)."""
        return f"{UNSIGNED_WARNING}: {self.trust}" if self.unsigned else None

    def model_name(self, key: str = "onnx_int8") -> str:
        name = self.manifest["models"].get(key)
        if not name:
            have = [k for k, v in self.manifest["models"].items() if v]
            raise BundleError(f"bundle {self.folder} has no {key} model (it has {have})")
        return name

    def model_path(self, key: str = "onnx_int8") -> Path:
        """Path of the encoder file for a ``MODEL_KEYS`` entry (tools; the runtime uses :meth:`model_bytes`)."""
        return self.folder / self.model_name(key)

    def model_bytes(self, key: str = "onnx_int8") -> bytes:
        """The encoder's bytes exactly as verified at load (what the runtime hands to onnxruntime / LiteRT)."""
        name = self.model_name(key)
        if name not in self.models:
            raise BundleError(f"bundle {self.folder}: {name} was not read at load, or was handed to a runtime already")
        return self.models[name]

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


def verify_bundle(folder: str | Path, trust: Trust | None = None) -> dict:
    """Check the manifest's pin or signature, its fields, every listed file's size and sha256; returns it."""
    with load_bundle(folder, verify=True, trust=trust) as bundle:
        return bundle.manifest


def load_bundle(path: str | Path | None = None, verify: bool = True, trust: Trust | None = None) -> Bundle:
    """Load (and by default verify) a bundle folder or zip; ``None`` loads the shipped default bundle.

    ``trust`` (default: ``Trust.from_config()``, see ``edge.bundle.signing``) decides which signatures count.
    """
    path = Path(path) if path is not None else default_bundle_path()
    if path.is_file():  # zip support is imported only for a zip (+1 MiB resident otherwise)
        import zipfile

        if not zipfile.is_zipfile(path):
            raise BundleError(f"bundle {path} is a file but not a zip (truncated or corrupt?)")
        from edge.bundle.archive import ZipSource

        source = ZipSource(path)
    elif path.is_dir():
        source = _FolderSource(path)
    else:
        raise BundleError(f"bundle {path} not found (expected a folder with {MANIFEST_NAME} or a .zip)")
    try:
        return _load(source, path, verify, trust)
    finally:
        source.close()


def _load(source, path: Path, verify: bool, trust: Trust | None) -> Bundle:  # noqa: ANN001
    if not source.has(MANIFEST_NAME):
        raise BundleError(f"{path}: not a bundle (no {MANIFEST_NAME})")
    data = source.read(MANIFEST_NAME, MAX_MANIFEST_BYTES)
    vouch = Vouch("not verified")
    if verify:
        trust = trust if trust is not None else Trust.from_config()
        is_default = isinstance(source, _FolderSource) and path.resolve() == default_bundle_path().resolve()
        vouch = check_trust(source, data, trust, is_default)
    manifest = _parse_manifest(path / MANIFEST_NAME if isinstance(source, _FolderSource) else path, data)
    blobs = _read_files(source, manifest, verify)
    if vouch.public_key is not None and vouch.public_key not in trust.own_keys:
        check_rollback(
            trust.state_path, vouch.public_key, manifest.get("created"), new_sha256(data).hexdigest(),
            trust.allow_rollback, str(path),
        )  # fmt: skip
    folder, tmp = path, None
    if not isinstance(source, _FolderSource):  # tools that want paths get the verified bytes on disk
        import tempfile

        tmp = tempfile.mkdtemp(prefix="ecg-bundle-")
        folder = Path(tmp)
        try:
            (folder / MANIFEST_NAME).write_bytes(data)
            for name, blob in blobs.items():
                (folder / name).write_bytes(blob)
        except OSError as exc:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise BundleError(f"{path}: cannot unpack ({exc.strerror or exc})") from None
    try:
        return _build(folder, path, manifest, blobs, vouch, tmp)
    except BaseException:
        if tmp:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _build(folder: Path, path: Path, manifest: dict, blobs: dict, vouch: Vouch, tmp: str | None) -> Bundle:
    name = manifest["label_embeddings"]
    try:
        emb = np.load(io.BytesIO(blobs[name]), allow_pickle=False)
    except (ValueError, OSError, EOFError, KeyError) as exc:
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
    models = {n: blobs[n] for n in manifest["models"].values() if n and n in blobs}
    return Bundle(folder, manifest, signal, labels, emb, thresholds, tmp, vouch.text, vouch.unsigned, models)
