"""Synthetic 12-lead ECG from a moving heart dipole, for tests, the device simulator and the demo.

The model is the dipole form of ECGSYN: McSharry et al., "A dynamical model for generating synthetic
electrocardiogram signals", IEEE TBME 50(3), 2003, extended to the vectorcardiogram by Sameni et al.,
"Multichannel ECG and noise modeling: application to maternal and fetal ECG signals", EURASIP J. Adv.
Signal Process. 2007:043407. Each beat's P, Q, R, S and T waves are Gaussian kernels in time around the
R peak, each with its own vector on the three dipole axes (Frank X left, Y inferior, Z posterior); P and
T positions and widths stretch with the RR interval (Bazett-like, as ECGSYN's sqrt(hr) scaling). The
dipole is projected onto the eight independent leads I, II, V1-V6 with the Dower transform (Dower,
Machado & Osborne, Clin. Cardiol. 1980; the "inverse Dower" of Edenbrandt & Pahlm, J. Electrocardiol.
1988), and III, aVR, aVL, aVF are derived from I and II (Einthoven and Goldberger), so those identities
hold to float precision. Noise (white, respiration-like baseline wander, powerline) and atrial f-waves
are added on the eight independent leads before the derivation, as electrodes would see them.

Output is lead-first ``float32[12, T]`` in millivolts (DESIGN.md, contract 1). Generation is block by
block on an absolute sample clock: every sample is a pure function of (config, sample index), so
``SyntheticStream.read`` in any chunk sizes equals one ``synthesize`` of the same length, exactly.
numpy only (firmware_bridge may not depend on scipy).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from firmware_bridge.synthetic_rhythms import SEPARATE_RHYTHMS, Schedule, flutter_waves, spike_samples

__all__ = [
    "LEADS",
    "RHYTHMS",
    "ST_TERRITORIES",
    "SyntheticConfig",
    "SyntheticStream",
    "from_counts",
    "synthesize",
    "true_intervals",
    "to_counts",
]

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

# name -> (description, default heart rate in bpm)
RHYTHMS: dict[str, tuple[str, float]] = {
    "sinus": ("normal sinus rhythm", 72.0),
    "sinus_brady": ("sinus bradycardia (< 60 bpm)", 48.0),
    "sinus_tachy": ("sinus tachycardia (> 100 bpm)", 120.0),
    "afib": ("atrial fibrillation: irregular RR, no P waves, 4-9 Hz f-waves", 90.0),
    "pvc": ("sinus rhythm with premature ventricular beats and compensatory pauses", 72.0),
    "rbbb": ("right bundle branch block: QRS >= 120 ms, rsR' in V1, wide S in I and V6", 72.0),
    "lbbb": ("left bundle branch block: QRS >= 120 ms, QS in V1, broad notched R in I and V6", 72.0),
    "wide_qrs": ("alias of lbbb", 72.0),
    "st_elevation": ("sinus rhythm with ST elevation in one territory (see ST_TERRITORIES)", 72.0),
    **SEPARATE_RHYTHMS,  # flutter, SVT, junctional, VT, pacing, PACs, bigeminy/trigeminy, AV blocks
}
_PVC_EVERY = {"bigeminy": 2, "trigeminy": 3}  # rhythms that are "pvc" with a fixed pattern
_SEPARATE = tuple(r for r in SEPARATE_RHYTHMS if r not in _PVC_EVERY)
# atrial events of the separately scheduled rhythms: P-wave kernels relative to the event (X, Y, Z mV)
_P_EVENT = {
    "sinus": ((0.0, 0.022, 0.05, 0.09, -0.05), (0.03, 0.022, 0.07, 0.06, 0.05)),
    "ectopic": ((0.0, 0.022, 0.08, -0.03, 0.06), (0.03, 0.022, 0.05, -0.02, 0.03)),  # low atrial: flat in II
    "retrograde": ((0.0, 0.02, -0.03, -0.07, 0.03), (0.025, 0.02, -0.03, -0.05, 0.0)),  # negative in II
}
_FLUTTER_VECTOR = (0.04, -0.20, 0.10)  # F waves: negative sawtooth in II, III, aVF
_SPIKE_VECTORS = {"a": (1.0, 2.5, -1.0), "v": (-1.5, -3.0, 1.5)}  # unipolar-sized stimuli, mV

# territory -> leads whose ST segment is raised; reciprocal depression elsewhere follows from the dipole
ST_TERRITORIES: dict[str, tuple[str, ...]] = {
    "inferior": ("II", "III", "aVF"),
    "anterior": ("V1", "V2", "V3", "V4"),
    "lateral": ("I", "aVL", "V5", "V6"),
}
# injury-current direction (X, Y, Z) per territory: inferior-rightward (RCA), anterior (LAD), leftward (LCx)
_ST_VECTORS = {"inferior": (-0.3, 1.0, 0.0), "anterior": (0.3, 0.0, -1.0), "lateral": (1.0, -0.3, 0.0)}

# Dower transform, rows I, II, V1..V6, columns Frank X (left), Y (inferior), Z (posterior); mV per mV.
_DOWER = np.array(
    [
        [0.632, -0.235, 0.059],
        [0.235, 1.066, -0.132],
        [-0.515, 0.157, -0.917],
        [0.044, 0.164, -1.387],
        [0.882, 0.098, -1.277],
        [1.213, 0.127, -0.601],
        [1.125, 0.127, -0.086],
        [0.831, 0.076, 0.230],
    ]
)
_INDEP = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")

# Waves: (offset from R in s at RR = 1 s, sigma in s, X, Y, Z in mV, timing class).
# Timing class: "q" fixed (ventricular depolarisation), "p" offset * RR**0.3, "t" offset and sigma * sqrt(RR).
_P = ((-0.175, 0.022, 0.05, 0.09, -0.05, "p"), (-0.145, 0.022, 0.07, 0.06, 0.05, "p"))
_T_NORMAL = ((0.25, 0.055, 0.20, 0.13, -0.10, "t"), (0.30, 0.035, 0.15, 0.10, -0.07, "t"))
_MORPHS: dict[str, tuple[tuple, ...]] = {
    "normal": _P
    + (
        (-0.026, 0.008, -0.15, -0.05, -0.25, "q"),  # septal q: rightward, anterior -> r in V1, q in V6
        (0.0, 0.0095, 1.45, 0.90, 0.30, "q"),  # main R: leftward, inferior
        (0.022, 0.011, -0.22, -0.15, 0.70, "q"),  # terminal S: posterior -> deep S in V1-V3
    )
    + _T_NORMAL,
    "rbbb": _P
    + (
        (-0.026, 0.008, -0.15, -0.05, -0.25, "q"),
        (0.0, 0.0095, 1.20, 1.00, 0.30, "q"),
        (0.025, 0.010, -0.30, -0.15, 0.70, "q"),
        (0.068, 0.017, -0.55, -0.05, -0.80, "q"),  # slow terminal rightward-anterior forces: R' in V1
        (0.28, 0.06, 0.25, 0.18, 0.15, "t"),  # T discordant to R' in V1-V2
    ),
    "lbbb": _P
    + (
        (-0.022, 0.018, 0.90, 0.30, 0.70, "q"),  # no septal q; slow leftward-posterior activation
        (0.035, 0.020, 1.00, 0.20, 1.00, "q"),  # second hump: notched R in I, V6; QS in V1
        (0.16, 0.06, -0.12, -0.02, -0.15, "t"),  # discordant ST shift
        (0.30, 0.06, -0.30, -0.05, -0.35, "t"),  # discordant T
    ),
    "pvc": (  # right-ventricular-outflow origin: no P, wide, LBBB-like, inferior axis
        (-0.02, 0.028, 0.30, 1.20, 0.70, "q"),
        (0.045, 0.030, 0.50, 0.50, 0.90, "q"),
        (0.30, 0.07, -0.30, -0.60, -0.50, "q"),
    ),
}
# ST elevation shape (offset, sigma, relative weight, class); scaled so that it is 1 at R + 100 ms
_ST_SHAPE = ((0.09, 0.045, 1.0, "q"), (0.17, 0.05, 0.8, "t"))
_F_WEIGHTS = np.array([0.25, 0.6, 1.0, 0.7, 0.4, 0.3, 0.2, 0.2])  # f-wave amplitude per independent lead
_PRE_S, _POST_S = 0.35, 1.1  # a beat's support around its R peak, in s, at the slowest timing stretch


@dataclass
class SyntheticConfig:
    """Everything that defines a synthetic recording; the same config and seed give the same samples."""

    rhythm: str = "sinus"  # one of RHYTHMS
    heart_rate_bpm: float | None = None  # mean rate; None -> the rhythm's typical rate (72 for sinus)
    fs: float = 500.0  # sampling rate in Hz
    noise_mv: float = 0.01  # std of white (EMG-like) noise on each independent lead, mV
    baseline_wander_mv: float = 0.05  # peak amplitude of respiration-like wander (0.15-0.3 Hz), mV
    powerline_mv: float = 0.0  # amplitude of mains interference, mV
    powerline_hz: float = 50.0  # mains frequency (Japan: 50 Hz east, 60 Hz west)
    hrv: float = 0.03  # coefficient of variation of sinus RR (LF 0.1 Hz + respiratory + white)
    afib_rr_cv: float = 0.22  # coefficient of variation of RR in atrial fibrillation
    fwave_mv: float = 0.08  # peak amplitude of atrial fibrillation f-waves in V1, mV
    pvc_every: int = 4  # "pvc": every Nth beat is premature (4 = quadrigeminy)
    pvc_random: bool = False  # "pvc": instead, each beat is a PVC with probability 1/pvc_every
    pvc_coupling: float = 0.6  # "pvc": coupling interval as a fraction of the sinus RR
    st_territory: str = "inferior"  # "st_elevation": one of ST_TERRITORIES
    st_mv: float = 0.25  # "st_elevation": mean ST elevation at J+60 ms over the territory's leads, mV
    amplitude_scale: float = 1.0  # scales all cardiac waves (body habitus, gain)
    seed: int | None = 0  # RNG seed; None draws fresh entropy (not reproducible)

    def __post_init__(self) -> None:
        if self.rhythm not in RHYTHMS:
            raise ValueError(f"unknown rhythm {self.rhythm!r}; choose one of {sorted(RHYTHMS)}")
        if self.st_territory not in ST_TERRITORIES:
            raise ValueError(
                f"unknown st_territory {self.st_territory!r}; choose one of {sorted(ST_TERRITORIES)}"
            )
        if self.seed is not None and not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")
        if not self.fs > 0:
            raise ValueError(f"fs must be positive, got {self.fs}")
        hr = self.rate_bpm
        if not 20.0 <= hr <= 250.0:
            raise ValueError(f"heart_rate_bpm must be within 20-250, got {hr}")
        if self.rhythm == "sinus_brady" and hr >= 60:
            raise ValueError(f"sinus_brady needs a rate below 60 bpm, got {hr}")
        if self.rhythm == "sinus_tachy" and hr <= 100:
            raise ValueError(f"sinus_tachy needs a rate above 100 bpm, got {hr}")
        if self.pvc_every < 2:
            raise ValueError(f"pvc_every must be at least 2, got {self.pvc_every}")
        if min(self.noise_mv, self.baseline_wander_mv, self.powerline_mv, self.hrv, self.fwave_mv) < 0:
            raise ValueError("noise, wander, powerline, hrv and f-wave amplitudes must not be negative")

    @property
    def rate_bpm(self) -> float:
        """The mean heart rate actually used, in bpm."""
        return float(self.heart_rate_bpm if self.heart_rate_bpm is not None else RHYTHMS[self.rhythm][1])


class SyntheticStream:
    """Endless, continuous synthetic ECG: ``read(n)`` returns the next ``float32[12, n]`` in mV.

    Samples are rendered in fixed blocks on an absolute sample clock, beats are scheduled lazily, and
    beats that can no longer reach the next block are dropped, so memory stays bounded however long it runs.
    """

    def __init__(self, config: SyntheticConfig | None = None, **overrides) -> None:
        cfg = config if config is not None else SyntheticConfig()
        self.config = dataclasses.replace(cfg, **overrides) if overrides else cfg
        c = self.config
        self.fs = float(c.fs)
        self.samples_emitted = 0
        self._block = max(64, int(round(self.fs)))  # samples per rendered block (about 1 s)
        self._rr = 60.0 / c.rate_bpm
        ss = np.random.SeedSequence(c.seed)
        beat_ss, noise_ss, param_ss, extra_ss = ss.spawn(4)  # the first three as before a fourth was added
        self._beat_rng = np.random.default_rng(beat_ss)
        self._noise_rng = np.random.default_rng(noise_ss)
        p = np.random.default_rng(param_ss)
        # slow processes evaluated on absolute time: respiration, HRV phases, wander, powerline, f-waves
        self._f_resp = p.uniform(0.15, 0.3)
        self._ph_resp, self._ph_lf = p.uniform(0, 2 * np.pi, 2)
        self._wander_amp = c.baseline_wander_mv * p.uniform(0.5, 1.0, (8, 2)) * np.array([1.0, 0.4])
        self._wander_ph = p.uniform(0, 2 * np.pi, (8, 2))
        self._wander_slow = p.uniform(0.03, 0.08)  # second, slower wander component (posture, electrodes)
        self._pl_amp = c.powerline_mv * p.uniform(0.6, 1.0, 8)
        self._pl_ph = p.uniform(0, 2 * np.pi, 8)
        self._f0, self._fm = p.uniform(5.0, 7.0), p.uniform(0.1, 0.2)
        self._f_ph = p.uniform(0, 2 * np.pi, 3)
        self._waves = {name: self._project(w) for name, w in _MORPHS.items()}
        for name in ("normal", "lbbb"):  # ventricular waves alone (atria scheduled apart)
            self._waves[name + "_np"] = self._project(tuple(w for w in _MORPHS[name] if w[5] != "p"))
        self._pvc_every = _PVC_EVERY.get(c.rhythm, c.pvc_every)
        extra = np.random.default_rng(extra_ss)
        self._sched = Schedule(c.rhythm, c.rate_bpm, c.hrv, extra) if c.rhythm in _SEPARATE else None
        self._flutter_phase = float(extra.uniform(0.0, 1.0))
        self._atrial: list[tuple[float, str]] = []
        self._spikes: list[tuple[float, str]] = []
        if c.rhythm == "st_elevation":
            self._waves["normal"] = self._waves["normal"] + self._st_waves()
        # beat schedule: (r_time_s, morphology, rr_before_s); the first R lies before t = 0
        self._beats: list[tuple[float, str, float]] = []
        self._next_sinus = -self._beat_rng.uniform(0.0, 1.0) * self._rr
        self._last_r = self._next_sinus - self._rr
        self._sinus_index = 0
        self._buf = np.zeros((12, 0), np.float32)
        self._next_block = 0

    # ----------------------------------------------------------------------------------------------
    def read(self, n: int) -> np.ndarray:
        """The next ``n`` samples as ``float32[12, n]`` in mV, continuing the previous read seamlessly."""
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        parts, have = [self._buf], self._buf.shape[1]
        while have < n:
            blk = self._render(self._next_block)
            self._next_block += 1
            parts.append(blk)
            have += blk.shape[1]
        buf = np.concatenate(parts, axis=1) if len(parts) > 1 else self._buf
        out, self._buf = buf[:, :n], buf[:, n:]
        self.samples_emitted += n
        return np.ascontiguousarray(out)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yields one block-sized chunk after another, forever."""
        while True:
            yield self.read(self._block)

    # ----------------------------------------------------------------------------------------------
    @staticmethod
    def _project(waves: tuple[tuple, ...]) -> list[tuple[float, float, np.ndarray, str]]:
        """Wave table -> (offset, sigma, amplitude on the 8 independent leads, timing class)."""
        return [(w[0], w[1], _DOWER @ np.array(w[2:5]), w[5]) for w in waves]

    def _st_waves(self) -> list[tuple[float, float, np.ndarray, str]]:
        """Injury-current waves scaled so the territory's leads rise by st_mv on average at J+60 ms."""
        c = self.config
        shape_at = sum(w * np.exp(-0.5 * ((0.10 - o) / s) ** 2) for o, s, w, _ in _ST_SHAPE)
        lead8 = _DOWER @ np.array(_ST_VECTORS[c.st_territory])
        elev = dict(zip(LEADS, _derive(lead8[:, None])[:, 0], strict=True))
        k = c.st_mv / (shape_at * np.mean([elev[name] for name in ST_TERRITORIES[c.st_territory]]))
        return [(o, s, k * w * lead8, cls) for o, s, w, cls in _ST_SHAPE]

    def _schedule_until(self, t_end: float) -> None:
        """Append beats until the last R peak lies beyond ``t_end``."""
        c, rng = self.config, self._beat_rng
        if self._sched is not None:
            sch = self._sched
            sch.until(t_end)
            self._beats += sch.beats
            self._atrial += sch.atrial
            self._spikes += sch.spikes
            sch.beats, sch.atrial, sch.spikes = [], [], []
            self._last_r = max(self._last_r, self._beats[-1][0] if self._beats else self._last_r)
            return
        while self._last_r <= t_end:
            if c.rhythm == "afib":
                sigma = np.sqrt(np.log1p(c.afib_rr_cv**2))
                rr = self._rr * rng.lognormal(-0.5 * sigma**2, sigma)
                rr = max(rr, 0.3, 0.45 * self._rr)
                self._last_r += rr
                self._beats.append((self._last_r, "afib", rr))
                continue
            rr = self._sinus_rr(self._next_sinus)
            t_r = self._next_sinus + rr
            self._next_sinus = t_r
            self._sinus_index += 1
            is_pvc = c.rhythm in ("pvc", *_PVC_EVERY) and (
                rng.random() < 1.0 / self._pvc_every
                if c.pvc_random
                else self._sinus_index % self._pvc_every == 0
            )
            if is_pvc and self._beats and self._beats[-1][1] != "pvc":
                # premature beat; the sinus beat it replaces is not conducted -> full compensatory pause
                coupling = c.pvc_coupling * rr
                self._last_r = t_r - rr + coupling
                self._beats.append((self._last_r, "pvc", coupling))
                continue
            morph = "rbbb" if c.rhythm == "rbbb" else "lbbb" if c.rhythm in ("lbbb", "wide_qrs") else "normal"
            rr_before = t_r - self._last_r
            self._last_r = t_r
            self._beats.append((t_r, morph, rr_before))

    def _sinus_rr(self, t: float) -> float:
        """Sinus RR at time t: LF (0.1 Hz) and respiratory sinus arrhythmia plus white jitter, CV = hrv."""
        c = self.config
        mod = 0.894 * np.sin(2 * np.pi * 0.1 * t + self._ph_lf)
        mod += 0.894 * np.sin(2 * np.pi * self._f_resp * t + self._ph_resp)
        mod += 0.447 * self._beat_rng.standard_normal()
        return self._rr * max(0.5, 1.0 + c.hrv * mod)

    def _render(self, b: int) -> np.ndarray:
        """Block ``b``: samples [b*B, (b+1)*B) on the 12 leads, float32 mV."""
        c, fs, B = self.config, self.fs, self._block
        n0 = b * B
        t0, t1 = n0 / fs, (n0 + B) / fs
        self._schedule_until(t1 + _PRE_S)
        self._beats = [bt for bt in self._beats if bt[0] + _POST_S >= t0]
        x = np.zeros((8, B))
        for t_r, morph, rr in self._beats:
            if t_r - _PRE_S > t1:
                break
            waves = self._waves["normal" if morph == "afib" else morph]
            resp = 1.0 + 0.05 * np.sin(2 * np.pi * self._f_resp * t_r + self._ph_resp)
            for off, sig, amp, cls in waves:
                if cls == "p":
                    if morph == "afib":
                        continue  # no organised atrial activity
                    off = off * min(rr, 1.5) ** 0.3
                elif cls == "t":
                    stretch = np.sqrt(min(rr, 1.5))
                    off, sig = off * stretch, sig * stretch
                centre = (t_r + off) * fs
                lo = max(n0, int(np.ceil(centre - 6 * sig * fs)))
                hi = min(n0 + B, int(np.floor(centre + 6 * sig * fs)) + 1)
                if hi <= lo:
                    continue
                g = np.exp(-0.5 * ((np.arange(lo, hi) - centre) / (sig * fs)) ** 2)
                x[:, lo - n0 : hi - n0] += (c.amplitude_scale * resp * amp)[:, None] * g
        t = np.arange(n0, n0 + B) / fs
        if self._sched is not None:
            self._render_atria(x, n0, t0, t1)
        if c.rhythm == "afib" and c.fwave_mv > 0:
            x += _F_WEIGHTS[:, None] * self._fwaves(t)
        if c.baseline_wander_mv > 0:
            a, ph = self._wander_amp, self._wander_ph
            x += a[:, :1] * np.sin(2 * np.pi * self._f_resp * t + ph[:, :1])
            x += a[:, 1:] * np.sin(2 * np.pi * self._wander_slow * t + ph[:, 1:])
        if c.powerline_mv > 0:
            x += self._pl_amp[:, None] * np.sin(2 * np.pi * c.powerline_hz * t + self._pl_ph[:, None])
        if c.noise_mv > 0:
            x += c.noise_mv * self._noise_rng.standard_normal((8, B))
        return _derive(x).astype(np.float32)

    def _render_atria(self, x: np.ndarray, n0: int, t0: float, t1: float) -> None:
        """Atrial events, flutter waves and pacing spikes of a separately scheduled rhythm, into ``x[8, B]``."""
        c, fs, B = self.config, self.fs, x.shape[1]
        self._atrial = [a for a in self._atrial if a[0] + 0.2 >= t0]
        self._spikes = [s for s in self._spikes if s[0] + 0.01 >= t0]
        for t_p, kind in self._atrial:
            if t_p - 0.2 > t1:
                break
            for off, sig, *vec in _P_EVENT[kind]:
                amp = c.amplitude_scale * (_DOWER @ np.array(vec))
                centre = (t_p + off) * fs
                lo = max(n0, int(np.ceil(centre - 6 * sig * fs)))
                hi = min(n0 + B, int(np.floor(centre + 6 * sig * fs)) + 1)
                if hi > lo:
                    g = np.exp(-0.5 * ((np.arange(lo, hi) - centre) / (sig * fs)) ** 2)
                    x[:, lo - n0 : hi - n0] += amp[:, None] * g
        for t_s, kind in self._spikes:
            first, w = spike_samples(t_s, n0, B, fs)
            if w.size:
                x[:, first - n0 : first - n0 + w.size] += (_DOWER @ np.array(_SPIKE_VECTORS[kind]))[:, None] * w
        if c.rhythm == "flutter":
            t = np.arange(n0, n0 + B) / fs
            x += c.amplitude_scale * (_DOWER @ np.array(_FLUTTER_VECTOR))[:, None] * flutter_waves(t, self._flutter_phase)

    def _fwaves(self, t: np.ndarray) -> np.ndarray:
        """Fibrillatory waves: 5-7 Hz carrier, +-1.5 Hz frequency and 30 % amplitude modulation, sawtooth-ish."""
        c, fm = self.config, self._fm
        phase = 2 * np.pi * self._f0 * t + (1.5 / fm) * np.sin(2 * np.pi * fm * t + self._f_ph[0])
        am = 1.0 + 0.3 * np.sin(2 * np.pi * 0.13 * t + self._f_ph[1])
        return c.fwave_mv * am * (np.sin(phase) + 0.3 * np.sin(2 * phase + self._f_ph[2])) / 1.2


