"""A Japanese font for matplotlib plots (the 12-lead report, training curves, per-label charts).

The font comes from a package, never from whatever the machine happens to have: first the PyPI package
``matplotlib-fontja`` (it ships IPAexGothic; in the ``report`` and ``train`` extras), then Debian's
``fonts-noto-cjk`` (Noto Sans CJK JP) or other system IPA fonts. Without any of them plots would draw
Japanese as empty boxes or fall back to label ids, so :func:`use_japanese_font` raises :class:`FontError`
with the command that installs one instead. Only matplotlib is imported, and only when called.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["FontError", "japanese_font_file", "use_japanese_font"]

_SYSTEM_FONTS = ("Noto Sans CJK JP", "IPAexGothic", "IPAGothic", "Noto Sans JP")
INSTALL_HINT = "pip install 'ecg-clip-ja[report]' (matplotlib-fontja), or apt-get install fonts-noto-cjk"


class FontError(RuntimeError):
    """No Japanese font is installed for matplotlib."""


def japanese_font_file() -> Path | None:
    """The IPAexGothic file of ``matplotlib-fontja``, found without importing it (its import changes rcParams)."""
    spec = importlib.util.find_spec("matplotlib_fontja")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "fonts" / "ipaexg.ttf"
        if path.is_file():
            return path
    return None


def use_japanese_font() -> str:
    """Make matplotlib draw Japanese: register the packaged font and return its family name.

    Sets ``font.family`` to it (DejaVu Sans behind it for symbols) and ``axes.unicode_minus`` off.
    """
    from matplotlib import font_manager, rcParams

    family = None
    path = japanese_font_file()
    if path is not None:
        font_manager.fontManager.addfont(str(path))
        family = font_manager.FontProperties(fname=str(path)).get_name()
    else:
        installed = {f.name for f in font_manager.fontManager.ttflist}
        family = next((name for name in _SYSTEM_FONTS if name in installed), None)
    if family is None:
        raise FontError(f"no Japanese font for plots; install one: {INSTALL_HINT}")
    rcParams["font.family"] = [family, "DejaVu Sans"]
    rcParams["axes.unicode_minus"] = False
    return family
