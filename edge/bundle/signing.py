"""Signed bundle manifests (DESIGN.md, contract 3, "Integrity of the manifest itself"): Ed25519.

The checksums in ``manifest.json`` protect the bundle's files; this protects the manifest itself, whose
signal block and thresholds change findings silently when edited. The exporter signs the exact bytes of
``manifest.json`` (RFC 8032 Ed25519, through the ``cryptography`` package) and writes ``manifest.sig``
next to it::

    {"algorithm": "ed25519", "key_id": "<16 hex>", "public_key": "<base64, 32 bytes>", "signature": "<base64>"}

Keys are the hospital's: ``ecg-edge keygen --out KEY`` writes ``KEY`` (PKCS#8 PEM, mode 0600, never
committed) and ``KEY.pub`` (one line: ``ecg-clip-ja-ed25519 <base64> <comment>``). A device trusts the
``.pub`` files it is given: ``--trust-key FILE_OR_FOLDER`` (``ecg-edge run``/``classify``/``info``), the
``ECG_EDGE_TRUSTED_KEYS`` environment variable (paths separated by ``:``), and the folders
``/etc/ecg-clip-ja/trusted_keys`` and ``~/.config/ecg-clip-ja/trusted_keys``.

The policy (:class:`Trust`, applied by ``edge.bundle.loader.load_bundle`` before it parses the manifest):

- the shipped default bundle needs no key: the package pins the sha256 of its manifest
  (``edge/bundles/default.sha256``); a default bundle that does not match it is refused;
- a signature that does not verify (an edited manifest, a flipped bit) is always refused;
- a device that trusts at least one key (or sets ``ECG_EDGE_REQUIRE_SIGNATURE=1``) refuses bundles that
  are unsigned or signed by a key it does not trust; a device without trusted keys loads them, with a
  warning, so a workstation can try a fresh export.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from edge.bundle.schema import SIGNATURE_NAME, new_sha256

__all__ = [
    "SIGNATURE_NAME",
    "PUBLIC_KEY_TAG",
    "SigningError",
    "PublicKey",
    "Trust",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "sign_manifest",
    "verify_manifest_signature",
    "default_trust_folders",
]

logger = logging.getLogger(__name__)

PUBLIC_KEY_TAG = "ecg-clip-ja-ed25519"
TRUSTED_KEYS_ENV = "ECG_EDGE_TRUSTED_KEYS"
REQUIRE_ENV = "ECG_EDGE_REQUIRE_SIGNATURE"
MAX_KEY_FILE_BYTES = 16 * 1024


class SigningError(ValueError):
    """A key or signature that cannot be used; the message names the file and the problem."""


def _crypto():  # noqa: ANN202 - the cryptography module, imported only when keys are used
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SigningError("signed bundles need the cryptography package: pip install cryptography") from None
    return ed25519, serialization, InvalidSignature


def key_id(raw: bytes) -> str:
    """A short, stable name of a public key: the first 16 hex digits of its sha256."""
    # the built-in sha256 (hashlib's loads libcrypto: +3.6 MiB resident)

    return new_sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    """A trusted Ed25519 public key: raw 32 bytes, its id, and where it came from."""

    raw: bytes
    source: str = ""
    comment: str = ""

    @property
    def key_id(self) -> str:
        return key_id(self.raw)


def _read_small(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise SigningError(f"{path}: too large for a {what}")
        return path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def generate_keypair(private_path: str | Path, comment: str = "") -> tuple[Path, Path, str]:
    """Write a new key pair: ``private_path`` (PEM, mode 0600) and ``private_path.pub``; never overwrites."""
    ed25519, serialization, _ = _crypto()
    private_path = Path(private_path)
    public_path = private_path.with_name(private_path.name + ".pub")
    for p in (private_path, public_path):
        if p.exists():
            raise SigningError(f"{p} already exists; choose another name (keys are never overwritten)")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    comment = " ".join(comment.split()) or private_path.stem
    public_path.write_text(f"{PUBLIC_KEY_TAG} {base64.b64encode(raw).decode()} {comment}\n", encoding="utf-8")
    return private_path, public_path, key_id(raw)


def load_private_key(path: str | Path):  # noqa: ANN201 - Ed25519PrivateKey
    ed25519, serialization, _ = _crypto()
    path = Path(path)
    data = _read_small(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SigningError(f"{path}: not an Ed25519 private key (make one with ecg-edge keygen)")
    return key


def load_public_key(path: str | Path) -> PublicKey:
    """A ``.pub`` file written by ``ecg-edge keygen``."""
    path = Path(path)
    text = _read_small(path, "public key").decode("utf-8", "replace").strip()
    parts = text.split(None, 2)
    if len(parts) < 2 or parts[0] != PUBLIC_KEY_TAG:
        raise SigningError(f"{path}: not a public key written by ecg-edge keygen ({PUBLIC_KEY_TAG} ...)")
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise SigningError(f"{path}: the public key is not valid base64") from None
    if len(raw) != 32:
        raise SigningError(f"{path}: an Ed25519 public key has 32 bytes, this one {len(raw)}")
    return PublicKey(raw, str(path), parts[2] if len(parts) > 2 else "")


def default_trust_folders() -> list[Path]:
    return [Path("/etc/ecg-clip-ja/trusted_keys"), Path.home() / ".config" / "ecg-clip-ja" / "trusted_keys"]


def _keys_from(path: Path) -> list[PublicKey]:
    if path.is_dir():
        return [load_public_key(p) for p in sorted(path.glob("*.pub"))]
    if not path.exists():
        raise SigningError(f"trusted key {path} not found")
    return [load_public_key(path)]


@dataclass
class Trust:
    """The public keys a device trusts and whether it insists on a signature."""

    keys: list[PublicKey] = field(default_factory=list)
    require_signature: bool = False
    warn_unsigned: bool = True  # log a warning for an unsigned bundle (off for the exporter's own check)

    @classmethod
    def from_config(cls, paths: list[str | Path] | tuple = (), require: bool | None = None) -> Trust:
        """Keys from ``paths`` (files or folders), ``$ECG_EDGE_TRUSTED_KEYS`` and the default folders."""
        keys: list[PublicKey] = []
        env = [p for p in os.environ.get(TRUSTED_KEYS_ENV, "").split(os.pathsep) if p.strip()]
        for p in [*paths, *env]:
            keys += _keys_from(Path(p).expanduser())
        for folder in default_trust_folders():
            if folder.is_dir():
                keys += _keys_from(folder)
        if require is None:
            require = bool(keys) or os.environ.get(REQUIRE_ENV, "") not in ("", "0")
        return cls(keys, require)

    def find(self, kid: str) -> PublicKey | None:
        return next((k for k in self.keys if k.key_id == kid), None)


def sign_manifest(folder: str | Path, private_key_path: str | Path) -> str:
    """Sign ``folder/manifest.json`` with the key at ``private_key_path``; write ``manifest.sig``; return the key id."""
    _, serialization, _ = _crypto()
    folder = Path(folder)
    key = load_private_key(private_key_path)
    data = (folder / "manifest.json").read_bytes()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    doc = {
        "algorithm": "ed25519",
        "key_id": key_id(raw),
        "public_key": base64.b64encode(raw).decode(),
        "signature": base64.b64encode(key.sign(data)).decode(),
    }
    (folder / SIGNATURE_NAME).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return doc["key_id"]


def _ed25519_verify(raw: bytes, signature: bytes, message: bytes) -> bool:
    ed25519, _, invalid_signature = _crypto()
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
    except invalid_signature:
        return False
    return True


def _verify_in_child(raw: bytes, signature: bytes, message: bytes) -> bool:
    """Ed25519 verification in a short-lived process, so the runtime does not keep ``cryptography``'s
    libraries resident (+11 MiB on the device, measured: 75 -> 86 MiB); it costs about 0.2 s once per load.
    In-process where ``cryptography`` is loaded already or no child can be started."""
    import subprocess
    import sys

    if "cryptography" in sys.modules:
        return _ed25519_verify(raw, signature, message)
    request = {
        k: base64.b64encode(v).decode() for k, v in (("key", raw), ("sig", signature), ("msg", message))
    }
    package_root = str(Path(__file__).resolve().parent.parent.parent)  # where this process found ``edge``
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p),
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "edge.bundle.signing"], input=json.dumps(request), capture_output=True,
            text=True, timeout=60, check=False, env=env,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return _ed25519_verify(raw, signature, message)
    answer = proc.stdout.strip()
    if proc.returncode != 0 or answer not in ("valid", "invalid"):
        detail = (proc.stderr.strip().splitlines() or ["no answer"])[-1]
        raise SigningError(f"cannot verify the signature: {detail}")
    return answer == "valid"


def verify_manifest_signature(sig_path: Path, manifest_bytes: bytes, trust: Trust) -> tuple[str, bool]:
    """Check ``manifest.sig`` over the manifest's bytes; returns (key id, trusted). Raises SigningError."""
    try:
        doc = json.loads(_read_small(sig_path, "signature"))
        if not isinstance(doc, dict) or doc.get("algorithm") != "ed25519":
            raise ValueError("algorithm is not ed25519")
        raw = base64.b64decode(doc["public_key"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
        kid = doc["key_id"]
        if len(raw) != 32 or len(signature) != 64 or kid != key_id(raw):
            raise ValueError("key or signature of the wrong size, or a key_id that does not match the key")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SigningError(f"{sig_path}: not a valid signature file ({exc})") from None
    trusted = trust.find(kid)
    if not _verify_in_child(raw, signature, manifest_bytes):
        raise SigningError(
            f"{sig_path}: the signature does not match manifest.json (edited or corrupted after signing)"
        )
    return kid, trusted is not None


def _child_main() -> int:
    """``python -m edge.bundle.signing``: verify one request from stdin (see :func:`_verify_in_child`)."""
    import sys

    request = json.loads(sys.stdin.read())
    raw, signature, message = (base64.b64decode(request[k]) for k in ("key", "sig", "msg"))
    print("valid" if _ed25519_verify(raw, signature, message) else "invalid")
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main())
