"""Frames of wire protocol v1: typed dataclasses, payload packing and the frame codec.

Spec: DESIGN.md "Contract 4: wire protocol v1", written out for firmware authors in PROTOCOL.md. A frame on
the wire is ``COBS(header | payload | crc) 0x00``: COBS is Consistent Overhead Byte Stuffing (S. Cheshire
and M. Baker, "Consistent Overhead Byte Stuffing", IEEE/ACM Trans. Networking 7(2), 1999), here the
``cobs`` package; the header is ``version u8 | type u8 | seq u16 | payload_len u16``; the crc is
CRC-16/CCITT-FALSE over header and payload; every integer is little-endian.

Layers: ``cobs_encode``/``cobs_decode`` (bytes), ``pack_frame``/``unpack_frame`` (decoded frame <-> typed
frame, all checks), ``encode_frame``/``decode_frame`` (wire bytes). A rejected frame raises one class of
``firmware_bridge.errors`` in the fixed order documented there.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

import numpy as np
from cobs import cobs

from firmware_bridge.crc import crc16_ccitt_false
from firmware_bridge.errors import CobsError, CrcError, FrameFormatError, LengthError

__all__ = [
    "PROTOCOL_VERSION", "HEADER_SIZE", "CRC_SIZE", "MIN_FRAME_SIZE", "MAX_CHANNELS",
    "MAX_DECODED_FRAME_SIZE", "MAX_ENCODED_FRAME_SIZE", "FrameType", "EventCode",
    "Hello", "Samples", "Event", "Start", "Stop", "HelloRequest", "Frame", "DecodedFrame", "FRAME_CLASSES",
    "cobs_encode", "cobs_decode", "cobs_max_encoded_size", "build_raw_frame", "pack_frame", "unpack_frame",
    "encode_frame", "decode_frame", "frame_from_fields", "HOST_FS_RANGE", "HOST_MAX_CHANNELS",
    "host_limit_violation",
]  # fmt: skip

PROTOCOL_VERSION = 1
_HEADER = struct.Struct("<BBHH")
HEADER_SIZE = _HEADER.size  # 6
CRC_SIZE = 2
MIN_FRAME_SIZE = HEADER_SIZE + CRC_SIZE
MAX_CHANNELS = 12
MAX_DECODED_FRAME_SIZE = HEADER_SIZE + 0xFFFF + CRC_SIZE
# Limits a host enforces (DESIGN.md, contract 4): a HELLO outside them is refused with a clear error, so a
# hostile or broken device cannot make the host allocate or compute in proportion to what it claims.
HOST_FS_RANGE = (50, 2000)  # Hz
HOST_MAX_CHANNELS = 16


def cobs_max_encoded_size(n: int) -> int:
    """Upper bound of the COBS encoding of ``n`` bytes (without the 0x00 delimiter)."""
    return n + n // 254 + 1


MAX_ENCODED_FRAME_SIZE = cobs_max_encoded_size(MAX_DECODED_FRAME_SIZE)


class FrameType(IntEnum):
    """The ``type`` byte of the header."""

    HELLO = 0x01
    SAMPLES = 0x02
    EVENT = 0x03
    START = 0x10
    STOP = 0x11
    HELLO_REQUEST = 0x12


class EventCode(IntEnum):
    """``code`` of an EVENT frame; receivers pass other codes through unchanged."""

    LEAD_OFF = 1
    BUTTON = 2
    BATTERY_LOW = 3
    DEVICE_ERROR = 4


def _check_int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise FrameFormatError(f"{name} must be an integer, got {type(value).__name__}")
    if not lo <= int(value) <= hi:
        raise FrameFormatError(f"{name}={value} out of range {lo}..{hi}")
    return int(value)


def _check_payload_size(name: str, size: int) -> None:
    if size > 0xFFFF:
        raise FrameFormatError(f"{name} makes the payload {size} bytes, more than 65535")


def _check_leads(leads: tuple[int, ...]) -> None:
    if not 1 <= len(leads) <= MAX_CHANNELS:
        raise FrameFormatError(f"n_channels={len(leads)} out of range 1..{MAX_CHANNELS}")
    for code in leads:
        _check_int("channel lead code", code, 0, 11)
    if len(set(leads)) != len(leads):
        raise FrameFormatError(f"channel_leads {list(leads)} are not distinct")


@dataclass(frozen=True)
class Hello:
    """HELLO (device -> host): the stream format. ``n_channels`` is ``len(channel_leads)``."""

    fs_hz: int  # sampling rate, 1..65535 Hz
    channel_leads: tuple[int, ...]  # lead code of each channel in sample order, distinct, 0..11
    lsb_nv: int  # nanovolts per count, 1..2**32-1 (1000 = 1 µV)
    fw_major: int = 0  # firmware version, u8
    fw_minor: int = 0  # u8
    device_id: str = ""  # free UTF-8 text, may be empty
    TYPE: ClassVar[FrameType] = FrameType.HELLO
    _FIXED: ClassVar[struct.Struct] = struct.Struct("<HBI")

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_leads", tuple(int(c) for c in self.channel_leads))
        _check_int("fs_hz", self.fs_hz, 1, 0xFFFF)
        _check_int("lsb_nv", self.lsb_nv, 1, 0xFFFFFFFF)
        _check_int("fw_major", self.fw_major, 0, 0xFF)
        _check_int("fw_minor", self.fw_minor, 0, 0xFF)
        _check_leads(self.channel_leads)
        if not isinstance(self.device_id, str):
            raise FrameFormatError("device_id must be a str")
        try:
            size = len(self.device_id.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise FrameFormatError(f"device_id is not encodable as UTF-8: {exc}") from None
        _check_payload_size("device_id", 9 + self.n_channels + size)

    @property
    def n_channels(self) -> int:
        return len(self.channel_leads)

    def pack_payload(self) -> bytes:
        return (
            self._FIXED.pack(self.fs_hz, self.n_channels, self.lsb_nv)
            + bytes(self.channel_leads)
            + bytes((self.fw_major, self.fw_minor))
            + self.device_id.encode("utf-8")
        )

    @classmethod
    def unpack_payload(cls, payload: bytes) -> Hello:
        if len(payload) < cls._FIXED.size:
            raise FrameFormatError(f"HELLO payload of {len(payload)} bytes is shorter than 7")
        fs_hz, n_channels, lsb_nv = cls._FIXED.unpack_from(payload)
        if not 1 <= n_channels <= MAX_CHANNELS:
            raise FrameFormatError(f"n_channels={n_channels} out of range 1..{MAX_CHANNELS}")
        end = cls._FIXED.size + n_channels
        if len(payload) < end + 2:
            raise FrameFormatError(
                f"HELLO payload of {len(payload)} bytes too short for {n_channels} channels"
            )
        try:
            device_id = payload[end + 2 :].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FrameFormatError(f"device_id is not valid UTF-8: {exc}") from None
        return cls(
            fs_hz, tuple(payload[cls._FIXED.size : end]), lsb_nv, payload[end], payload[end + 1], device_id
        )

    def to_fields(self) -> dict[str, Any]:
        return {
            "fs_hz": self.fs_hz, "n_channels": self.n_channels, "lsb_nv": self.lsb_nv,
            "channel_leads": list(self.channel_leads), "fw_major": self.fw_major, "fw_minor": self.fw_minor,
            "device_id": self.device_id,
        }  # fmt: skip

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Hello:
        if "n_channels" in f and f["n_channels"] != len(f["channel_leads"]):
            raise FrameFormatError("n_channels does not match channel_leads")
        return cls(f["fs_hz"], tuple(f["channel_leads"]), f["lsb_nv"], f.get("fw_major", 0),
                   f.get("fw_minor", 0), f.get("device_id", ""))  # fmt: skip


@dataclass(frozen=True, eq=False)
class Samples:
    """SAMPLES (device -> host): ``n_samples`` consecutive samples of every channel.

    ``samples`` is an int16 array ``[n_samples, n_channels]`` in channel order of the last HELLO (a nested
    list is converted); it is stored read-only. ``first_sample`` is the index of ``samples[0]`` since the
    stream started; ``lead_off`` bit i set means channel i's electrode is off.
    """

    first_sample: int  # u32 sample index of samples[0]
    samples: np.ndarray  # int16 [n_samples (0..255), n_channels (1..12)]
    lead_off: int = 0  # u16 bit mask, only bits < n_channels may be set
    TYPE: ClassVar[FrameType] = FrameType.SAMPLES
    _FIXED: ClassVar[struct.Struct] = struct.Struct("<IBBH")

    def __post_init__(self) -> None:
        _check_int("first_sample", self.first_sample, 0, 0xFFFFFFFF)
        arr = np.asarray(self.samples)
        if arr.ndim != 2:
            raise FrameFormatError(f"samples must be 2-D [n_samples, n_channels], got shape {arr.shape}")
        if arr.dtype != np.int16:
            if arr.size and arr.dtype.kind not in "iu":
                raise FrameFormatError(f"samples must be integers, got dtype {arr.dtype}")
            if arr.size and (arr.min() < -32768 or arr.max() > 32767):
                raise FrameFormatError("samples out of int16 range")
        arr = np.array(arr, dtype=np.int16, order="C")
        arr.setflags(write=False)
        object.__setattr__(self, "samples", arr)
        _check_int("n_samples", arr.shape[0], 0, 255)
        _check_int("n_channels", arr.shape[1], 1, MAX_CHANNELS)
        _check_int("lead_off", self.lead_off, 0, (1 << arr.shape[1]) - 1)

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.samples.shape[1])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Samples):
            return NotImplemented
        return (self.first_sample, self.lead_off) == (other.first_sample, other.lead_off) and (
            self.samples.shape == other.samples.shape and bool(np.array_equal(self.samples, other.samples))
        )

    def __hash__(self) -> int:
        return hash((self.first_sample, self.lead_off, self.samples.shape, self.samples.tobytes()))

    def pack_payload(self) -> bytes:
        head = self._FIXED.pack(self.first_sample, self.n_channels, self.n_samples, self.lead_off)
        return head + self.samples.astype("<i2", copy=False).tobytes()

    @classmethod
    def unpack_payload(cls, payload: bytes) -> Samples:
        if len(payload) < cls._FIXED.size:
            raise FrameFormatError(f"SAMPLES payload of {len(payload)} bytes is shorter than 8")
        first, n_channels, n_samples, lead_off = cls._FIXED.unpack_from(payload)
        if not 1 <= n_channels <= MAX_CHANNELS:
            raise FrameFormatError(f"n_channels={n_channels} out of range 1..{MAX_CHANNELS}")
        expected = cls._FIXED.size + 2 * n_samples * n_channels
        if len(payload) != expected:
            raise FrameFormatError(
                f"SAMPLES payload is {len(payload)} bytes, {n_samples}x{n_channels} samples need {expected}"
            )
        data = np.frombuffer(payload, dtype="<i2", offset=cls._FIXED.size).reshape(n_samples, n_channels)
        return cls(first, data, lead_off)

    def to_fields(self) -> dict[str, Any]:
        return {"first_sample": self.first_sample, "n_channels": self.n_channels, "n_samples": self.n_samples,
                "lead_off": self.lead_off, "samples": self.samples.tolist()}  # fmt: skip

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Samples:
        arr = np.asarray(f["samples"], dtype=np.int64)
        if "n_channels" in f:
            arr = arr.reshape(f.get("n_samples", -1), f["n_channels"])
        return cls(f["first_sample"], arr, f.get("lead_off", 0))


@dataclass(frozen=True)
class Event:
    """EVENT (device -> host): something happened at sample index ``sample``.

    Detail by code (PROTOCOL.md): LEAD_OFF carries the new lead_off mask as u16; DEVICE_ERROR a UTF-8
    message; others are empty unless a vendor documents more.
    """

    code: int  # u8, see EventCode
    sample: int  # u32 sample index the event refers to
    detail: bytes = b""  # rest of the payload
    TYPE: ClassVar[FrameType] = FrameType.EVENT
    _FIXED: ClassVar[struct.Struct] = struct.Struct("<BI")

    def __post_init__(self) -> None:
        _check_int("code", self.code, 0, 0xFF)
        _check_int("sample", self.sample, 0, 0xFFFFFFFF)
        object.__setattr__(self, "detail", bytes(self.detail))
        _check_payload_size("detail", self._FIXED.size + len(self.detail))

    def pack_payload(self) -> bytes:
        return self._FIXED.pack(self.code, self.sample) + self.detail

    @classmethod
    def unpack_payload(cls, payload: bytes) -> Event:
        if len(payload) < cls._FIXED.size:
            raise FrameFormatError(f"EVENT payload of {len(payload)} bytes is shorter than 5")
        code, sample = cls._FIXED.unpack_from(payload)
        return cls(code, sample, payload[cls._FIXED.size :])

    def to_fields(self) -> dict[str, Any]:
        return {"code": self.code, "sample": self.sample, "detail_hex": self.detail.hex()}

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Event:
        return cls(f["code"], f["sample"], bytes.fromhex(f.get("detail_hex", "")))


@dataclass(frozen=True)
class Start:
    """START (host -> device): start (or resume) streaming, optionally at ``fs_hz``."""

    fs_hz: int | None = None  # None: keep the current rate; else 1..65535
    TYPE: ClassVar[FrameType] = FrameType.START

    def __post_init__(self) -> None:
        if self.fs_hz is not None:
            _check_int("fs_hz", self.fs_hz, 1, 0xFFFF)

    def pack_payload(self) -> bytes:
        return b"" if self.fs_hz is None else struct.pack("<H", self.fs_hz)

    @classmethod
    def unpack_payload(cls, payload: bytes) -> Start:
        if len(payload) not in (0, 2):
            raise FrameFormatError(f"START payload must be 0 or 2 bytes, got {len(payload)}")
        return cls(struct.unpack("<H", payload)[0] if payload else None)

    def to_fields(self) -> dict[str, Any]:
        return {"fs_hz": self.fs_hz}

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Start:
        return cls(f.get("fs_hz"))


class _Empty:
    """Frames without payload."""

    TYPE: ClassVar[FrameType]

    def pack_payload(self) -> bytes:
        return b""

    @classmethod
    def unpack_payload(cls, payload: bytes) -> Any:
        if payload:
            raise FrameFormatError(f"{cls.TYPE.name} payload must be empty, got {len(payload)} bytes")
        return cls()

    def to_fields(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Any:
        return cls()


@dataclass(frozen=True)
class Stop(_Empty):
    """STOP (host -> device): pause SAMPLES; the sample counter pauses too."""

    TYPE: ClassVar[FrameType] = FrameType.STOP


@dataclass(frozen=True)
class HelloRequest(_Empty):
    """HELLO_REQUEST (host -> device): send a HELLO now."""

    TYPE: ClassVar[FrameType] = FrameType.HELLO_REQUEST


Frame = Hello | Samples | Event | Start | Stop | HelloRequest
FRAME_CLASSES: dict[int, type] = {cls.TYPE: cls for cls in (Hello, Samples, Event, Start, Stop, HelloRequest)}


@dataclass(frozen=True)
class DecodedFrame:
    """A frame that passed every check, with the ``seq`` it carried."""

    seq: int
    frame: Frame

    @property
    def type(self) -> FrameType:
        return self.frame.TYPE

    def to_json_dict(self) -> dict[str, Any]:
        """``{"type": name, "seq": n, **fields}``, JSON-ready (samples as nested lists)."""
        return {"type": self.type.name, "seq": self.seq, **self.frame.to_fields()}


def host_limit_violation(hello: Hello) -> str | None:
    """Why a host refuses this HELLO's stream format (contract 4 limits), or None when it is acceptable."""
    lo, hi = HOST_FS_RANGE
    if not lo <= hello.fs_hz <= hi:
        return f"fs_hz={hello.fs_hz} is outside the host's limits {lo}..{hi} Hz"
    if not 1 <= hello.n_channels <= HOST_MAX_CHANNELS:
        return f"n_channels={hello.n_channels} is outside the host's limits 1..{HOST_MAX_CHANNELS}"
    return None


