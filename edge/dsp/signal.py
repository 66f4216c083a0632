"""The signal contract: one function turns any raw ECG window into the model input.

Training, export calibration, file classification and the live serial stream all call
:func:`preprocess`, so the device sees exactly what the model was trained on (DESIGN.md, contract 1).

Steps, in order, each a pure ``(x, fs) -> (x, fs)`` function on lead-first float32 arrays in millivolts:

1. :func:`to_twelve_leads` - put channels in the order ``I, II, III, aVR, aVL, aVF, V1..V6`` by name
   (any case, ``AVR``/``avr``/``aVR``), deriving missing limb leads from any two of I, II, III by
   Einthoven's law and the Goldberger definitions (8-channel devices send I, II, V1-V6).
2-3. :func:`filter_resample` - zero-phase Butterworth band-pass and resampling to ``config.fs`` in one
   pass in the frequency domain (numpy.fft; checked against ``scipy.signal`` in the tests, which the
   device cannot afford to import).
4. :func:`fit_length` - exactly ``config.n_samples`` samples (crop, or edge-pad by at most 2 %).
5. :func:`normalize` - per-lead z-score by default, which makes the model indifferent to the gain
   of the recording device, then clipping to ``+-config.clip``.

The parameters live in :class:`SignalConfig`, which is stored in every checkpoint and bundle manifest
and read back from there; they are never re-declared elsewhere.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "LEADS",
    "LIMB_LEADS",
    "EIGHT_CHANNEL_LEADS",
    "NORMALIZATIONS",
    "SignalConfig",
    "SignalError",
    "canonical_lead_name",
    "default_lead_names",
    "select_leads",
    "to_twelve_leads",
    "resample",
    "bandpass",
    "filter_resample",
    "filter_resample_bands",
    "release_spectra",
    "butter_zero_phase_gain",
    "fit_length",
    "normalize",
    "preprocess",
    "iter_windows",
]

logger = logging.getLogger(__name__)

LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_LEADS: tuple[str, ...] = LEADS[:6]
EIGHT_CHANNEL_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
NORMALIZATIONS = ("lead_zscore", "window_zscore", "none")

# Spellings seen in WFDB headers and device exports, upper-cased, mapped to the canonical name.
_ALIASES = {name.upper(): name for name in LEADS}
_ALIASES.update({"DI": "I", "DII": "II", "DIII": "III", "LI": "I", "LII": "II", "LIII": "III", "MLII": "II"})
_ALIASES.update({f"C{i}": f"V{i}" for i in range(1, 7)})


class SignalError(ValueError):
    """A raw ECG that cannot be turned into model input (wrong shape, missing leads, NaN, too short)."""


@dataclass(frozen=True)
class SignalConfig:
    """Parameters of the model input; stored in checkpoints and bundle manifests."""

    fs: float = 100.0  # model input sampling rate, Hz
    window_s: float = 10.0  # window length, seconds (fs * window_s samples per lead)
    band_hz: tuple[float, float] = (0.5, 40.0)  # zero-phase band-pass edges, Hz (baseline wander, EMG)
    filter_order: int = 2  # Butterworth order of each pass (sosfiltfilt doubles it)
    normalization: str = "lead_zscore"  # one of NORMALIZATIONS; z-scores make gains irrelevant
    clip: float = 20.0  # clip normalised values to +-clip (bounds int8 calibration ranges)
    eps: float = 0.001  # added to the std (mV for the z-scores, 1 uV) so a flat lead stays near 0

    def __post_init__(self) -> None:
        lo, hi = self.band_hz
        if not (0 < lo < hi < self.fs / 2):
            raise SignalError(f"band {self.band_hz} Hz must satisfy 0 < low < high < fs/2 = {self.fs / 2}")
        if self.normalization not in NORMALIZATIONS:
            raise SignalError(f"normalization {self.normalization!r} not in {NORMALIZATIONS}")
        if self.window_s <= 0 or self.fs <= 0:
            raise SignalError("fs and window_s must be positive")

    @property
    def n_samples(self) -> int:
        """Samples per lead in one model input window."""
        return int(round(self.fs * self.window_s))

    @property
    def input_shape(self) -> tuple[int, int]:
        return (len(LEADS), self.n_samples)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["band_hz"] = list(self.band_hz)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SignalConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "band_hz" in known:
            known["band_hz"] = tuple(float(v) for v in known["band_hz"])
        return cls(**known)


def canonical_lead_name(name: str) -> str:
    """``'avr'``, ``'AVR'``, ``'aVR'`` -> ``'aVR'``; raises :class:`SignalError` for unknown names."""
    key = name.strip().upper().replace(" ", "").replace("-", "")
    if key not in _ALIASES:
        raise SignalError(f"unknown lead name {name!r}")
    return _ALIASES[key]


def default_lead_names(n_channels: int) -> list[str]:
    """Channel names assumed without a header: 12 -> LEADS, 8 -> I, II, V1..V6, else ch0, ch1, ..."""
    if n_channels == 12:
        return list(LEADS)
    if n_channels == 8:
        return list(EIGHT_CHANNEL_LEADS)
    return [f"ch{i}" for i in range(n_channels)]


def select_leads(x_mv: np.ndarray, leads: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Keep only channels named as ECG leads (first of duplicates), with canonical names.

    Records carry extra channels (pacing marks, Frank XYZ, respiration) that the model ignores; the
    quality check must ignore them too, or a flat marker channel would fail every window.
    """
    keep, names = [], []
    for i, name in enumerate(leads):
        try:
            canon = canonical_lead_name(name)
        except SignalError:
            continue
        if canon not in names:
            keep.append(i)
            names.append(canon)
    if len(keep) == len(leads):
        return x_mv, names
    return x_mv[keep], names


