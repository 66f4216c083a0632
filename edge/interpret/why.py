"""Why a statement was made (DESIGN.md contract 5 v3 ``why``): by the rhythm analysis, by a named criterion
with the values it read, or by the model with its cosine and threshold. Views render this; none guesses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Why", "BY_RHYTHM", "BY_CRITERIA", "BY_MODEL"]

BY_RHYTHM = "rhythm"
BY_CRITERIA = "criteria"
BY_MODEL = "model"
_BY = (BY_RHYTHM, BY_CRITERIA, BY_MODEL)


@dataclass(frozen=True)
class Why:
    """How one stated finding was decided.

    ``by``: ``"rhythm"`` (deterministic rhythm analysis), ``"criteria"`` (a published criterion on the
    window's measurements) or ``"model"`` (cosine at or above the label's threshold). ``rule`` names the
    criterion or rhythm rule, ``source`` its published source, ``values`` the measurements it read
    (mV, ms, bpm, degrees), ``score``/``threshold`` the model's cosine and the label's threshold.
    """

    by: str
    rule: str | None = None
    source: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    score: float | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.by not in _BY:
            raise ValueError(f"why.by must be one of {_BY}, not {self.by!r}")

    def to_json(self) -> dict:
        out: dict[str, Any] = {"by": self.by}
        if self.rule is not None:
            out["rule"] = self.rule
        if self.source is not None:
            out["source"] = self.source
        if self.values:
            out["values"] = dict(self.values)
        if self.score is not None:
            out["score"] = round(float(self.score), 4)
        if self.threshold is not None:
            out["threshold"] = round(float(self.threshold), 4)
        return out