def frame_from_fields(type_name: str, fields: dict[str, Any]) -> Frame:
    """Build a frame from its type name (``"SAMPLES"``) and ``to_fields()`` dict, as in the vectors."""
    try:
        cls = FRAME_CLASSES[FrameType[type_name]]
    except KeyError:
        raise FrameFormatError(f"unknown frame type name {type_name!r}") from None
    return cls.from_fields(fields)


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (no delimiter added)."""
    return cobs.encode(bytes(data))


def cobs_decode(data: bytes) -> bytes:
    """COBS-decode one frame's bytes without the delimiter; ``CobsError`` if they are not valid COBS."""
    try:
        return cobs.decode(bytes(data))
    except cobs.DecodeError as exc:
        raise CobsError(f"bad COBS: {exc}") from None


def build_raw_frame(type_code: int, seq: int, payload: bytes, *, version: int = PROTOCOL_VERSION,
                    payload_len: int | None = None) -> bytes:  # fmt: skip
    """Decoded frame bytes (header | payload | crc) with a correct CRC, without any payload checks.

    ``version`` and ``payload_len`` may be set to wrong values to build must-fail test frames.
    """
    _check_int("seq", seq, 0, 0xFFFF)
    body = (
        _HEADER.pack(version, type_code, seq, len(payload) if payload_len is None else payload_len) + payload
    )
    return body + struct.pack("<H", crc16_ccitt_false(body))