def to_twelve_leads(x: np.ndarray, leads: Sequence[str] | None = None) -> np.ndarray:
    """Reorder channels to :data:`LEADS` and derive missing limb leads; returns float32 [12, T] mV.

    ``x`` is lead-first ``[C, T]``. Without ``leads``, 12 channels are taken to be in :data:`LEADS`
    order and 8 channels in :data:`EIGHT_CHANNEL_LEADS` order. Unknown extra channels (Frank XYZ,
    pacing marks) are ignored when ``leads`` names them; all six chest leads are required.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise SignalError(f"expected a lead-first 2-D array [leads, samples], got shape {x.shape}")
    if leads is None:
        if x.shape[0] == 12:
            leads = LEADS
        elif x.shape[0] == 8:
            leads = EIGHT_CHANNEL_LEADS
        else:
            raise SignalError(f"{x.shape[0]} channels without lead names; expected 12 or 8 (I, II, V1-V6)")
    if len(leads) != x.shape[0]:
        raise SignalError(f"{len(leads)} lead names for {x.shape[0]} channels")
    have: dict[str, np.ndarray] = {}
    for name, row in zip(leads, x, strict=True):
        try:
            canon = canonical_lead_name(name)
        except SignalError:
            logger.debug("ignoring channel %r", name)
            continue
        have.setdefault(canon, row)
    missing_chest = [v for v in LEADS[6:] if v not in have]
    if missing_chest:
        raise SignalError(f"missing chest leads {missing_chest}; have {sorted(have)}")
    # Any two of I, II, III give the third (Einthoven: II = I + III).
    if "I" not in have and {"II", "III"} <= have.keys():
        have["I"] = have["II"] - have["III"]
    if "II" not in have and {"I", "III"} <= have.keys():
        have["II"] = have["I"] + have["III"]
    if not {"I", "II"} <= have.keys():
        raise SignalError(f"need two of the limb leads I, II, III to derive the others; have {sorted(have)}")
    lead_i, lead_ii = have["I"], have["II"]
    derived = {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2,
        "aVF": lead_ii - lead_i / 2,
    }
    out = np.empty((12, x.shape[1]), dtype=np.float32)
    for i, name in enumerate(LEADS):
        out[i] = have[name] if name in have else derived[name]
    return out


def _odd_extend(x: np.ndarray, n: int) -> np.ndarray:
    """Odd (point-reflected) extension by ``n`` samples at both ends, as ``scipy.signal.filtfilt`` pads.

    Written into one float64 array (no intermediate copies: this runs on every window)."""
    if n <= 0:
        return np.asarray(x, dtype=np.float64)
    t = x.shape[-1]
    out = np.empty(x.shape[:-1] + (t + 2 * n,), dtype=np.float64)
    mid = out[..., n : n + t]
    mid[...] = x
    left, right = out[..., :n], out[..., n + t :]
    np.subtract(2 * mid[..., :1], mid[..., n:0:-1], out=left)
    np.subtract(2 * mid[..., -1:], mid[..., -2 : -n - 2 : -1], out=right)
    return out


@functools.lru_cache(maxsize=32)
def _gain(n: int, fs: float, band_hz: tuple[float, float] | None, order: int, fs_design: float) -> np.ndarray:
    """:func:`butter_zero_phase_gain` on the ``rfft`` bins of ``n`` samples at ``fs`` (cached: the same few
    window lengths and rates come back every window; read-only)."""
    gain = butter_zero_phase_gain(np.fft.rfftfreq(n, 1.0 / fs), band_hz, order, fs_design)
    gain.setflags(write=False)
    return gain


def butter_zero_phase_gain(
    freqs: np.ndarray, band_hz: tuple[float, float] | None, order: int, fs_design: float
) -> np.ndarray:
    """Gain of the forward-backward digital Butterworth band-pass designed at ``fs_design``.

    ``scipy.signal.butter(order, band_hz, "bandpass", fs=fs_design)`` is the order-``n`` analog
    low-pass prototype moved to the band by ``s -> (s^2 + W0^2) / (s B)`` and discretised by the
    bilinear transform; its magnitude-squared response is ``1 / (1 + v^(2n))`` with
    ``v = (W^2 - W0^2) / (W B)``, ``W = tan(pi f / fs_design)`` (pre-warped), ``W0^2 = W_lo W_hi`` and
    ``B = W_hi - W_lo``. Filtering forwards and backwards (``filtfilt``) applies exactly that
    magnitude-squared gain with zero phase. Frequencies at or above ``fs_design / 2`` get gain 0.
    """
    if band_hz is None:
        return np.ones_like(freqs)
    lo, hi = (np.tan(np.pi * f / fs_design) for f in band_hz)
    w0_sq, bw = lo * hi, hi - lo
    inside = freqs < fs_design / 2
    w = np.tan(np.pi * np.where(inside, freqs, 0.0) / fs_design)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        v = (w * w - w0_sq) / (w * bw)
        gain = 1.0 / (1.0 + v ** (2 * order))
    gain = np.where(w == 0, 0.0, gain)
    return np.where(inside, gain, 0.0)


def filter_resample(
    x: np.ndarray,
    fs: float,
    fs_out: float,
    band_hz: tuple[float, float] | None = None,
    order: int = 2,
    fs_design: float | None = None,
) -> tuple[np.ndarray, float]:
    """Zero-phase band-pass and resampling in one step, in the frequency domain (numpy.fft only).

    The window is odd-extended by one second at both ends (as ``filtfilt`` pads), transformed, weighted
    by :func:`butter_zero_phase_gain` (designed at ``fs_design``, default ``fs_out``, so the result does
    not depend on the input rate), and its spectrum truncated (or zero-padded) to ``fs_out``'s
    Nyquist frequency before the inverse transform (the Fourier method of ``scipy.signal.resample``).
    With the band's upper edge below ``fs_out / 2`` nothing aliases. SciPy is deliberately not used on
    the device path: importing ``scipy.signal`` alone costs about 78 MB of resident memory, the whole
    runtime's budget; the tests check this function against ``scipy.signal``.
    ``(x, fs) -> (x, fs_out)``.
    """
    return filter_resample_bands(x, fs, fs_out, [band_hz], order, fs_design)[0], fs_out


# The spectra of the last window :func:`preprocess` filtered, kept for :func:`filter_resample_bands` calls on the
# same rows (``edge.dsp.measure.measure`` filters the independent leads of that same raw window): one Fourier
# transform per lead and window instead of two (#23 item 5). Rows are matched by their bits (as float64: what
# the transform reads), never by position; numpy's transform of a row does not depend on the rows beside it.
_SHARED: list = [None]  # [(key, rows, spectra, fingerprint -> row)], replaced whole (a reader sees one window's)


def release_spectra() -> None:
    """Drop the kept spectra (0.8 MiB for a 12-lead 500 Hz window) once the window's steps are done."""
    _SHARED[0] = None


