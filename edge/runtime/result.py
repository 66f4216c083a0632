"""What the runtime reports for one window or one record: typed, with ``to_json()`` (DESIGN.md contract 5 v3).

- :class:`Quality`: the signal-quality report of a window (``edge.dsp.quality.assess_window`` makes the dict,
  :meth:`Quality.from_dict` types it). Its keys are listed here once; views iterate :data:`QUALITY_PROBLEMS`.
- :class:`Finding`: one stated finding with its label names and its :class:`edge.interpret.why.Why`.
- :class:`Result`: the outcome of a window (or of a whole record): ``top`` ranked by the bundle's ranking,
  each with its **unmodified cosine** as ``score``; ``findings`` (the ids the display states; in a stream the
  steady set), ``window_findings`` (this window's own set), ``why`` for every stated id, ``rhythm``
  (contract 8; ``None`` until rhythm analysis runs), ``quality`` and ``measurements`` (contract 7).

``Quality`` and ``Result`` keep mapping-style reads of their JSON keys (``q["ok"]``, ``q.get("lead_off")``) so
code written against the version-2 dicts goes on working while it moves to the attributes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from edge.dsp.quality import PROBLEM_KEYS
from edge.interpret.why import Why

__all__ = [
    "RESULT_VERSION",
    "QUALITY_PROBLEMS",
    "Quality",
    "Finding",
    "Result",
    "now_iso",
]

RESULT_VERSION = 3  # contract 5 version of every JSON line

# Per-lead problems of a window, in display order: each is a list of lead names in the quality report.
QUALITY_PROBLEMS = PROBLEM_KEYS


def now_iso() -> str:
    """Local time with its UTC offset, to the millisecond (what a bedside log wants)."""
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="milliseconds")


_PLAIN = frozenset({float, int, str, bool, type(None)})  # exactly these classes (a subclass may have to_json)


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays, objects with ``to_json()``, nested dicts and lists -> plain JSON values."""
    if value.__class__ in _PLAIN:  # most values of a line (measurements): nothing to look up
        return value
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class _MappingReads:
    """Read-only mapping access to a dataclass's JSON keys (``x["ok"]``, ``x.get(key)``, ``key in x``)."""

    def to_json(self) -> dict:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        data = self.to_json()
        if key not in data:
            raise KeyError(key)
        return data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    def keys(self):  # noqa: ANN201 - dict_keys
        return self.to_json().keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())


