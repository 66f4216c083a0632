"""Scoring delineators on the QT Database as the literature does (used by bench_qtdb.py and the tests).

- Reference: annotator 1 (``.q1c``). Only boundaries the annotator marked are scored; beats are matched by
  their QRS peak (150 ms).
- Per boundary (P on, P off, QRS on, QRS off, T end): sensitivity (the delineator gave the boundary on an
  annotated beat) and the error (delineator - cardiologist, ms): pooled mean and SD over all beats, and
  the SD averaged over records (the convention of Martinez et al. 2004, whose figures are quoted beside).
- Split: records at even positions of ``RECORDS`` tune the thresholds, those at odd positions are held out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.dsp.beats import detect_beats
from edge.dsp.delineate import (
    BOUNDARIES,
    DEFAULT_PARAMS,
    DelineationParams,
    combine_leads,
    delineate_beats,
    wavelet_scales,
)
from edge.dsp.signal import filter_resample

FS = 250.0
MATCH_MS = 150.0
WAVE_SYMBOLS = set("()ptu")
MARTINEZ_2004 = {
    "p_on": (2.0, 14.8),
    "p_off": (1.9, 12.8),
    "qrs_on": (4.6, 7.7),
    "qrs_off": (0.8, 8.7),
    "t_end": (-1.6, 18.1),
}
CSE_TOLERANCE_2SD = {"p_on": 10.2, "p_off": 12.7, "qrs_on": 6.5, "qrs_off": 11.6, "t_end": 30.6}
BAND_HZ = (0.5, 100.0)


def records(data: Path) -> list[str]:
    return (data / "qtdb" / "RECORDS").read_text().split()


def split(names: list[str]) -> tuple[list[str], list[str]]:
    """(tuning, held out): even and odd positions of RECORDS."""
    return names[0::2], names[1::2]


def parse_waves(symbols, samples) -> list[dict]:
    """Beats from WFDB wave annotations of one channel: ``{qrs, qrs_on, qrs_off, p_on, p_off, t_end}``."""
    sym, smp = list(symbols), np.asarray(samples)
    waves: list[tuple[str, int, int | None, int | None]] = []
    for i, s in enumerate(sym):
        if s in "()":
            continue
        on = int(smp[i - 1]) if i > 0 and sym[i - 1] == "(" else None
        end = int(smp[i + 1]) if i + 1 < len(sym) and sym[i + 1] == ")" else None
        waves.append((s, int(smp[i]), on, end))
    beats: list[dict] = []
    qrs_idx = [k for k, w in enumerate(waves) if w[0] not in WAVE_SYMBOLS]
    for n, k in enumerate(qrs_idx):
        _, pk, on, end = waves[k]
        b = {"qrs": pk, "qrs_on": on, "qrs_off": end, "p_on": None, "p_off": None, "t_end": None}
        lo = qrs_idx[n - 1] if n > 0 else -1
        hi = qrs_idx[n + 1] if n + 1 < len(qrs_idx) else len(waves)
        ps = [waves[j] for j in range(lo + 1, k) if waves[j][0] == "p" and pk - waves[j][1] < 0.5 * FS]
        if ps:
            b["p_on"], b["p_off"] = ps[-1][2], ps[-1][3]
        ts = [waves[j] for j in range(k + 1, hi) if waves[j][0] == "t" and waves[j][1] - pk < 0.9 * FS]
        if ts:
            b["t_end"] = ts[0][3]
        beats.append(b)
    return beats


@dataclass
class Record:
    name: str
    x: np.ndarray  # [2, T] band-passed mV at 250 Hz
    raw: np.ndarray  # [2, T] mV as recorded
    ref: list[dict]  # q1c beats
    pu: list[list[dict]]  # ecgpuwave beats per channel
    atr: np.ndarray | None  # beat samples of .atr (None where the record has none)
    cache: dict = field(default_factory=dict)


def load(data: Path, name: str) -> Record:
    import wfdb

    base = str(data / "qtdb" / name)
    rec = wfdb.rdrecord(base)
    raw = np.nan_to_num(rec.p_signal.T.astype(np.float64))
    x, _ = filter_resample(raw, FS, FS, BAND_HZ)
    q1c = wfdb.rdann(base, "q1c")
    ref = parse_waves(q1c.symbol, q1c.sample)
    pu = wfdb.rdann(base, "pu")
    chans = np.asarray(pu.chan)
    pu_beats = [
        parse_waves(np.asarray(pu.symbol)[chans == c], np.asarray(pu.sample)[chans == c]) for c in (0, 1)
    ]
    atr = None
    if Path(base + ".atr").exists():
        a = wfdb.rdann(base, "atr")
        atr = np.array(
            [s for s, y in zip(a.sample, a.symbol, strict=True) if y in set("NLRBAaJSVrFejnE/fQ?")]
        )
    return Record(name, np.asarray(x, dtype=np.float64), raw, ref, pu_beats, atr)


def device_beats(rec: Record) -> np.ndarray:
    if "beats" not in rec.cache:
        rec.cache["beats"] = detect_beats(rec.raw, FS)
    return rec.cache["beats"]


def device_delineation(rec: Record, params: DelineationParams = DEFAULT_PARAMS) -> list[dict | None]:
    """The device's combined boundaries (samples) for each q1c beat (``None``: no beat detected there)."""
    beats = device_beats(rec)
    peaks = np.array([b["qrs"] for b in rec.ref])
    lo, hi = int(peaks.min() - 4 * FS), int(peaks.max() + 4 * FS)
    lo, hi = max(0, lo), min(rec.x.shape[1], hi)
    sel = beats[(beats >= lo + 0.5 * FS) & (beats < hi - 0.5 * FS)]
    key = ("w", lo, hi)
    if key not in rec.cache:
        rec.cache[key] = wavelet_scales(rec.x[:, lo:hi])
    _, comb = delineate_beats(rec.x[:, lo:hi], sel - lo, params, w=rec.cache[key])
    out: list[dict | None] = []
    for p in peaks:
        j = int(np.argmin(np.abs(sel - p))) if sel.size else -1
        if j < 0 or abs(sel[j] - p) > MATCH_MS * FS / 1000:
            out.append(None)
            continue
        out.append({k: (None if v is None else v + lo) for k, v in comb[j].items() if k in BOUNDARIES})
    return out


