"""A bundle folder's files, each read once (``edge.bundle.loader``; a zip's are read by ``edge.bundle.archive``).

A file is refused if it is a symbolic link or not a regular file, or larger than the size the manifest gives it;
its bytes are read once, checked by the loader, and those same bytes are what the runtime uses.
"""

from __future__ import annotations

import stat
from pathlib import Path

from edge.bundle.schema import BundleError

__all__ = ["FolderSource"]


class FolderSource:
    """The files of a bundle folder, each read once, refused if it is a symlink or not a regular file."""

    def __init__(self, folder: Path) -> None:
        self.path = folder

    def has(self, name: str) -> bool:
        p = self.path / name
        return p.exists() or p.is_symlink()

    def read(self, name: str, limit: int) -> bytes:
        path = self.path / name
        try:
            mode = path.lstat().st_mode
        except OSError:
            raise BundleError(f"{path}: missing") from None
        if stat.S_ISLNK(mode):
            raise BundleError(f"{path}: a symbolic link (refused)")
        if not stat.S_ISREG(mode):
            raise BundleError(f"{path}: not a regular file")
        try:
            with path.open("rb") as f:
                data = f.read(limit + 1)
        except OSError as exc:
            raise BundleError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        if len(data) > limit:
            raise BundleError(f"{path}: larger than {limit} bytes")
        return data

    def close(self) -> None:
        pass