def _fingerprint(row: np.ndarray) -> tuple[float, float, float]:
    return float(row[0]), float(row[row.shape[-1] // 3]), float(row[-1])


def _shared_spectra(x: np.ndarray, pad: int, fs: float) -> np.ndarray | None:
    """The kept spectra of ``x``'s rows when every row is bit for bit one of the kept rows, else None."""
    shared = _SHARED[0]
    if shared is None or x.ndim != 2 or shared[0] != (x.shape[-1], pad, float(fs)):
        return None
    _, kept, spec, index = shared
    rows = [index.get(_fingerprint(r)) for r in x]
    for j, r in zip(rows, x, strict=True):
        if j is None or not np.array_equal(
            kept[j].astype(np.float64, copy=False).view(np.uint64), r.astype(np.float64, copy=False).view(np.uint64)
        ):
            return None
    _SHARED[0] = None  # read once: not held through the caller's next steps (0.5 MiB resident)
    return spec[rows]


def filter_resample_bands(
    x: np.ndarray,
    fs: float,
    fs_out: float,
    bands: Sequence[tuple[float, float] | None],
    order: int = 2,
    fs_design: float | None = None,
    share: bool = False,
) -> list[np.ndarray]:
    """:func:`filter_resample` for several bands from one Fourier transform (one output per band).

    ``share``: keep this window's spectra for the next calls on the same rows (``x`` must not be written
    afterwards; :func:`preprocess` passes its private 12-lead copy). Rows whose spectra are kept are not
    transformed again; the outputs are the same to the last bit either way."""
    if fs <= 0 or fs_out <= 0:
        raise SignalError(f"sampling rates must be positive, got {fs} -> {fs_out}")
    x = np.asarray(x)
    t = x.shape[-1]
    pad = min(t - 1, int(round(fs)))
    n_out = int(round(t * fs_out / fs))
    pad_out = int(round(pad * fs_out / fs))
    n = t + 2 * max(pad, 0)
    n_total = n_out + 2 * pad_out
    spec0 = None if share else _shared_spectra(x, pad, fs)
    if spec0 is None:
        spec0 = np.fft.rfft(_odd_extend(x, pad), axis=-1)
        if share and x.ndim == 2 and t >= 3:  # x private to the caller, never written again: kept, not copied
            _SHARED[0] = ((t, pad, float(fs)), x, spec0, {_fingerprint(r): i for i, r in enumerate(x)})
    keep = n_total // 2 + 1
    outs = []
    for band_hz in bands:
        band = None if band_hz is None else (float(band_hz[0]), float(band_hz[1]))
        gain = _gain(n, float(fs), band, int(order), float(fs_design or fs_out))
        if keep <= spec0.shape[-1]:  # only the bins kept below the output's Nyquist are weighted
            spec = spec0[..., :keep] * gain[:keep]
        else:
            spec = spec0 * gain
            pad_spec = np.zeros(spec.shape[:-1] + (keep - spec.shape[-1],), spec.dtype)
            spec = np.concatenate([spec, pad_spec], axis=-1)
        y = np.fft.irfft(spec, n_total, axis=-1) * (n_total / n)
        outs.append(y[..., pad_out : pad_out + n_out].astype(np.float32))
    return outs


def resample(x: np.ndarray, fs: float, fs_out: float) -> tuple[np.ndarray, float]:
    """Fourier-method resampling along time (no band-pass); ``(x, fs) -> (x, fs_out)``."""
    if abs(fs - fs_out) < 1e-9:
        return np.asarray(x, dtype=np.float32), fs_out
    return filter_resample(x, fs, fs_out, None)


def bandpass(x: np.ndarray, fs: float, band_hz: tuple[float, float], order: int = 2) -> tuple[np.ndarray, float]:
    """Zero-phase Butterworth band-pass along time; ``(x, fs) -> (x, fs)``."""
    return filter_resample(x, fs, fs, band_hz, order)


def fit_length(x: np.ndarray, n: int, tolerance: float = 0.02) -> np.ndarray:
    """Exactly ``n`` samples: crop a longer window from its start, edge-pad one short by <= ``tolerance``."""
    t = x.shape[-1]
    if t >= n:
        return x[..., :n]
    if n - t > max(1, int(tolerance * n)):
        raise SignalError(f"window has {t} samples after resampling; the model needs {n}")
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - t)], mode="edge")


