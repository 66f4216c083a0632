"""Rhythms of the synthetic generator whose atria and ventricles are scheduled apart (``firmware_bridge.synthetic``).

The base rhythms (sinus, AF, PVCs, bundle branch blocks) tie each P wave to its QRS. These need the atria on
their own clock: atrial flutter (continuous sawtooth flutter waves at ``flutter_rate_bpm``, every Nth conducted),
AV blocks (first degree, Mobitz I, Mobitz II, 2:1, complete), junctional rhythm and supraventricular
tachycardia (no P wave before the QRS), ventricular tachycardia (wide QRS, AV dissociation), pacing (atrial,
ventricular, dual chamber: a 0.5 ms stimulus, band-limited to the sample period as an ADC sees it) and
atrial premature beats. Bigeminy / trigeminy are the base "pvc" rhythm with every 2nd / 3rd beat premature.

:class:`Schedule` appends, lazily and deterministically from its RNG, ``beats`` (R time s, morphology, RR
before), ``atrial`` (P time s, kind: ``"sinus"``, ``"ectopic"``, ``"retrograde"``) and ``spikes`` (time s,
``"a"`` or ``"v"``). numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SEPARATE_RHYTHMS", "Schedule", "flutter_waves", "spike_samples"]

# name -> (description, default ventricular rate in bpm)
SEPARATE_RHYTHMS: dict[str, tuple[str, float]] = {
    "flutter": ("atrial flutter: sawtooth F waves 300/min, 4:1 conduction (2:1 at heart_rate 150)", 75.0),
    "svt": ("supraventricular tachycardia: regular narrow QRS, no P waves", 180.0),
    "junctional": ("junctional rhythm: narrow QRS, retrograde P just after the QRS", 50.0),
    "vt": ("ventricular tachycardia: wide QRS, AV dissociation", 170.0),
    "paced_v": ("ventricular pacing: spike then wide QRS, no P", 70.0),
    "paced_a": ("atrial pacing: spike, P wave, normal conduction", 70.0),
    "paced_dual": ("dual-chamber pacing: atrial spike, P, ventricular spike, wide QRS", 70.0),
    "pac": ("sinus rhythm with premature atrial beats (every 5th), non-compensatory pause", 72.0),
    "bigeminy": ("ventricular bigeminy: every 2nd beat a premature ventricular beat", 72.0),
    "trigeminy": ("ventricular trigeminy: every 3rd beat a premature ventricular beat", 72.0),
    "avb1": ("sinus rhythm with first-degree AV block (PR 300 ms)", 72.0),
    "mobitz1": ("second-degree AV block Mobitz I (Wenckebach 4:3): PR lengthens, then a P is dropped", 72.0),
    "mobitz2": ("second-degree AV block Mobitz II (3:2): constant PR, then a P is dropped", 72.0),
    "avb2to1": ("second-degree AV block 2:1: every 2nd P wave not conducted (atrial rate 2x)", 40.0),
    "avb3": ("complete AV block: P at 80/min, independent junctional escape", 40.0),
}
PR_S = 0.16  # P onset-ish event to R, normal conduction
FLUTTER_RATE_BPM = 300.0
SPIKE_WIDTH_S = 0.0005


class Schedule:
    """Beats, atrial events and pacing spikes of a ``SEPARATE_RHYTHMS`` rhythm (see module docstring)."""

    def __init__(self, rhythm: str, rate_bpm: float, hrv: float, rng: np.random.Generator) -> None:
        self.rhythm, self.rng, self.hrv = rhythm, rng, hrv
        self.rr = 60.0 / rate_bpm
        self.beats: list[tuple[float, str, float]] = []
        self.atrial: list[tuple[float, str]] = []
        self.spikes: list[tuple[float, str]] = []
        self.t = -rng.uniform(0.5, 1.5)  # the atrial (or ventricular) clock, starts before t = 0
        self.last_r = self.t - self.rr
        self.k = 0  # cycle counter
        self.v_clock = self.t  # escape clock of complete block / VT
        self.pr = PR_S

    def _jitter(self, base: float) -> float:
        return base * (1.0 + self.hrv * 0.5 * self.rng.standard_normal())

    def _beat(self, t_r: float, morph: str) -> None:
        # the T wave follows the mean ventricular rate, not the RR just before the beat: the QT adapts to a
        # rate change over minutes (QT-RR hysteresis), so a pause in an AV block does not move the next T wave
        self.beats.append((t_r, morph, self.rr))
        self.last_r = t_r

    def until(self, t_end: float) -> None:
        """Schedule events until both clocks lie beyond ``t_end``."""
        r = self.rhythm
        while min(self.t, self.last_r) <= t_end:
            self.k += 1
            if r == "flutter":
                # F waves on their own continuous clock (flutter_waves); every Nth conducted, fixed delay
                fl = 60.0 / FLUTTER_RATE_BPM
                n = max(2, int(round(self.rr / fl)))
                self.t += n * fl
                self._beat(self.t + 0.27, "normal_np")
            elif r in ("svt", "junctional", "vt"):
                self.t += (
                    self._jitter(self.rr)
                    if r == "junctional"
                    else self.rr * (1 + 0.003 * self.rng.standard_normal())
                )
                morph = "lbbb_np" if r == "vt" else "normal_np"
                self._beat(self.t, morph)
                if r == "junctional":
                    self.atrial.append((self.t + 0.05, "retrograde"))
                if r == "vt":  # sinus P waves march through independently at 75/min
                    while self.v_clock < self.t:
                        self.v_clock += 0.8
                        self.atrial.append((self.v_clock, "sinus"))
            elif r == "paced_v":
                self.t += self.rr
                self.spikes.append((self.t - 0.03, "v"))
                self._beat(self.t, "lbbb_np")
            elif r == "paced_a":
                self.t += self.rr
                self.spikes.append((self.t, "a"))
                self.atrial.append((self.t + 0.01, "sinus"))
                self._beat(self.t + 0.01 + 0.19, "normal_np")
            elif r == "paced_dual":
                self.t += self.rr
                self.spikes.append((self.t, "a"))
                self.atrial.append((self.t + 0.01, "sinus"))
                self.spikes.append((self.t + 0.17, "v"))
                self._beat(self.t + 0.2, "lbbb_np")
            elif r == "pac":
                step = self._jitter(self.rr)
                if self.k % 5 == 0:  # premature atrial beat at 65 % coupling, resets the sinus node
                    step = 0.65 * self.rr
                    self.t += step
                    self.atrial.append((self.t, "ectopic"))
                else:
                    self.t += step
                    self.atrial.append((self.t, "sinus"))
                self._beat(self.t + PR_S, "normal_np")
            elif r in ("avb1", "mobitz1", "mobitz2", "avb2to1"):
                atrial_rr = self.rr / 2.0 if r == "avb2to1" else self.rr
                self.t += self._jitter(atrial_rr)
                self.atrial.append((self.t, "sinus"))
                if r == "avb1":
                    self._beat(self.t + 0.30, "normal_np")
                elif r == "mobitz1":  # 4:3 Wenckebach: PR 160, 260, 320, then dropped
                    phase = self.k % 4
                    if phase != 0:
                        self._beat(self.t + (0.16, 0.26, 0.32)[phase - 1], "normal_np")
                elif r == "mobitz2":  # 3:2, constant PR
                    if self.k % 3 != 0:
                        self._beat(self.t + 0.18, "normal_np")
                elif self.k % 2 == 1:  # 2:1
                    self._beat(self.t + 0.18, "normal_np")
            elif r == "avb3":
                self.t += self._jitter(0.75)  # atria at 80/min
                self.atrial.append((self.t, "sinus"))
                while self.v_clock < self.t:
                    self.v_clock += self.rr * (1 + 0.01 * self.rng.standard_normal())
                    self._beat(self.v_clock, "normal_np")
            else:
                raise ValueError(f"no separate schedule for rhythm {r!r}")


def flutter_waves(t: np.ndarray, phase: float) -> np.ndarray:
    """Sawtooth flutter waves (slow descent, quick rise) at FLUTTER_RATE_BPM, ``[len(t)]`` of unit amplitude."""
    x = (t * FLUTTER_RATE_BPM / 60.0 + phase) % 1.0
    return np.where(x < 0.8, 0.5 - x / 0.8, -0.5 + (x - 0.8) / 0.2)


def spike_samples(t_spike: float, n0: int, n: int, fs: float) -> tuple[int, np.ndarray]:
    """A 0.5 ms unit stimulus as the samples ``[n0, n0 + n)`` see it (each sample averages its period).

    Returns ``(first index, weights)`` of the (at most 3) samples touched, or ``(0, empty)``."""
    half = 0.5 / fs
    lo_t, hi_t = t_spike, t_spike + SPIKE_WIDTH_S
    first = int(np.floor((lo_t - half) * fs)) + 0
    idx = np.arange(first, first + 4)
    a = np.maximum(idx / fs - half, lo_t)
    b = np.minimum(idx / fs + half, hi_t)
    w = np.clip(b - a, 0.0, None) / SPIKE_WIDTH_S
    keep = (idx >= n0) & (idx < n0 + n) & (w > 0)
    if not keep.any():
        return 0, np.zeros(0)
    idx, w = idx[keep], w[keep]
    return int(idx[0]), w * min(1.0, SPIKE_WIDTH_S * fs)