def pu_delineation(rec: Record, params: DelineationParams = DEFAULT_PARAMS) -> list[dict | None]:
    """ecgpuwave's boundaries for each q1c beat, its two leads combined as the device combines its own."""
    out: list[dict | None] = []
    for b in rec.ref:
        per = []
        for beats in rec.pu:
            m = [c for c in beats if abs(c["qrs"] - b["qrs"]) <= MATCH_MS * FS / 1000]
            per.append(min(m, key=lambda c: abs(c["qrs"] - b["qrs"])) if m else None)
        if all(p is None for p in per):
            out.append(None)
            continue
        row = {}
        for name in BOUNDARIES:
            vals = np.array([np.nan if p is None or p[name] is None else p[name] for p in per], dtype=float)
            row[name] = combine_leads(vals, name, params)
        out.append(row)
    return out


def errors(recs: list[Record], found: dict[str, list[dict | None]]) -> dict[str, dict]:
    """Per boundary: ``{"n", "found", "err_ms": [...], "per_record": {name: [...]}}``."""
    out = {b: {"n": 0, "found": 0, "err_ms": [], "per_record": {}} for b in BOUNDARIES}
    for rec in recs:
        for ref, dev in zip(rec.ref, found[rec.name], strict=True):
            for b in BOUNDARIES:
                if ref[b] is None:
                    continue
                out[b]["n"] += 1
                if dev is None or dev.get(b) is None:
                    continue
                e = (dev[b] - ref[b]) * 1000.0 / FS
                out[b]["found"] += 1
                out[b]["err_ms"].append(e)
                out[b]["per_record"].setdefault(rec.name, []).append(e)
    return out


def summary(err: dict[str, dict]) -> dict[str, dict]:
    """Se, mean, pooled SD and record-averaged SD per boundary."""
    res = {}
    for b, e in err.items():
        v = np.asarray(e["err_ms"])
        sds = [np.std(r) for r in e["per_record"].values() if len(r) >= 2]
        res[b] = {
            "n": e["n"],
            "found": e["found"],
            "se": e["found"] / e["n"] if e["n"] else float("nan"),
            "mean": float(v.mean()) if v.size else float("nan"),
            "sd": float(v.std()) if v.size else float("nan"),
            "sd_rec": float(np.mean(sds)) if sds else float("nan"),
        }
    return res