def normalize(x: np.ndarray, mode: str = "lead_zscore", eps: float = 0.001, clip: float = 20.0) -> np.ndarray:
    """Per-lead or whole-window z-score (or none), then clip to ``+-clip``."""
    if mode == "lead_zscore":
        std = x.std(axis=-1, keepdims=True) + eps
        x = x - x.mean(axis=-1, keepdims=True)
        x /= std  # in place: the same values as a new array, one allocation less
        if x.dtype == np.float32:
            return np.clip(x, -clip, clip, out=x)
    elif mode == "window_zscore":
        x = x - x.mean(axis=-1, keepdims=True)
        x = x / (x.std() + eps)
    elif mode != "none":
        raise SignalError(f"normalization {mode!r} not in {NORMALIZATIONS}")
    return np.clip(x, -clip, clip).astype(np.float32, copy=False)


def preprocess(
    x: np.ndarray,
    fs: float,
    config: SignalConfig | None = None,
    leads: Sequence[str] | None = None,
) -> np.ndarray:
    """Turn one raw window (any rate, 12 leads or 8 channels, mV) into the model input float32 [12, N].

    The window should last ``config.window_s`` seconds; a longer one is cropped from its start.
    Raises :class:`SignalError` for wrong shapes, missing leads, non-finite values or short windows.
    """
    config = config or SignalConfig()
    x12 = to_twelve_leads(x, leads)
    if not np.isfinite(x12).all():
        raise SignalError("window contains NaN or infinite values (missing samples must not be classified)")
    min_samples = int(0.98 * config.window_s * fs)
    if x12.shape[1] < min_samples:
        raise SignalError(f"window lasts {x12.shape[1] / fs:.2f} s; the model needs {config.window_s:g} s")
    if config.band_hz[1] >= min(fs, config.fs) / 2:
        raise SignalError(f"a {fs:g} Hz recording cannot carry the {config.band_hz[1]:g} Hz upper band edge")
    # the spectra are kept for measure() on the same raw window (filter_resample_bands: share)
    y = filter_resample_bands(x12, fs, config.fs, [config.band_hz], config.filter_order, share=True)[0]
    y = fit_length(y, config.n_samples)
    return normalize(y, config.normalization, config.eps, config.clip)


def iter_windows(n_samples: int, fs: float, window_s: float, hop_s: float | None = None):
    """Yield ``(start, stop)`` sample indices of full windows over a record; the last one ends at its end.

    With ``hop_s=None`` windows do not overlap. An uncovered tail of at least a fifth of a window gets
    one more window aligned to the record's end. A record shorter than one window yields nothing.
    """
    width = int(round(window_s * fs))
    hop = int(round((hop_s or window_s) * fs))
    if width <= 0 or hop <= 0:
        raise SignalError("window and hop must be positive")
    if n_samples < width:
        return
    starts = list(range(0, n_samples - width + 1, hop))
    if n_samples - (starts[-1] + width) >= width // 5:
        starts.append(n_samples - width)
    for s in starts:
        yield s, s + width
