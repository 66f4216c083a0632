"""The one exception tree of the wire protocol (DESIGN.md, Contract 4; PROTOCOL.md, "Receiver rules").

``decode_frame`` raises exactly one of these for a frame it rejects; the stream decoder catches them,
counts them per class and never lets them out. The checks run in a fixed order, so a given bad frame
always lands in the same class, in Python and in the C reference implementation alike:

1. COBS decoding fails (zero byte inside, a code byte pointing past the end)  -> ``CobsError``
2. decoded frame shorter than header + crc (8 bytes), or ``payload_len`` does not match the
   decoded length                                                              -> ``LengthError``
3. CRC-16/CCITT-FALSE does not match                                           -> ``CrcError``
4. wrong version, unknown type, or a payload whose fields break the rules      -> ``FrameFormatError``

``ProtocolError`` derives from ``ValueError``, so building a frame with out-of-range fields raises a
``FrameFormatError`` that plain ``except ValueError`` also catches.
"""

from __future__ import annotations

__all__ = ["ProtocolError", "CobsError", "LengthError", "CrcError", "FrameFormatError", "ERROR_CLASSES"]


class ProtocolError(ValueError):
    """Base class: a frame (or frame fields) that does not follow wire protocol v1."""


class CobsError(ProtocolError):
    """The bytes between two delimiters are not valid COBS (Cheshire & Baker 1999)."""


class LengthError(ProtocolError):
    """The decoded frame is too short, or its ``payload_len`` disagrees with its actual length."""


class CrcError(ProtocolError):
    """The CRC-16/CCITT-FALSE over header and payload does not match the stored one."""


class FrameFormatError(ProtocolError):
    """Unsupported version, unknown frame type, or payload fields out of range or inconsistent."""


#: Error classes by name, as written in the golden vectors' ``error`` field.
ERROR_CLASSES: dict[str, type[ProtocolError]] = {
    cls.__name__: cls for cls in (ProtocolError, CobsError, LengthError, CrcError, FrameFormatError)
}
