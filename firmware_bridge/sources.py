"""Signal sources for the device simulator: a WFDB record or the synthetic ECG generator, as device counts.

A source delivers int16 counts ``[n, n_channels]`` at ``fs`` in the channel order ``channel_leads``
(protocol lead codes, PROTOCOL.md "Lead codes"), the way an ADC front end would: physical millivolts are
converted with the device LSB, ``count = round(mV * 1e6 / lsb_nv)``, clipped to int16.

``RecordSource`` reads a WFDB record (``wfdb``, imported lazily) and picks its channels by lead name in any
case ("AVR", "aVR"); limb leads III, aVR, aVL, aVF missing from a record are derived from I and II
(DESIGN.md, Contract 1). It cannot change its rate. ``SyntheticSource`` wraps
``firmware_bridge.synthetic.SyntheticStream`` and can regenerate at any rate.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from firmware_bridge.leads import LEAD_NAMES, lead_code

__all__ = ["SignalSource", "RecordSource", "SyntheticSource", "mv_to_counts"]

log = logging.getLogger(__name__)

_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}


class SignalSource(Protocol):
    """What the simulator reads samples from."""

    fs: int
    channel_leads: tuple[int, ...]

    def read(self, n: int) -> np.ndarray:
        """Up to ``n`` samples as int16 ``[m, n_channels]``; ``m == 0`` at the end."""
        ...

    def set_fs(self, fs: int) -> bool:
        """Switch to ``fs`` Hz if possible (restarting the signal); False if not supported."""
        ...


def mv_to_counts(x_mv: np.ndarray, lsb_nv: int) -> np.ndarray:
    """Millivolts to int16 device counts at ``lsb_nv`` nanovolts per count (NaN -> 0, clipped)."""
    counts = np.rint(np.asarray(x_mv, dtype=np.float64) * (1e6 / lsb_nv))
    bad = ~np.isfinite(counts)
    if bad.any():
        log.warning("%d samples are NaN/inf; sending 0 for them", int(bad.sum()))
        counts[bad] = 0
    clipped = (counts < -32768) | (counts > 32767)
    if clipped.any():
        log.warning("%d samples exceed int16 at lsb_nv=%d and are clipped", int(clipped.sum()), lsb_nv)
    return np.clip(counts, -32768, 32767).astype(np.int16)


def _derive(leads_mv: dict[int, np.ndarray], code: int) -> np.ndarray | None:
    """Contract 1: III = II - I, aVR = -(I+II)/2, aVL = I - II/2, aVF = II - I/2."""
    if 0 not in leads_mv or 1 not in leads_mv or code not in (2, 3, 4, 5):
        return None
    i, ii = leads_mv[0], leads_mv[1]
    return {2: ii - i, 3: -(i + ii) / 2, 4: i - ii / 2, 5: ii - i / 2}[code]


def _read_wfdb(path: Path):  # noqa: ANN202 - an object with sig_name, units, p_signal [T, C], fs
    """A WFDB record through ``wfdb`` (lazy: only ``--record`` needs it) or, on a device-side install
    without it, through ``ecgdatakit`` (the ``edge`` extra), which gives the same values in mV."""
    try:
        import wfdb
    except ImportError:
        from types import SimpleNamespace

        try:
            from ecgdatakit import FileParser
        except ImportError:
            raise ImportError(
                "reading a WFDB record needs wfdb or ecgdatakit: pip install ecgdatakit"
            ) from None
        leads = FileParser.parse(path.with_suffix(".hea")).leads
        return SimpleNamespace(
            sig_name=[lead.label for lead in leads],
            units=["mV"] * len(leads),
            p_signal=np.stack([np.asarray(lead.samples, np.float64) for lead in leads], axis=1),
            fs=float(leads[0].sampling_rate),
        )
    return wfdb.rdrecord(str(path))


class RecordSource:
    """Samples of a WFDB record at the record's own rate; ``loop=True`` repeats it without end."""

    def __init__(self, path: str | Path, channel_leads: tuple[int, ...], lsb_nv: int, loop: bool = False):
        path = Path(path)
        if path.suffix in (".hea", ".dat", ".mat"):
            path = path.with_suffix("")
        if not path.with_suffix(".hea").is_file():
            raise FileNotFoundError(f"WFDB header not found: {path.with_suffix('.hea')}")
        record = _read_wfdb(path)
        by_code: dict[int, np.ndarray] = {}
        for idx, name in enumerate(record.sig_name):
            try:
                code = lead_code(name)
            except KeyError:
                log.debug("record channel %r is not a standard lead; skipped", name)
                continue
            unit = (record.units[idx] or "mV").strip().lower()
            scale = _UNIT_TO_MV.get(unit)
            if scale is None:
                raise ValueError(f"record channel {name!r} has unknown unit {record.units[idx]!r}")
            by_code.setdefault(code, record.p_signal[:, idx] * scale)
        columns = []
        for code in channel_leads:
            col = by_code.get(code)
            if col is None:
                col = _derive(by_code, code)
                if col is None:
                    raise ValueError(
                        f"record {path.name} has no lead {LEAD_NAMES[code]} (has {record.sig_name})"
                    )
                log.info("lead %s derived from I and II", LEAD_NAMES[code])
            columns.append(col)
        self.path = path
        self.fs = int(round(record.fs))
        if abs(record.fs - self.fs) > 1e-6:
            raise ValueError(f"record rate {record.fs} Hz is not an integer")
        self.channel_leads = tuple(channel_leads)
        self.lsb_nv = lsb_nv
        self.loop = loop
        self.counts = mv_to_counts(np.stack(columns, axis=1), lsb_nv)  # [T, n_channels]
        self._pos = 0

    def read(self, n: int) -> np.ndarray:
        total = self.counts.shape[0]
        if not self.loop:
            out = self.counts[self._pos : self._pos + n]
            self._pos += out.shape[0]
            return out
        idx = (self._pos + np.arange(n)) % total
        self._pos = (self._pos + n) % total
        return self.counts[idx]

    def set_fs(self, fs: int) -> bool:
        return fs == self.fs


class SyntheticSource:
    """Endless synthetic ECG (``firmware_bridge.synthetic``) of a given rhythm, regenerated on a rate change."""

    def __init__(self, rhythm: str, channel_leads: tuple[int, ...], lsb_nv: int, fs: int = 500,
                 seed: int | None = None, heart_rate_bpm: float | None = None) -> None:  # fmt: skip
        self.rhythm = rhythm
        self.channel_leads = tuple(channel_leads)
        self.lsb_nv = lsb_nv
        self.seed = seed
        self.heart_rate_bpm = heart_rate_bpm
        self.fs = fs
        self._make_stream()

    def _make_stream(self) -> None:
        from firmware_bridge.synthetic import SyntheticConfig, SyntheticStream

        kwargs = {"rhythm": self.rhythm, "fs": self.fs, "seed": self.seed}
        if self.heart_rate_bpm is not None:
            kwargs["heart_rate_bpm"] = self.heart_rate_bpm
        self._stream = SyntheticStream(SyntheticConfig(**kwargs))

    def read(self, n: int) -> np.ndarray:
        x_mv = np.asarray(self._stream.read(n))  # float32 [12, n] in protocol lead order
        return mv_to_counts(x_mv[list(self.channel_leads)].T, self.lsb_nv)

    def set_fs(self, fs: int) -> bool:
        if fs != self.fs:
            self.fs = fs
            self._make_stream()
        return True
