"""Zipped bundles, opened as if hostile (DESIGN.md, contract 3): checked before anything is extracted.

Every entry is checked from the zip's directory first: at most ``MAX_ZIP_ENTRIES`` entries, flat names a
bundle can hold (no folders, no absolute paths, no ``..``), no symlinks or other special files, no
duplicates, no entry larger than ``MAX_FILE_BYTES`` and at most ``MAX_BUNDLE_BYTES`` in all. Extraction
then copies each entry in 1 MiB chunks and stops at the size it declared, so a zip bomb costs neither
memory nor disk. Imported only for a zipped bundle (zipfile and its codecs cost about 1 MiB resident).
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path

from edge.bundle.manifest import FILE_NAME_RE, MAX_FILE_BYTES
from edge.bundle.schema import MANIFEST_NAME, SIGNATURE_NAME, BundleError

__all__ = ["MAX_ZIP_ENTRIES", "MAX_BUNDLE_BYTES", "extract_zip"]

MAX_ZIP_ENTRIES = 16
MAX_BUNDLE_BYTES = 512 * 2**20  # all files of a bundle, uncompressed


def _zip_members(path: Path, zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The entries of a zipped bundle, refused before anything is extracted if any looks hostile."""
    infos = zf.infolist()
    if not 1 <= len(infos) <= MAX_ZIP_ENTRIES:
        raise BundleError(f"{path}: {len(infos)} zip entries; a bundle has 1..{MAX_ZIP_ENTRIES}")
    seen: set[str] = set()
    total = 0
    members = []
    for info in infos:
        name = info.filename
        if info.is_dir():
            continue
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise BundleError(f"{path}: zip entry {name!r} is a symbolic link (refused)")
        if kind not in (0, stat.S_IFREG):
            raise BundleError(f"{path}: zip entry {name!r} is not a regular file")
        if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/") or ":" in name:
            raise BundleError(f"{path}: zip entry {name!r} has an absolute or parent path (refused)")
        if not FILE_NAME_RE.fullmatch(name) and name not in (MANIFEST_NAME, SIGNATURE_NAME):
            raise BundleError(f"{path}: zip entry {name!r} is not a flat bundle file name")
        if name in seen:
            raise BundleError(f"{path}: zip entry {name!r} appears twice")
        if info.file_size > MAX_FILE_BYTES:
            raise BundleError(
                f"{path}: zip entry {name!r} unpacks to {info.file_size} bytes (limit {MAX_FILE_BYTES})"
            )
        seen.add(name)
        total += info.file_size
        members.append(info)
    if total > MAX_BUNDLE_BYTES:
        raise BundleError(f"{path}: the zip unpacks to {total} bytes (limit {MAX_BUNDLE_BYTES})")
    return members


def extract_zip(path: Path, tmp: Path) -> None:
    """Unpack a checked zip into ``tmp``, never more bytes than each entry declared."""
    try:
        with zipfile.ZipFile(path) as zf:
            for info in _zip_members(path, zf):
                left = info.file_size
                with zf.open(info) as src, (tmp / info.filename).open("xb") as dst:
                    while chunk := src.read(min(1 << 20, left + 1)):
                        left -= len(chunk)
                        if left < 0:
                            raise BundleError(
                                f"{path}: zip entry {info.filename!r} is larger than it declares"
                            )
                        dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{path}: corrupt zip ({exc})") from None
