"""CRC-16/CCITT-FALSE, the frame check of wire protocol v1 (PROTOCOL.md, "CRC").

Parameters (Williams' "Rocksoft" model): width 16, poly 0x1021, init 0xFFFF, refin false, refout false,
xorout 0x0000; check value over ASCII ``123456789`` is 0x29B1. ``binascii.crc_hqx`` computes exactly
this when seeded with 0xFFFF, in C, so nothing is reimplemented here.
"""

from __future__ import annotations

import binascii

__all__ = ["CRC_INIT", "CRC_POLY", "CRC_CHECK", "crc16_ccitt_false"]

CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
#: CRC of b"123456789", the catalogue check value.
CRC_CHECK = 0x29B1


def crc16_ccitt_false(data: bytes | bytearray | memoryview, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data``; pass a previous result as ``crc`` to continue over more bytes."""
    return binascii.crc_hqx(data, crc)