def pack_frame(frame: Frame, seq: int) -> bytes:
    """Decoded frame bytes of ``frame`` with sequence number ``seq`` (before COBS)."""
    payload = frame.pack_payload()
    _check_payload_size(frame.TYPE.name, len(payload))
    return build_raw_frame(frame.TYPE, seq, payload)


def unpack_frame(data: bytes) -> DecodedFrame:
    """Check and parse decoded frame bytes (after COBS): length, CRC, version, type, payload."""
    data = bytes(data)
    if len(data) < MIN_FRAME_SIZE:
        raise LengthError(f"frame of {len(data)} bytes is shorter than {MIN_FRAME_SIZE}")
    version, type_code, seq, payload_len = _HEADER.unpack_from(data)
    if HEADER_SIZE + payload_len + CRC_SIZE != len(data):
        raise LengthError(
            f"payload_len={payload_len} but the frame carries {len(data) - MIN_FRAME_SIZE} bytes"
        )
    (stored,) = struct.unpack_from("<H", data, len(data) - CRC_SIZE)
    computed = crc16_ccitt_false(data[:-CRC_SIZE])
    if stored != computed:
        raise CrcError(f"crc 0x{stored:04X} != computed 0x{computed:04X}")
    if version != PROTOCOL_VERSION:
        raise FrameFormatError(f"unsupported protocol version {version}")
    cls = FRAME_CLASSES.get(type_code)
    if cls is None:
        raise FrameFormatError(f"unknown frame type 0x{type_code:02X}")
    return DecodedFrame(seq, cls.unpack_payload(data[HEADER_SIZE:-CRC_SIZE]))


def encode_frame(frame: Frame, seq: int) -> bytes:
    """Wire bytes of one frame: COBS(header | payload | crc) followed by the 0x00 delimiter."""
    return cobs_encode(pack_frame(frame, seq)) + b"\x00"


def decode_frame(raw: bytes) -> DecodedFrame:
    """Decode the wire bytes of one frame, without its 0x00 delimiter; raises a ``ProtocolError``."""
    return unpack_frame(cobs_decode(raw))
