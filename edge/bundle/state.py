"""Rollback protection: the newest bundle each trusted key has had accepted on this device.

A bundle signed by a trusted key is refused when its manifest's ``created`` time is older than that of a
bundle this device already accepted from the same key (an attacker replaying an old, validly signed bundle
with a known fault), unless the operator allows it (``--allow-rollback``). The state is a small JSON file,
``<config>/bundle_state.json`` (``edge.bundle.signing.config_dir``), keyed by the full public key::

    {"version": 1, "keys": {"<base64 public key>": {"created": "<ISO time>", "manifest_sha256": "..."}}}

It is written atomically (a temporary file renamed over it). A state file that cannot be read or parsed is
an error (fail closed: delete it on purpose, or load with ``--allow-rollback``); one that cannot be written
(a read-only root) is logged once per load and the bundle loads.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from edge.bundle.schema import BundleError

__all__ = ["check_rollback", "parse_created"]

logger = logging.getLogger(__name__)

MAX_STATE_BYTES = 1 << 20


def parse_created(value: object, source: str) -> datetime:
    """The manifest's ``created`` as an aware datetime (naive times are read as UTC); BundleError otherwise."""
    if not isinstance(value, str):
        raise BundleError(
            f"{source}: manifest field created: missing; a signed bundle needs it (rollback check)"
        )
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BundleError(f"{source}: manifest field created: {value[:40]!r} is not an ISO time") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _read(path: Path) -> dict:
    try:
        if not path.exists():
            return {"version": 1, "keys": {}}
        if path.stat().st_size > MAX_STATE_BYTES:
            raise ValueError("larger than 1 MiB")
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict):
            raise ValueError("not a bundle state object")
        return doc
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(
            f"bundle state {path} cannot be read ({exc}); remove it on purpose or pass --allow-rollback"
        ) from None


def _write(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning(
            "bundle state %s not written (%s): rollbacks cannot be refused", path, exc.strerror or exc
        )
        tmp.unlink(missing_ok=True)


def check_rollback(
    path: Path | None, public_key: bytes, created: object, manifest_sha256: str, allow: bool, source: str
) -> None:
    """Refuse a bundle older than the newest one accepted from ``public_key``; record it when it is the newest."""
    if path is None:
        return
    when = parse_created(created, source)
    if allow and not path.exists():
        return
    doc = _read(path) if not allow else _read_or_empty(path)
    name = base64.b64encode(public_key).decode()
    entry = doc["keys"].get(name)
    newest = None
    if isinstance(entry, dict) and isinstance(entry.get("created"), str):
        try:
            newest = parse_created(entry["created"], str(path))
        except BundleError:
            newest = None
    if newest is not None and when < newest and entry.get("manifest_sha256") != manifest_sha256:
        if not allow:
            raise BundleError(
                f"{source}: created {when.isoformat()}, older than the bundle this device accepted from the same "
                f"key (created {newest.isoformat()}): refused as a rollback (--allow-rollback loads it)"
            )
        logger.warning(
            "%s: older than a bundle already accepted from the same key (rollback allowed)", source
        )
        return
    if newest is None or when > newest:
        doc.setdefault("version", 1)
        doc["keys"][name] = {"created": when.isoformat(), "manifest_sha256": manifest_sha256}
        _write(path, doc)


def _read_or_empty(path: Path) -> dict:
    try:
        return _read(path)
    except BundleError:
        return {"version": 1, "keys": {}}
