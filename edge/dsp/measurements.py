"""The typed measurements of a window (DESIGN.md contract 7 v2): :class:`Measurements`.

:func:`edge.dsp.measure.measure` returns one. It is a ``dict`` underneath (every key of contract 7, values
in bpm, ms, degrees, mV, mV·ms), so criteria code that reads ``m.get("qrs_ms")`` or ``m["leads"]["V1"]``
and every JSON writer keep working unchanged, with typed read-only attributes on top (``m.qrs_ms``,
``m.leads``) and :meth:`Measurements.to_json` for the contract-5 line. A value that cannot be measured is
``None`` and :meth:`Measurements.reason` says why.

Keys (contract 7 v2):

- global: ``hr_bpm, rr_ms, rr_irregularity, rhythm_regular, pr_ms, p_dur_ms, qrs_ms, qt_ms, qtc_ms
  (Bazett), qtcf_ms (Fridericia), axis_deg (QRS), p_axis_deg, t_axis_deg, p_present, ptf_v1`` (P-terminal
  force in V1, mV·ms: depth x duration of the P wave's terminal negative phase, 0 when it has none),
  the voltages ``sv1_mv, rv5_mv, rv6_mv, sv1_rv5_mv, ravl_mv, sv3_mv, limb_qrs_max_mv, chest_qrs_max_mv``
  and ``n_beats``;
- ``leads``: ``{lead name: {<LEAD_KEYS>: value}}`` for the leads measured, each with its own
  ``null_reasons``;
- ``beats``: R positions (samples at the window's ``fs``); ``beat_types`` / ``beat_p``: per beat the type
  (``N, S, V, P, Q``) and whether a P wave precedes it (``None``: cannot tell); ``paced``:
  ``{"atrial", "ventricular", "spikes"}``; ``p_present`` is one verdict with ``beat_p`` (``p_beats_share``: the
  share of dominant and supraventricular beats with a P wave), and ``pr_from`` says where a ``pr_ms`` came
  from (``"delineation"`` of the median beat, or ``"p_template"``: the beats' P template, where the
  delineator found no P onset);
- ``null_reasons``: ``{key: reason}`` for every ``None`` global value.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np

from edge.dsp.signal import LEADS

__all__ = ["GLOBAL_KEYS", "LEAD_KEYS", "Measurements", "combine_measurements"]

# The global values (None when not measurable), in display order. The first ones are contract 7 v1's.
GLOBAL_KEYS = (
    "hr_bpm",
    "rr_ms",
    "rr_irregularity",
    "rhythm_regular",
    "pr_ms",
    "qrs_ms",
    "qt_ms",
    "qtc_ms",
    "qtcf_ms",
    "axis_deg",
    "p_present",
    "sv1_mv",
    "rv5_mv",
    "rv6_mv",
    "sv1_rv5_mv",
    "ravl_mv",
    "sv3_mv",
    "limb_qrs_max_mv",
    "chest_qrs_max_mv",
    "n_beats",
    # contract 7 v2
    "p_dur_ms",
    "p_axis_deg",
    "t_axis_deg",
    "ptf_v1",
)
# Per lead (contract 7 v2): amplitudes relative to the PR baseline (mV), durations (ms), QRS area (mV·ms).
LEAD_KEYS = (
    "p_pos_mv",
    "p_neg_mv",
    "p_dur_ms",
    "q_mv",
    "q_ms",
    "r_mv",
    "r_ms",
    "s_mv",
    "s_ms",
    "r2_mv",
    "s2_mv",
    "qrs_ms",
    "qrs_area",
    "st_j_mv",
    "st_60_mv",
    "t_pos_mv",
    "t_neg_mv",
)


_PLAIN = frozenset({float, int, str, bool, type(None)})  # exactly these classes: returned as they are


def _plain(v):
    """A JSON-ready copy: nested dicts and lists copied, numpy scalars and arrays as Python values."""
    if v.__class__ in _PLAIN:  # most values (the per-lead matrix): no Mapping check through the ABC machinery
        return v
    if v.__class__ is dict:
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "tolist"):  # numpy scalar or array
        return v.tolist()
    return v


class Measurements(dict):
    """A window's measurements: a JSON-ready ``dict`` with typed attributes (see the module docstring).

    ``Measurements.empty(reason)`` has every value ``None`` with that reason.
    """

    __slots__ = ()

    @classmethod
    def empty(cls, reason: str) -> Measurements:
        m = cls({k: None for k in GLOBAL_KEYS})
        m.update(beats=[], beat_types=[], beat_p=[], leads={}, paced=None)
        m["null_reasons"] = {k: reason for k in GLOBAL_KEYS}
        return m

    @classmethod
    def from_json(cls, d: Mapping | None) -> Measurements | None:
        """From a contract-5 ``measurements`` object (missing keys are ``None``)."""
        if d is None:
            return None
        m = cls(copy.deepcopy(dict(d)))
        for k in GLOBAL_KEYS:
            m.setdefault(k, None)
        m.setdefault("null_reasons", {})
        m.setdefault("leads", {})
        return m

    def to_json(self) -> dict:
        """A plain ``dict`` copy for the contract-5 line (numpy scalars and arrays as Python values)."""
        return _plain(self)

    def reason(self, key: str) -> str | None:
        """Why ``key`` is ``None`` (``None`` when it was measured)."""
        return self.get("null_reasons", {}).get(key)

    def lead(self, name: str) -> dict:
        """The per-lead values of one lead (``{}`` when that lead was not measured)."""
        return self.get("leads", {}).get(name, {})

    # typed views of the values criteria and views read most
    hr_bpm = property(lambda self: self.get("hr_bpm"))
    rr_ms = property(lambda self: self.get("rr_ms"))
    pr_ms = property(lambda self: self.get("pr_ms"))
    p_dur_ms = property(lambda self: self.get("p_dur_ms"))
    qrs_ms = property(lambda self: self.get("qrs_ms"))
    qt_ms = property(lambda self: self.get("qt_ms"))
    qtc_ms = property(lambda self: self.get("qtc_ms"))
    qtcf_ms = property(lambda self: self.get("qtcf_ms"))
    axis_deg = property(lambda self: self.get("axis_deg"))
    p_axis_deg = property(lambda self: self.get("p_axis_deg"))
    t_axis_deg = property(lambda self: self.get("t_axis_deg"))
    ptf_v1 = property(lambda self: self.get("ptf_v1"))
    p_present = property(lambda self: self.get("p_present"))
    rhythm_regular = property(lambda self: self.get("rhythm_regular"))
    leads = property(lambda self: self.get("leads", {}))
    beats = property(lambda self: self.get("beats", []))
    paced = property(lambda self: self.get("paced"))
    null_reasons = property(lambda self: self.get("null_reasons", {}))


def combine_measurements(items: Sequence[Mapping | None]) -> Measurements | None:
    """One record's measurements from its windows': the median of each value measured in any window.

    ``rhythm_regular`` and ``p_present`` take the majority; the per-lead matrix is combined value by value
    the same way; ``paced`` takes the majority per chamber and the spikes' sum; the per-beat lists are
    dropped (window-relative).
    """
    items = [m for m in items if m]
    if not items:
        return None
    out = Measurements(_median_values(items, GLOBAL_KEYS))
    reasons = out.pop("null_reasons")
    leads: dict[str, dict] = {}
    for name in LEADS:
        rows = [m["leads"][name] for m in items if name in (m.get("leads") or {})]
        if rows:
            leads[name] = _median_values(rows, LEAD_KEYS)
    paced = [m["paced"] for m in items if isinstance(m.get("paced"), Mapping)]
    out["paced"] = None
    if paced:
        out["paced"] = {
            "atrial": sum(bool(p.get("atrial")) for p in paced) * 2 > len(paced),
            "ventricular": sum(bool(p.get("ventricular")) for p in paced) * 2 > len(paced),
            "spikes": int(sum(int(p.get("spikes") or 0) for p in paced)),
        }
    out.update(leads=leads, beats=[], beat_types=[], beat_p=[], null_reasons=reasons, windows=len(items))
    return out


def _median_values(items: Sequence[Mapping], keys: Sequence[str]) -> dict:
    """Per key: the median of the values given (majority for booleans, sum for ``n_beats``), with reasons."""
    out: dict = {}
    reasons: dict[str, str] = {}
    for k in keys:
        vals = [m.get(k) for m in items if m.get(k) is not None]
        if not vals:
            out[k] = None
            reasons[k] = next((m["null_reasons"][k] for m in items if k in (m.get("null_reasons") or {})), "")
        elif isinstance(vals[0], bool):
            out[k] = sum(vals) * 2 >= len(vals)
        elif k == "n_beats":
            out[k] = int(sum(vals))
        else:
            out[k] = round(float(np.median(vals)), 3 if k.endswith("_mv") or k == "rr_irregularity" else 1)
    out["null_reasons"] = reasons
    return out
