"""Who vouches for a bundle's manifest (DESIGN.md, contract 3, "Integrity of the manifest itself"): the device side.

The checksums in ``manifest.json`` protect the bundle's files; the signature protects the manifest itself,
whose signal block, thresholds and rules change findings silently when edited. ``export.signing`` makes the
keys and signs (the private key never goes on a device); here the device only verifies, in-process, with the
pure-Python RFC 8032 verifier in :mod:`edge.bundle.ed25519` (no ``cryptography``, no child process).
``manifest.sig`` sits next to the manifest::

    {"algorithm": "ed25519", "key_id": "<16 hex>", "public_key": "<base64, 32 bytes>", "signature": "<base64>"}

A public key file (``KEY.pub``) is one line: ``ecg-clip-ja-ed25519 <base64 of 32 bytes> <comment>``. A device
trusts the ``.pub`` files it is given: ``--trust-key FILE_OR_FOLDER``, ``$ECG_EDGE_TRUSTED_KEYS`` (paths
separated by ``:``), and the folders ``/etc/ecg-clip-ja/trusted_keys`` and ``<config>/trusted_keys``
(``<config>``: ``$ECG_CLIP_JA_CONFIG``, else ``$XDG_CONFIG_HOME/ecg-clip-ja``, else ``~/.config/ecg-clip-ja``;
``ecg-edge trust add KEY.pub`` installs a key there). Keys are matched by the full 32-byte public key; the
key id is only a name to show.

The policy (:class:`Trust`, applied by ``edge.bundle.loader`` before the manifest is parsed) fails closed:

- the shipped default bundle needs no key: the package pins the sha256 of its manifest;
- a signature that does not verify (an edited manifest, a flipped bit) is always refused;
- a bundle that is unsigned or signed by a key the device does not trust is refused, unless the operator says
  ``--allow-unsigned`` (``Trust(allow_unsigned=True)``); it then loads marked unsigned, and every view and
  JSON line says so;
- a key path that was named but cannot be read, or a named folder that holds no ``*.pub``, is an error, never
  "no key";
- a bundle signed by a trusted key but older (manifest ``created``) than one this device already accepted from
  the same key is refused as a rollback unless ``allow_rollback`` (``edge.bundle.state``); not for the export
  machine's own local key (``export.signing.local_key``), whose bundles are trials of that machine.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edge.bundle import ed25519
from edge.bundle.schema import SIGNATURE_NAME, new_sha256

__all__ = [
    "SIGNATURE_NAME",
    "PUBLIC_KEY_TAG",
    "SigningError",
    "PublicKey",
    "Signature",
    "Trust",
    "config_dir",
    "key_id",
    "parse_public_key",
    "load_public_key",
    "read_signature",
    "verify_manifest_signature",
    "default_trust_folders",
]

PUBLIC_KEY_TAG = "ecg-clip-ja-ed25519"
TRUSTED_KEYS_ENV = "ECG_EDGE_TRUSTED_KEYS"
CONFIG_ENV = "ECG_CLIP_JA_CONFIG"
MAX_KEY_FILE_BYTES = 16 * 1024


class SigningError(ValueError):
    """A key or signature that cannot be used; the message names the file and the problem."""


def config_dir() -> Path:
    """This machine's ecg-clip-ja configuration folder (trusted keys, the export key, the bundle state)."""
    if os.environ.get(CONFIG_ENV, "").strip():
        return Path(os.environ[CONFIG_ENV]).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".config") / "ecg-clip-ja"