@dataclass
class Quality(_MappingReads):
    """Signal quality of one raw window (``edge.dsp.quality``; contract 5).

    ``ok``: the window was classified. ``missing_samples``: samples that never arrived. The lead lists
    (:data:`QUALITY_PROBLEMS`): electrodes flagged off, flat, saturated or implausible channels.
    ``usable_leads``: the leads the window was read from (``None`` where the quality check does not say).
    ``inconsistent``: codes of limb-lead inconsistencies (``einthoven``, ``goldberger``, ``limb_reversal``,
    ``scale``). ``error``: why a window could not be assessed at all. ``windows``/``windows_ok``: for a
    whole record, how many windows it had and how many were classified. ``extra``: any other key the
    quality check reported, kept as is.
    """

    ok: bool
    missing_samples: int = 0
    lead_off: list[str] = field(default_factory=list)
    flat: list[str] = field(default_factory=list)
    saturated: list[str] = field(default_factory=list)
    implausible: list[str] = field(default_factory=list)
    usable_leads: list[str] | None = None
    inconsistent: list[str] = field(default_factory=list)
    error: str | None = None
    windows: int | None = None
    windows_ok: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, report: Mapping | Quality | None) -> Quality:
        """Type a quality report dict (as ``edge.dsp.quality`` returns it); a :class:`Quality` is returned as is."""
        if isinstance(report, Quality):
            return report
        if report is None:
            return cls(ok=False, error="no quality report")
        names = _QUALITY_FIELDS
        known = {k: report[k] for k in names if k in report}
        for key in (*QUALITY_PROBLEMS, "inconsistent"):
            if key in known:
                known[key] = [str(x) for x in known[key] or []]
        if known.get("usable_leads") is not None:
            known["usable_leads"] = [str(x) for x in known["usable_leads"]]
        extra = {k: v for k, v in report.items() if k not in names and k != "extra"}
        return cls(
            ok=bool(report.get("ok", False)), **{k: v for k, v in known.items() if k != "ok"}, extra=extra
        )

    def problems(self) -> dict[str, list[str]]:
        """The non-empty per-lead problem lists, in :data:`QUALITY_PROBLEMS` order."""
        return {key: list(getattr(self, key)) for key in QUALITY_PROBLEMS if getattr(self, key)}

    def failed(self, reason: str) -> Quality:
        """This report with ``ok`` false and ``error`` set (e.g. the signal contract refused the window)."""
        return Quality(
            **{**{f.name: getattr(self, f.name) for f in fields(self)}, "ok": False, "error": reason}
        )

    def to_json(self) -> dict:
        out: dict[str, Any] = {"ok": bool(self.ok), "missing_samples": int(self.missing_samples)}
        for key in QUALITY_PROBLEMS:
            out[key] = list(getattr(self, key))
        if self.usable_leads is not None:
            out["usable_leads"] = list(self.usable_leads)
        out["inconsistent"] = list(self.inconsistent)
        for key in ("error", "windows", "windows_ok"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(_jsonable(self.extra))
        return out


_QUALITY_FIELDS = tuple(f.name for f in fields(Quality) if f.name != "extra")  # read once, not per window


@dataclass(frozen=True)
class Finding:
    """One stated finding: its id, Japanese and English names, why it was stated, and whether the label was
    never trained (zero-shot: listed apart, marked 未検証)."""

    id: str
    ja: str
    en: str
    why: Why | None = None
    zero_shot: bool = False

    def to_json(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "ja": self.ja, "en": self.en, "zero_shot": self.zero_shot}
        if self.why is not None:
            out["why"] = self.why.to_json()
        return out


@dataclass
class Result:
    """The outcome of one window (or a whole record); :meth:`to_json` gives the contract-5 v3 line."""

    quality: Quality
    top: list[dict] = field(
        default_factory=list
    )  # [{"id", "ja", "en", "score" (cosine), "zero_shot"}], best first
    findings: list[str] = field(default_factory=list)  # the stated ids (a stream's steady set), best first
    window_findings: list[str] = field(default_factory=list)  # this window's own stated ids
    # stated findings of labels never trained (bundle label "zero_shot"), listed apart (contract 3)
    zero_shot_findings: list[str] = field(default_factory=list)
    why: dict[str, Why] = field(
        default_factory=dict
    )  # stated id (findings and zero-shot ones) -> how decided
    rhythm: Any = None  # edge.interpret.rhythm.Rhythm (with to_json()) once rhythm analysis runs; else None
    scores: np.ndarray | None = None  # float32 [n_labels] cosine similarities; None when skipped
    embedding: np.ndarray | None = None  # float32 [D] unit ECG embedding; None when skipped
    latency_ms: float = 0.0  # preprocessing + inference time of this window
    window_start_sample: int | None = None  # set by the stream / file loop
    fs: float | None = None  # sampling rate of the raw window
    bundle: str | None = None  # edge.runtime.engine.bundle_id()
    unsigned: bool = False  # the bundle loaded only with --allow-unsigned: every line says so (issue 25)
    measurements: Any = None  # contract 7 (edge.dsp.measure): a Measurements or a dict; None when skipped
    names: dict[str, tuple[str, str, bool]] = field(default_factory=dict)  # id -> (ja, en, zero_shot)
    # a stream's window's own measurements; ``measurements`` is then their running median (edge.runtime.stream)
    window_measurements: Any = None
    # statements withheld because a lead they need is missing or inconsistent: id -> reason (Japanese)
    withheld: dict[str, str] = field(default_factory=dict)
    # alarms (ST elevation by territory): [{"id", "territory", "territory_ja", "leads", "reciprocal", ...}]
    alarms: list[dict] = field(default_factory=list)  # edge.interpret.decide.Decision.alarms; views show them first

    def __post_init__(self) -> None:
        if not isinstance(self.quality, Quality):
            self.quality = Quality.from_dict(self.quality)

    @property
    def version(self) -> int:
        return RESULT_VERSION

    @property
    def skipped(self) -> bool:
        """True when the window was not classified (quality not ok)."""
        return self.scores is None

    def stated(self) -> list[Finding]:
        """The stated findings (``findings`` then ``zero_shot_findings``) with names and why, display order."""
        out = []
        for lid in [*self.findings, *self.zero_shot_findings]:
            ja, en, zero_shot = self.names.get(lid, (lid, lid, lid in self.zero_shot_findings))
            out.append(Finding(lid, ja, en, self.why.get(lid), zero_shot))
        return out

    def to_json(
        self,
        source: str | None = None,
        window_start_sample: int | None = None,
        fs: float | None = None,
        t: str | None = None,
        **extra,
    ) -> dict:
        """The contract-5 v3 line: ``version, t, source, window_start_sample, fs, top, findings, window_findings,
        why, rhythm, quality, measurements`` and the runtime's own keys; ``extra`` keys are added last."""
        start = self.window_start_sample if window_start_sample is None else window_start_sample
        rate = self.fs if fs is None else fs
        out = {
            "version": RESULT_VERSION,
            "t": t or now_iso(),
            "source": None if source is None else str(source),
            "window_start_sample": None if start is None else int(start),
            "fs": None if rate is None else (int(rate) if float(rate).is_integer() else float(rate)),
            "top": _jsonable(self.top),
            "findings": list(self.findings),
            "window_findings": list(self.window_findings),
            "zero_shot_findings": list(self.zero_shot_findings),
            "why": {lid: why.to_json() for lid, why in self.why.items()},
            "rhythm": _jsonable(self.rhythm),
            "quality": self.quality.to_json(),
            "withheld": dict(self.withheld),
            "alarms": _jsonable(self.alarms),
            "measurements": _jsonable(self.measurements),
            **({} if self.window_measurements is None else {"window_measurements": _jsonable(self.window_measurements)}),
            "skipped": self.skipped,
            "latency_ms": round(self.latency_ms, 3),
            "bundle": self.bundle,
        }
        if self.unsigned:
            out["unsigned"] = True
        out.update(extra)
        return out

    def to_json_dict(self, source: str, *args, **kwargs) -> dict:
        """Former name of :meth:`to_json` (kept for callers of version 2)."""
        return self.to_json(source, *args, **kwargs)
