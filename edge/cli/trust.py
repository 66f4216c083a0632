"""``ecg-edge trust add | list | remove``: the public keys whose bundles this device loads (docs/deploy.md).

Keys are made and bundles signed on the export machine (``ecg-export keygen``, ``ecg-export --sign-key``);
the board is only given the ``.pub`` file. ``trust add KEY.pub`` checks the key and copies it into
``<config>/trusted_keys/<key id>.pub`` (``edge.bundle.signing.config_dir``), or into ``--folder`` (e.g.
``/etc/ecg-clip-ja/trusted_keys`` for every user of the board).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["add_trust_subcommand"]

PROG = "ecg-edge"


def add_trust_subcommand(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trust",
        help="the public keys whose signed bundles this device loads",
        description="Install, list or remove trusted public keys. A bundle loads only if its manifest is "
        "signed by a trusted key (or it is the shipped default bundle, pinned by its sha256); --allow-unsigned "
        "on run/classify loads others, marked unsigned. Keys are made with ecg-export keygen on the export "
        "machine; only KEY.pub comes to the device.",
        epilog="examples:\n  ecg-edge trust add ward3.pub\n  ecg-edge trust add ward3.pub --folder "
        "/etc/ecg-clip-ja/trusted_keys\n  ecg-edge trust list\n  ecg-edge trust remove 3f2a9c0d1e2b4a5c",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="trust_action", required=True)
    a = actions.add_parser("add", help="trust a public key (.pub from ecg-export keygen)")
    a.add_argument("key", type=Path, help="the public key file (KEY.pub)")
    a.add_argument("--folder", type=Path, help="install into this folder (default: <config>/trusted_keys)")
    a.set_defaults(func=cmd_trust_add)
    ls = actions.add_parser("list", help="list the trusted keys and where they come from")
    ls.add_argument(
        "--trust-key", action="append", default=[], metavar="PATH", help="also a key file or folder"
    )
    ls.set_defaults(func=cmd_trust_list)
    r = actions.add_parser("remove", help="stop trusting a key (by its key id, from trust list)")
    r.add_argument("key_id", help="the key id (16 hex digits) shown by trust list")
    r.add_argument("--folder", type=Path, help="remove from this folder (default: <config>/trusted_keys)")
    r.set_defaults(func=cmd_trust_remove)


def _fail(message: str) -> int:
    sys.stderr.write(f"{PROG}: error: {' '.join(message.split())}\n")
    return 1


def _folder(args: argparse.Namespace) -> Path:
    from edge.bundle.signing import config_dir

    return args.folder if args.folder is not None else config_dir() / "trusted_keys"


def cmd_trust_add(args: argparse.Namespace) -> int:
    from edge.bundle.signing import SigningError, load_public_key

    try:
        key = load_public_key(args.key)
    except SigningError as exc:
        return _fail(str(exc))
    folder = _folder(args)
    dest = folder / f"{key.key_id}.pub"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key.key_id}.pub.{os.getpid()}.tmp"
        tmp.write_text(key.line(), encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    except OSError as exc:
        return _fail(f"cannot write {dest} ({exc.strerror or exc})")
    print(f"trusted key {key.key_id} ({key.comment or 'no comment'}) installed as {dest}")
    return 0


def cmd_trust_list(args: argparse.Namespace) -> int:
    from edge.bundle.signing import SigningError, Trust

    try:
        trust = Trust.from_config(args.trust_key)
    except SigningError as exc:
        return _fail(str(exc))
    if not trust.keys:
        print("no trusted key: only the shipped default bundle loads (ecg-edge trust add KEY.pub)")
    for key in trust.keys:
        print(f"{key.key_id}  {key.comment or '-'}  {key.source}")
    return 0


def cmd_trust_remove(args: argparse.Namespace) -> int:
    from edge.bundle.signing import SigningError, load_public_key

    folder = _folder(args)
    removed = []
    try:
        for p in sorted(folder.glob("*.pub")) if folder.is_dir() else []:
            try:
                key = load_public_key(p)
            except SigningError:
                continue
            if key.key_id == args.key_id.lower():
                p.unlink()
                removed.append(p)
    except OSError as exc:
        return _fail(f"cannot remove from {folder} ({exc.strerror or exc})")
    if not removed:
        return _fail(f"no key {args.key_id} in {folder} (ecg-edge trust list)")
    print("removed " + ", ".join(map(str, removed)))
    return 0