def key_id(raw: bytes) -> str:
    """A short name of a public key for people (the first 16 hex digits of its sha256); never used to trust."""
    return new_sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key: raw 32 bytes, where it came from, and its comment."""

    raw: bytes
    source: str = ""
    comment: str = ""

    @property
    def key_id(self) -> str:
        return key_id(self.raw)

    def line(self) -> str:
        """The key as one ``.pub`` line."""
        return f"{PUBLIC_KEY_TAG} {base64.b64encode(self.raw).decode()} {self.comment or self.key_id}\n"


def _read_small(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise SigningError(f"{path}: too large for a {what}")
        return path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def parse_public_key(text: str, source: str = "public key") -> PublicKey:
    """A key from its ``.pub`` line; SigningError naming ``source`` otherwise."""
    parts = text.strip().split(None, 2)
    if len(parts) < 2 or parts[0] != PUBLIC_KEY_TAG:
        raise SigningError(f"{source}: not an ecg-clip-ja public key ({PUBLIC_KEY_TAG} <base64> <comment>)")
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise SigningError(f"{source}: the public key is not valid base64") from None
    if len(raw) != 32:
        raise SigningError(f"{source}: an Ed25519 public key has 32 bytes, this one {len(raw)}")
    comment = " ".join(parts[2].split()) if len(parts) > 2 else ""
    return PublicKey(raw, source, comment)


def load_public_key(path: str | Path) -> PublicKey:
    """A ``.pub`` file written by ``ecg-export keygen`` (or by the export's local key)."""
    path = Path(path)
    return parse_public_key(_read_small(path, "public key").decode("utf-8", "replace"), str(path))


def default_trust_folders() -> list[Path]:
    return [Path("/etc/ecg-clip-ja/trusted_keys"), config_dir() / "trusted_keys"]


def _keys_from(path: Path, named: bool) -> list[PublicKey]:
    """The keys at ``path``. A path the operator named must hold a key; a default folder may be absent or empty,
    but one that exists and cannot be listed is an error too (fail closed, never "no key")."""
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix == ".pub")
            if named and not files:
                raise SigningError(f"trusted key folder {path} holds no *.pub file")
            return [load_public_key(p) for p in files]
        if path.exists():
            return [load_public_key(path)]
    except OSError as exc:
        raise SigningError(f"trusted keys {path}: cannot be read ({exc.strerror or exc})") from None
    if named:
        raise SigningError(f"trusted key {path} not found")
    return []


@dataclass
class Trust:
    """The public keys a device trusts, and what the operator allowed beyond them."""

    keys: list[PublicKey] = field(default_factory=list)
    allow_unsigned: bool = False  # load unsigned or untrusted-key bundles, marked unsigned everywhere
    allow_rollback: bool = False  # load a bundle older than one already accepted from the same key
    state_path: Path | None = None  # where accepted versions are kept (None: not kept, no rollback check)
    warn: bool = True  # log the unsigned warning (off for the exporter's own check of its work)
    own_keys: tuple[bytes, ...] = ()  # this machine's own export key: its trial exports are not rollback-checked

    @classmethod
    def from_config(
        cls, paths: list[str | Path] | tuple = (), allow_unsigned: bool = False, allow_rollback: bool = False
    ) -> Trust:
        """Keys from ``paths`` (files or folders), ``$ECG_EDGE_TRUSTED_KEYS`` and the default folders; the
        rollback state in ``<config>/bundle_state.json``."""
        keys: list[PublicKey] = []
        env = [p for p in os.environ.get(TRUSTED_KEYS_ENV, "").split(os.pathsep) if p.strip()]
        for p in [*paths, *env]:
            keys += _keys_from(Path(p).expanduser(), named=True)
        for folder in default_trust_folders():
            keys += _keys_from(folder, named=False)
        own = config_dir() / "export_key" / "ed25519.pub"
        own_keys = (load_public_key(own).raw,) if own.is_file() else ()
        return cls(keys, allow_unsigned, allow_rollback, config_dir() / "bundle_state.json", own_keys=own_keys)

    def find(self, raw: bytes) -> PublicKey | None:
        """The trusted key equal to ``raw`` (all 32 bytes), or None."""
        return next((k for k in self.keys if k.raw == raw), None)


@dataclass(frozen=True)
class Signature:
    """A parsed ``manifest.sig``."""

    public_key: PublicKey
    signature: bytes


def read_signature(data: bytes, source: str = SIGNATURE_NAME) -> Signature:
    """Parse a ``manifest.sig``'s bytes; SigningError naming ``source`` if it is not one."""
    try:
        if len(data) > MAX_KEY_FILE_BYTES:
            raise ValueError("too large")
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("algorithm") != "ed25519":
            raise ValueError("algorithm is not ed25519")
        raw = base64.b64decode(doc["public_key"], validate=True)
        signature = base64.b64decode(doc["signature"], validate=True)
        if len(raw) != 32 or len(signature) != 64:
            raise ValueError("key or signature of the wrong size")
        if doc.get("key_id") not in (None, key_id(raw)):
            raise ValueError("a key_id that does not match the key")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError) as exc:
        raise SigningError(f"{source}: not a valid signature file ({exc})") from None
    return Signature(PublicKey(raw, source), signature)


def verify_manifest_signature(sig: Signature, manifest_bytes: bytes, trust: Trust, source: str) -> bool:
    """Check the signature over the manifest's bytes; returns whether the key is trusted. Raises SigningError
    when the signature does not verify (whoever signed it)."""
    if not ed25519.verify(sig.public_key.raw, sig.signature, manifest_bytes):
        raise SigningError(f"{source}: the signature does not match manifest.json (edited or corrupted after signing)")
    return trust.find(sig.public_key.raw) is not None
