"""Golden test vectors of wire protocol v1: ``golden.json`` (source of truth) and its generator.

See PROTOCOL.md, "Test vectors". ``load_golden()`` returns the parsed file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["GOLDEN_PATH", "load_golden"]

GOLDEN_PATH = Path(__file__).with_name("golden.json")


def load_golden(path: Path = GOLDEN_PATH) -> dict[str, Any]:
    """The golden vectors as a dict (keys: crc, cobs, frames, must_fail, stream)."""
    return json.loads(path.read_text(encoding="utf-8"))
