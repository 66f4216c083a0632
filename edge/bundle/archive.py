"""Zipped bundles, opened as if hostile (DESIGN.md, contract 3): checked before anything is read or written.

Every entry is checked from the zip's directory first: at most ``MAX_ZIP_ENTRIES`` entries, flat names a
bundle can hold (no folders, no absolute paths, no ``..``), no symlinks or other special files, no
duplicates, no entry larger than ``MAX_FILE_BYTES`` and at most ``MAX_BUNDLE_BYTES`` in all. Nothing is
extracted to disk before the manifest's signature is checked (``edge.bundle.loader`` reads the manifest and
its signature from the zip into memory first); every entry is then read in 1 MiB chunks that stop at the size
it declared, so a zip bomb costs neither memory nor disk. Imported only for a zipped bundle (zipfile and its
codecs cost about 1 MiB resident).
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path

from edge.bundle.manifest import FILE_NAME_RE, MAX_FILE_BYTES
from edge.bundle.schema import MANIFEST_NAME, SIGNATURE_NAME, BundleError

__all__ = ["MAX_ZIP_ENTRIES", "MAX_BUNDLE_BYTES", "ZipSource"]

MAX_ZIP_ENTRIES = 16
MAX_BUNDLE_BYTES = 512 * 2**20  # all files of a bundle, uncompressed


def _zip_members(path: Path, zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The entries of a zipped bundle by name, refused before anything is read if any looks hostile."""
    infos = zf.infolist()
    if not 1 <= len(infos) <= MAX_ZIP_ENTRIES:
        raise BundleError(f"{path}: {len(infos)} zip entries; a bundle has 1..{MAX_ZIP_ENTRIES}")
    total = 0
    members: dict[str, zipfile.ZipInfo] = {}
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
        if name in members:
            raise BundleError(f"{path}: zip entry {name!r} appears twice")
        if info.file_size > MAX_FILE_BYTES:
            raise BundleError(
                f"{path}: zip entry {name!r} unpacks to {info.file_size} bytes (limit {MAX_FILE_BYTES})"
            )
        total += info.file_size
        members[name] = info
    if total > MAX_BUNDLE_BYTES:
        raise BundleError(f"{path}: the zip unpacks to {total} bytes (limit {MAX_BUNDLE_BYTES})")
    return members


class ZipSource:
    """The files of a checked zip, read into memory on request, never more than each entry declared."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise BundleError(f"{path}: corrupt zip ({exc})") from None
        try:
            self.members = _zip_members(path, self.zf)
        except BaseException:
            self.zf.close()
            raise

    def has(self, name: str) -> bool:
        return name in self.members

    def read(self, name: str, limit: int) -> bytes:
        """The bytes of entry ``name``; BundleError if absent, corrupt, or larger than ``limit``."""
        info = self.members.get(name)
        if info is None:
            raise BundleError(f"{self.path}: {name}: missing from the zip")
        if info.file_size > limit:
            raise BundleError(f"{self.path}: {name}: {info.file_size} bytes in the zip, at most {limit} expected")
        chunks, left = [], info.file_size
        try:
            with self.zf.open(info) as src:
                while chunk := src.read(min(1 << 20, left + 1)):
                    left -= len(chunk)
                    if left < 0:
                        raise BundleError(f"{self.path}: zip entry {name!r} is larger than it declares")
                    chunks.append(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
            raise BundleError(f"{self.path}: corrupt zip ({exc})") from None
        return b"".join(chunks)

    def close(self) -> None:
        self.zf.close()