def _derive(x8: np.ndarray) -> np.ndarray:
    """Eight independent leads (I, II, V1..V6) -> 12 leads in LEADS order, by Einthoven/Goldberger."""
    lead_i, lead_ii = x8[0], x8[1]
    limb = np.stack(
        [
            lead_i,
            lead_ii,
            lead_ii - lead_i,
            -(lead_i + lead_ii) / 2,
            lead_i - lead_ii / 2,
            lead_ii - lead_i / 2,
        ]
    )
    return np.concatenate([limb, x8[2:]], axis=0)


def synthesize(config: SyntheticConfig | None = None, duration_s: float = 10.0, **overrides) -> np.ndarray:
    """``float32[12, round(duration_s * fs)]`` in mV; the same config (seed) always gives the same array.

    ``overrides`` replace config fields, e.g. ``synthesize(rhythm="afib", seed=3)``.
    """
    stream = SyntheticStream(config, **overrides)
    return stream.read(int(round(duration_s * stream.fs)))


def true_intervals(morphology: str = "normal", rr_s: float = 60.0 / 72.0, fraction: float = 0.05) -> dict:
    """The generator's own P/QRS/T timings for one beat of ``morphology`` at RR ``rr_s``, in ms.

    Computed from the noise-free waves of each class on the eight independent leads (spatial magnitude,
    1 ms grid), with the conventions a reader applies: a P or QRS boundary is where the spatial magnitude of
    that wave group alone is ``fraction`` of its peak; the T wave ends where the tangent at the steepest
    point of its down-slope meets zero (the tangent method of manual QT measurement). Returns
    ``{"pr_ms", "qrs_ms", "qt_ms", "p_on_ms", "qrs_on_ms", "qrs_off_ms", "t_end_ms"}`` (times from R).
    """
    if morphology not in ("normal", "rbbb", "lbbb"):
        raise ValueError(f"no ground truth for morphology {morphology!r}")
    t = np.arange(-600.0, 1200.0) / 1000.0
    groups: dict[str, np.ndarray] = {
        "p": np.zeros((8, t.size)),
        "q": np.zeros((8, t.size)),
        "t": np.zeros((8, t.size)),
    }
    for off, sig, amp, cls in SyntheticStream._project(_MORPHS[morphology]):
        if cls == "p":
            off = off * min(rr_s, 1.5) ** 0.3
        elif cls == "t":
            stretch = np.sqrt(min(rr_s, 1.5))
            off, sig = off * stretch, sig * stretch
        groups[cls] += amp[:, None] * np.exp(-0.5 * ((t - off) / sig) ** 2)[None]
    mag = {k: np.sqrt((v * v).sum(axis=0)) for k, v in groups.items()}

    def span(m: np.ndarray) -> tuple[float, float]:
        above = np.flatnonzero(m >= fraction * m.max())
        return t[above[0]] * 1000.0, t[above[-1]] * 1000.0

    p_on, _ = span(mag["p"])
    q_on, q_off = span(mag["q"])
    m = mag["t"]
    k = int(np.argmax(m))
    down = -np.gradient(m, t)
    j = k + int(np.argmax(down[k:]))
    t_end = (t[j] + m[j] / down[j]) * 1000.0
    return {
        "pr_ms": q_on - p_on,
        "qrs_ms": q_off - q_on,
        "qt_ms": t_end - q_on,
        "p_on_ms": p_on,
        "qrs_on_ms": q_on,
        "qrs_off_ms": q_off,
        "t_end_ms": t_end,
    }


def to_counts(x_mv: np.ndarray, lsb_nv: float) -> np.ndarray:
    """ADC step: mV -> int16 counts of ``lsb_nv`` nanovolts each, rounded and clipped to the int16 range."""
    if lsb_nv <= 0:
        raise ValueError(f"lsb_nv must be positive, got {lsb_nv}")
    counts = np.rint(np.asarray(x_mv, np.float64) * (1e6 / lsb_nv))
    return np.clip(counts, -32768, 32767).astype(np.int16)


def from_counts(counts: np.ndarray, lsb_nv: float) -> np.ndarray:
    """Inverse of :func:`to_counts`: int16 counts -> float32 mV."""
    if lsb_nv <= 0:
        raise ValueError(f"lsb_nv must be positive, got {lsb_nv}")
    return (np.asarray(counts, np.float64) * (lsb_nv / 1e6)).astype(np.float32)
