"""Keys and signatures on the export side (DESIGN.md contract 3): the device only verifies (``edge.bundle.signing``).

- ``ecg-export keygen --out KEY`` makes a hospital's key pair: ``KEY`` (PKCS#8 PEM, mode 0600) and ``KEY.pub``
  (one line, ``ecg-clip-ja-ed25519 <base64> <comment>``), refused inside a git work tree so that no private key
  is committed by accident.
- ``ecg-export`` signs every bundle: with ``--sign-key KEY``, or else with this machine's local key
  ``<config>/export_key/ed25519`` (``<config>``: see ``edge.bundle.signing.config_dir``), made on first use, whose
  public half is installed in ``<config>/trusted_keys`` so that this machine loads its own exports. Boards are
  given the ``.pub`` with ``ecg-edge trust add`` (docs/deploy.md).

Uses the ``cryptography`` package (an export dependency, never a device one).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from edge.bundle.schema import MANIFEST_NAME, SIGNATURE_NAME
from edge.bundle.signing import PublicKey, SigningError, config_dir, key_id

__all__ = [
    "SigningError",
    "generate_keypair",
    "load_private_key",
    "public_key_of",
    "sign_manifest",
    "local_key",
    "inside_git_work_tree",
]

MAX_KEY_FILE_BYTES = 16 * 1024


def _crypto():  # noqa: ANN202 - (ed25519, serialization) from cryptography
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SigningError(
            "signing needs the cryptography package: pip install 'ecg-clip-ja[export]'"
        ) from None
    return ed25519, serialization


def inside_git_work_tree(path: Path) -> Path | None:
    """The work tree ``path`` would sit in (a folder above it holds ``.git``), or None."""
    for parent in Path(os.path.abspath(path)).parents:
        if (parent / ".git").exists():
            return parent
    return None


def generate_keypair(
    private_path: str | Path, comment: str = "", allow_in_repo: bool = False
) -> tuple[Path, Path, str]:
    """Write a new key pair: ``private_path`` (PEM, mode 0600) and ``private_path.pub``; never overwrites."""
    ed25519, serialization = _crypto()
    private_path = Path(private_path).expanduser()
    public_path = private_path.with_name(private_path.name + ".pub")
    repo = inside_git_work_tree(private_path)
    if repo is not None and not allow_in_repo:
        raise SigningError(
            f"{private_path} is inside the git work tree {repo}: keep private keys outside repositories"
        )
    for p in (private_path, public_path):
        if p.exists() or p.is_symlink():
            raise SigningError(f"{p} already exists; choose another name (keys are never overwritten)")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        private_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        comment = " ".join(comment.split()) or private_path.stem
        public_path.write_text(PublicKey(raw, comment=comment).line(), encoding="utf-8")
    except OSError as exc:
        raise SigningError(f"{private_path}: cannot write the key ({exc.strerror or exc})") from None
    return private_path, public_path, key_id(raw)


def load_private_key(path: str | Path):  # noqa: ANN201 - Ed25519PrivateKey
    ed25519, serialization = _crypto()
    path = Path(path).expanduser()
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise SigningError(f"{path}: too large for a private key")
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read private key ({exc.strerror or exc})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{path}: not an unencrypted PEM private key ({str(exc)[:120]})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SigningError(f"{path}: not an Ed25519 private key (make one with ecg-export keygen)")
    return key


def public_key_of(private_key) -> PublicKey:  # noqa: ANN001 - Ed25519PrivateKey
    _, serialization = _crypto()
    return PublicKey(
        private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def sign_manifest(folder: str | Path, private_key_path: str | Path) -> str:
    """Sign ``folder/manifest.json`` with the key at ``private_key_path``; write ``manifest.sig``; return the key id."""
    folder = Path(folder)
    key = load_private_key(private_key_path)
    data = (folder / MANIFEST_NAME).read_bytes()
    public = public_key_of(key)
    doc = {
        "algorithm": "ed25519",
        "key_id": public.key_id,
        "public_key": base64.b64encode(public.raw).decode(),
        "signature": base64.b64encode(key.sign(data)).decode(),
    }
    (folder / SIGNATURE_NAME).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return public.key_id


def local_key() -> Path:
    """This machine's export key (made on first use, outside any repository), its public half trusted here."""
    folder = config_dir()
    private = folder / "export_key" / "ed25519"
    if not private.exists():
        import socket

        generate_keypair(private, f"ecg-export@{socket.gethostname()}", allow_in_repo=False)
    if private.stat().st_mode & 0o077:
        raise SigningError(f"{private}: readable by others (chmod 600 {private})")
    trusted = folder / "trusted_keys" / "local-export.pub"
    public = private.with_name(private.name + ".pub")
    if not trusted.exists():
        try:
            trusted.parent.mkdir(parents=True, exist_ok=True)
            trusted.write_bytes(public.read_bytes())
        except OSError as exc:
            raise SigningError(
                f"{trusted}: cannot install this machine's public key ({exc.strerror or exc})"
            ) from None
    return private
