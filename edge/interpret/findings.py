"""Consistent findings: the rules that turn thresholded label scores into what a clinician reads.

Thresholds alone let contradictory labels through together (complete and incomplete right bundle branch
block, first- and third-degree AV block, 低電位 beside 高電位, 正常心電図 beside 心房細動). The rules are
data (``edge/data/findings_rules.json``), written against the catalogue's ids and hierarchy:

- **exclusive groups**: one primary rhythm, one AV-block degree, complete *or* incomplete of a bundle
  branch block, left *or* right axis deviation, low *or* high voltage, ... A member is a label with all
  its descendants (``"RBBB"`` covers 完全右脚ブロック and 不完全右脚ブロック) or a list of labels (a family).
  Where findings of two members meet, the member holding the highest-scoring finding stays; a member
  decided by a measurement criterion (below) wins over scores. Groups apply in the file's order.
- **normal**: 正常心電図 is listed only beside its compatible labels (洞調律, 洞性不整脈); any other finding
  removes it.
- **parents**: a label implies its parents (完全左脚ブロック is a 左脚ブロック, a 脚ブロック, a 伝導障害), so a
  parent is not listed beside a more specific finding, unless named in ``keep_parents``.
- **criteria** (optional): labels defined by a measurement (heart rate, PR, QRS, QT, axis, voltages) can
  be decided from the measurements dict of :func:`edge.dsp.measure.measure` instead of, or as a veto on,
  their score: ``{"label": "STACH", "key": "hr_bpm", "min": 100, "mode": "decide"}`` (``mode``
  ``"decide"``: inside the range the label is a finding, outside it is not; ``"veto"``: outside the range
  the label is removed, inside the score decides). A missing or ``None`` measurement leaves the score to
  decide. Criteria may also be given as callables ``measurements -> True | False | None``.

numpy and the standard library only: this runs on the bedside device.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["FindingRules", "Decision", "load_rules_doc", "RULES_FILE"]

RULES_FILE = "findings_rules.json"
Criterion = Callable[[Mapping], "bool | None"]


def load_rules_doc(path: str | Path | None = None) -> dict:
    """The rules document: the shipped ``edge/data/findings_rules.json`` or the JSON file at ``path``."""
    if path is None:
        text = resources.files("edge").joinpath("data", RULES_FILE).read_text(encoding="utf-8")
        source = f"edge/data/{RULES_FILE}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read findings rules {path}: {exc.strerror or exc}") from None
        source = str(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("exclusive", []), list):
        raise ValueError(f"{source}: expected an object with an 'exclusive' list")
    return doc


def _combine(verdicts: list, need_all: bool) -> bool | None:
    """``all``: false if one is false, unknown if one is unknown, else true; ``any``: the mirror image."""
    if need_all:
        return False if False in verdicts else (None if None in verdicts else True)
    return True if True in verdicts else (None if None in verdicts else False)


def _condition(cond: Mapping, measurements: Mapping) -> bool | None:
    """``{"key", "min", "max"}``: min <= value < max; ``None`` when the value was not measured.
    ``{"all": [...]}`` / ``{"any": [...]}`` nest conditions."""
    if "all" in cond or "any" in cond:
        parts = cond.get("all") or cond.get("any")
        return _combine([_condition(c, measurements) for c in parts], "all" in cond)
    value = measurements.get(cond["key"])
    if value is None:
        return None
    lo, hi = cond.get("min"), cond.get("max")
    return bool((lo is None or value >= lo) and (hi is None or value < hi))


def _range_criterion(spec: Mapping) -> Criterion:
    """A criterion from its JSON: one condition (``key``/``min``/``max``), or ``all`` / ``any`` of several.

    ``all``: true when every condition holds, false when one fails, else unknown. ``any``: true when one
    holds, false when all fail, else unknown. ``mode`` ``"decide"`` returns that verdict; ``"veto"`` only
    its false (outside the range the label is removed, inside the score decides).
    """
    mode = spec.get("mode", "decide")
    if mode not in ("decide", "veto"):
        raise ValueError(
            f"criterion for {spec.get('label')!r}: mode must be 'decide' or 'veto', got {mode!r}"
        )
    if "all" in spec or "any" in spec:
        conds, need_all = list(spec.get("all") or spec.get("any")), "all" in spec
    else:
        conds, need_all = [spec], True
    def check(cond: object) -> None:
        if isinstance(cond, Mapping) and ("all" in cond or "any" in cond):
            parts = cond.get("all") or cond.get("any")
            if not isinstance(parts, list) or not parts:
                raise ValueError(f"criterion for {spec.get('label')!r}: 'all'/'any' needs a list of conditions")
            for part in parts:
                check(part)
        elif not isinstance(cond, Mapping) or not isinstance(cond.get("key"), str):
            raise ValueError(f"criterion for {spec.get('label')!r}: each condition needs a 'key'")

    for cond in conds:
        check(cond)

    def criterion(measurements: Mapping) -> bool | None:
        verdict = _combine([_condition(c, measurements) for c in conds], need_all)
        if mode == "veto":
            return None if verdict is not False else False
        return verdict

    return criterion


@dataclass
class Decision:
    """Kept finding indices (best first) and why each other above-threshold label was removed."""

    kept: list[int]
    removed: dict[int, str] = field(
        default_factory=dict
    )  # label index -> reason (rule name or "parent of X")


class FindingRules:
    """The rules bound to one label set (a bundle's rows): ``decide`` and ``contradictions``.

    ``labels`` are dicts with ``id`` and optionally ``parents`` (as in a bundle's ``labels.json``); rule
    ids absent from the label set are ignored, so a hospital catalogue with fewer labels works.
    """

    def __init__(
        self,
        labels: Sequence[Mapping],
        doc: Mapping | None = None,
        criteria: Mapping[str, Criterion] | None = None,
    ) -> None:
        doc = load_rules_doc() if doc is None else doc
        self.ids = [str(lb["id"]) for lb in labels]
        self.index = {lid: i for i, lid in enumerate(self.ids)}
        parents = {str(lb["id"]): [p for p in (lb.get("parents") or []) if p in self.index] for lb in labels}
        ancestor_ids = [self._walk(lid, parents) for lid in self.ids]
        self.ancestors = [{self.index[a] for a in anc} for anc in ancestor_ids]  # per label index
        children: dict[str, set[str]] = {lid: set() for lid in self.ids}
        for lid, anc in zip(self.ids, ancestor_ids, strict=True):
            for a in anc:
                children[a].add(lid)
        self._descendants = {lid: {self.index[c] for c in kids} for lid, kids in children.items()}
        self.groups: list[tuple[str, list[set[int]]]] = []
        for group in doc.get("exclusive", []):
            members = [m for m in (self._member(spec) for spec in group["members"]) if m]
            if len(members) > 1:
                self.groups.append((str(group["name"]), members))
        normal = doc.get("normal") or {}
        self.normal = self.index.get(normal.get("label", ""))
        self.normal_ok = {self.index[c] for c in normal.get("compatible", []) if c in self.index}
        self.keep_parents = {self.index[p] for p in doc.get("keep_parents", []) if p in self.index}
        self.criteria: dict[int, Criterion] = {}
        for spec in doc.get("criteria", []):
            if spec.get("label") in self.index:
                self.criteria[self.index[spec["label"]]] = _range_criterion(spec)
        for lid, fn in (criteria or {}).items():
            if lid in self.index:
                self.criteria[self.index[lid]] = fn

    @classmethod
    def for_labels(
        cls,
        labels: Sequence[Mapping],
        path: str | Path | None = None,
        criteria: Mapping[str, Criterion] | None = None,
    ) -> FindingRules:
        """Rules from the shipped file (or ``path``) bound to ``labels``."""
        return cls(labels, load_rules_doc(path), criteria)

    @classmethod
    def from_manifest(cls, labels: Sequence[Mapping], manifest: Mapping) -> tuple[FindingRules, float]:
        """A bundle's rules and criteria weight (its manifest's ``decision`` block; else the shipped rules, 0)."""
        decision = manifest.get("decision") or {}
        doc = decision.get("rules")
        rules = cls(labels, doc) if doc else cls.for_labels(labels)
        return rules, float(decision.get("criteria_weight", 0.0))

    @staticmethod
    def _walk(lid: str, parents: Mapping[str, list[str]]) -> set[str]:
        seen: set[str] = set()
        stack = list(parents.get(lid, []))
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(parents.get(node, []))
        return seen

    def _member(self, spec) -> set[int]:
        names = [spec] if isinstance(spec, str) else list(spec)
        out: set[int] = set()
        for name in names:
            if name in self.index:
                out.add(self.index[name])
                out |= self._descendants[name]
        return out

    def measured(self, measurements: Mapping | None) -> dict[int, bool]:
        """Label index -> True (finding) / False (not a finding) for labels a criterion decides."""
        if not measurements or not self.criteria:
            return {}
        out = {}
        for i, fn in self.criteria.items():
            verdict = fn(measurements)
            if verdict is not None:
                out[i] = bool(verdict)
        return out

    def adjust(self, scores: np.ndarray, measurements: Mapping | None, weight: float) -> np.ndarray:
        """Ranking scores: ``score + weight`` where a measurement criterion holds, ``- weight`` where it fails.

        The ranking stays the contrastive one (labels scored against their text embeddings, new labels
        zero-shot); a label defined by a measurement moves up when the measurement meets its definition
        and down when it contradicts it. ``weight`` is chosen on validation data and stored in the bundle.
        """
        scores = np.asarray(scores, dtype=np.float32)
        if not weight or not measurements or not self.criteria:
            return scores
        out = scores.copy()
        for i, verdict in self.measured(measurements).items():
            out[i] += weight if verdict else -weight
        return out

    def decide_explained(
        self, scores: np.ndarray, thresholds: np.ndarray, measurements: Mapping | None = None
    ) -> Decision:
        """Apply thresholds, criteria and the rules to one window's scores."""
        scores = np.asarray(scores, dtype=np.float64)
        above = scores >= np.asarray(thresholds, dtype=np.float64)  # NaN thresholds never fire
        verdicts = self.measured(measurements)
        found = set(np.flatnonzero(above).tolist())
        removed: dict[int, str] = {}
        for i, verdict in verdicts.items():
            if verdict:
                found.add(i)
            elif i in found:
                found.discard(i)
                removed[i] = "measurement"
        forced = {i for i, v in verdicts.items() if v}
        for name, members in self.groups:
            present = [(m, m & found) for m in members if m & found]
            if len(present) < 2:
                continue
            best = max(present, key=lambda mp: (bool(mp[1] & forced), max(scores[i] for i in mp[1])))
            for m, hits in present:
                if m is not best[0]:
                    for i in hits - best[0]:
                        found.discard(i)
                        removed[i] = name
        if self.normal is not None and self.normal in found and found - self.normal_ok - {self.normal}:
            found.discard(self.normal)
            removed[self.normal] = "normal"
        implied = set()
        for i in found:
            implied |= self.ancestors[i] & found
        for i in implied - self.keep_parents:
            found.discard(i)
            removed[i] = "parent"
        kept = sorted(found, key=lambda i: (-scores[i], i))
        return Decision(kept, removed)

    def decide(
        self, scores: np.ndarray, thresholds: np.ndarray, measurements: Mapping | None = None
    ) -> list[int]:
        """Indices of the findings of one window, best score first."""
        return self.decide_explained(scores, thresholds, measurements).kept

    def contradictions(self, ids: Sequence[str]) -> list[tuple[str, str, str]]:
        """Pairs of labels in ``ids`` that the rules forbid together: ``(a, b, rule)``."""
        idx = {self.index[i] for i in ids if i in self.index}
        pairs = []
        for name, members in self.groups:
            hit = [sorted(m & idx) for m in members]
            for a in range(len(hit)):
                for b in range(a + 1, len(hit)):
                    pairs += [(self.ids[x], self.ids[y], name) for x in hit[a] for y in hit[b] if x != y]
        if self.normal is not None and self.normal in idx:
            pairs += [
                (self.ids[self.normal], self.ids[j], "normal")
                for j in sorted(idx - self.normal_ok - {self.normal})
                if j not in self.ancestors[self.normal]
            ]
        return pairs

    def most_specific(self, ids: Sequence[str]) -> list[str]:
        """``ids`` without the labels that are ancestors of another label in ``ids`` (how findings are listed)."""
        idx = {self.index[i] for i in ids if i in self.index}
        implied = set()
        for i in idx:
            implied |= self.ancestors[i] & idx
        keep = (idx - implied) | (implied & self.keep_parents)
        return [self.ids[i] for i in sorted(keep)]
