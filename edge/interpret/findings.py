"""The structural rules bound to a label set: exclusive groups, 正常心電図, the hierarchy, and the ranking.

:class:`FindingRules` binds a parsed rules document (:mod:`edge.interpret.rules`, the schema) to one label set
(a bundle's rows, with the catalogue's ``parents``):

- **exclusive groups**: one primary rhythm, one AV-block degree, complete *or* incomplete of a bundle branch
  block, ... A member is a label with all its descendants or a list of labels. Where findings of two members
  meet, a member stated by the rhythm analysis or a criterion wins over scores (ties: the member listed
  first), else the highest-scoring finding's member stays.
- **normal**: 正常心電図 is listed only beside its compatible labels.
- **parents**: a label implies its parents; a parent is not listed beside a more specific finding, unless
  named in ``keep_parents``.
- **ranking** (:meth:`FindingRules.adjust`): the cosine moved by the bundle's criteria weight where a
  label's criteria are met (+) or clearly not met (-); the model keeps the ranking, new labels work zero-shot.

The full decision of a window (rhythm, criteria, model, withheld statements, ``why``) is
:func:`edge.interpret.decide.decide`; :meth:`FindingRules.decide` here is the same without a rhythm
analysis or quality, for training-time evaluation.

numpy and the standard library only: this runs on the bedside device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.interpret.criteria import Reading
from edge.interpret.criteria_plan import plan
from edge.interpret.rules import (
    RULES_FILE,
    Rules,
    check_manifest_rules,
    load_rules,
    parse_rules,
    read_rules_doc,
)

__all__ = ["FindingRules", "Resolved", "load_rules_doc", "label_verdicts", "NOT_READ", "RULES_FILE"]

logger = logging.getLogger(__name__)
Criterion = Callable[[Mapping], "bool | None"]
NOT_READ = object()  # in a list of criteria verdicts (``oks``): this criterion was not evaluated


def load_rules_doc(path: str | Path | None = None) -> dict:
    """The rules document (JSON) of the shipped file or ``path``, checked against the schema."""
    doc = read_rules_doc(path)
    parse_rules(doc, "rules" if path is None else str(path))
    return doc


def label_verdicts(
    rules: Rules,
    measurements: Mapping | None,
    sex: str | None = None,
    age: float | None = None,
    labels: Iterable[str] | None = None,
    oks: Sequence | None = None,
) -> dict[str, bool]:
    """Label id -> True (a ``decide``/``state`` criterion met) / False (vetoed, or every ``decide`` criterion
    clearly not met); labels left to the model are absent. ``not_with`` is not applied here (see decide).
    ``oks``: verdicts already read of these measurements for this patient group (``rules.criteria`` order,
    :data:`NOT_READ` where not), e.g. by :func:`edge.interpret.decide.decide`; the others are read here."""
    if not measurements:
        return {}
    wanted = None if labels is None else labels if isinstance(labels, Mapping | set | frozenset) else set(labels)
    reading = Reading(measurements, sex, age, values=False)  # one reading of the window, shared by the criteria
    per: dict[str, list] = {}
    vals = reading.v
    fns = plan(rules.criteria, sex, age)
    if oks is None or len(oks) != len(fns):
        oks = [NOT_READ] * len(fns)
    for c, fn, ok in zip(rules.criteria, fns, oks, strict=True):
        if wanted is None or c.label in wanted:
            per.setdefault(c.label, []).append((c, fn(vals) if ok is NOT_READ else ok))
    out = {}
    for label, items in per.items():  # one pass per label: a veto, else a met criterion, else every decide failing
        vetoed = met = False
        decide = decide_fail = 0
        for c, ok in items:
            mode = c.mode
            fails = ok is False or (ok is None and c.unmeasured_veto)
            if mode == "veto":
                if fails:
                    vetoed = True
                    break
            elif mode == "decide" or mode == "state":
                if ok:
                    met = True
                if mode == "decide":
                    decide += 1
                    decide_fail += bool(fails)
        if vetoed:
            out[label] = False
        elif met:
            out[label] = True
        elif decide and decide_fail == decide:
            out[label] = False
    return out


@dataclass
class Resolved:
    """Kept finding indices (best first) and why each other above-threshold label was removed."""

    kept: list[int]
    removed: dict[int, str] = field(
        default_factory=dict
    )  # label index -> "measurement", group, "normal", "parent"


Decision = Resolved  # the name this had before edge.interpret.decide.Decision


class FindingRules:
    """The rules bound to one label set (a bundle's rows).

    ``labels`` are dicts with ``id`` and optionally ``parents``; rule ids absent from the label set are
    ignored, so a hospital catalogue with fewer labels works. ``doc`` is a rules document (JSON dict) or
    parsed :class:`~edge.interpret.rules.Rules`; ``criteria`` adds callables ``measurements -> True | False |
    None`` that decide a label (tests, experiments).
    """

    def __init__(
        self,
        labels: Sequence[Mapping],
        doc: Mapping | Rules | None = None,
        criteria: Mapping[str, Criterion] | None = None,
    ) -> None:
        if isinstance(doc, Rules):
            rules = doc
        else:  # a document of an older schema version (a bundle exported before it): the shipped rules
            rules = (None if doc is None else check_manifest_rules(doc, "rules")) or load_rules()
        self.parsed = rules
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
        for group in rules.exclusive:
            members = [m for m in (self._member(spec) for spec in group.members) if m]
            if len(members) > 1:
                self.groups.append((group.name, members))
        self._groups_of: dict[int, list[int]] = {}  # label index -> the groups with a member holding it
        for g, (_, members) in enumerate(self.groups):
            for i in set().union(*members):
                self._groups_of.setdefault(i, []).append(g)
        self.normal = self.index.get(rules.normal or "")
        self.normal_ok = {self.index[c] for c in rules.normal_compatible if c in self.index}
        self.keep_parents = {self.index[p] for p in rules.keep_parents if p in self.index}
        self.rhythm_labels = {self.index[r] for r in rules.rhythm_labels if r in self.index}
        self.criteria_labels = {self.index[c.label] for c in rules.criteria if c.label in self.index}
        self.extra: dict[int, Criterion] = {
            self.index[k]: fn for k, fn in (criteria or {}).items() if k in self.index
        }

    @property
    def criteria(self) -> dict[int, object]:
        """Label index -> its criteria (the labels a measurement can decide or veto)."""
        out: dict[int, object] = {}
        for c in self.parsed.criteria:
            if c.label in self.index:
                out.setdefault(self.index[c.label], []).append(c)
        out.update(self.extra)
        return out

    @classmethod
    def for_labels(
        cls,
        labels: Sequence[Mapping],
        path: str | Path | None = None,
        criteria: Mapping[str, Criterion] | None = None,
    ) -> FindingRules:
        """Rules from the shipped file (or ``path``) bound to ``labels``."""
        return cls(labels, load_rules(path), criteria)

    @classmethod
    def from_manifest(cls, labels: Sequence[Mapping], manifest: Mapping) -> tuple[FindingRules, float]:
        """A bundle's rules and criteria weight (its manifest's ``decision`` block). A manifest without rules,
        or with rules of an older schema version, gets the shipped rules (logged); weight 0 without a block."""
        decision = manifest.get("decision") or {}
        doc = decision.get("rules")
        parsed = check_manifest_rules(doc) if doc else None
        if doc and parsed is None:
            logger.info("bundle rules are schema version %s: the shipped rules are used", doc.get("version"))
        return cls(labels, parsed), float(decision.get("criteria_weight", 0.0))

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

    def measured(
        self, measurements: Mapping | None, sex: str | None = None, age: float | None = None,
        oks: Sequence | None = None,
    ) -> dict[int, bool]:
        """Label index -> True (a criterion states it) / False (the measurements say it is not); ``oks``: the
        criteria's verdicts already read (:func:`label_verdicts`)."""
        if not measurements:
            return {}
        out = {
            self.index[k]: v
            for k, v in label_verdicts(self.parsed, measurements, sex, age, self.index, oks).items()
        }
        for i, fn in self.extra.items():
            verdict = fn(measurements)
            if verdict is not None:
                out[i] = bool(verdict)
        return out

    def adjust(
        self, scores: np.ndarray, measurements: Mapping | None, weight: float, oks: Sequence | None = None
    ) -> np.ndarray:
        """Ranking scores: ``score + weight`` where a label's criteria are met, ``- weight`` where they fail.

        The ranking stays the contrastive one (labels scored against their text embeddings, new labels
        zero-shot); ``weight`` is chosen on validation data and stored in the bundle. ``oks``: the criteria's
        verdicts on these measurements without sex/age already read (``Decision.criteria_oks``), else read here.
        """
        scores = np.asarray(scores, dtype=np.float32)
        if not weight or not measurements:
            return scores
        out = scores.copy()
        for i, verdict in self.measured(measurements, oks=oks).items():
            out[i] += weight if verdict else -weight
        return out

    def resolve(
        self, found: set[int], scores: np.ndarray, forced: set[int], removed: dict[int, str] | None = None
    ) -> Resolved:
        """Exclusive groups, normal and parents applied to ``found``; ``forced`` members win their groups."""
        found, removed = set(found), dict(removed or {})
        touched = sorted({g for i in found for g in self._groups_of.get(i, ())})  # the groups found labels meet
        for name, members in (self.groups[g] for g in touched):
            present = [(k, m, hits) for k, m in enumerate(members) if (hits := m & found)]
            if len(present) < 2:
                continue
            best = max(
                present,
                key=lambda kmh: (
                    bool(kmh[2] & forced),
                    -kmh[0] if kmh[2] & forced else 0,
                    max(scores[i] for i in kmh[2]),
                ),
            )
            for _, m, hits in present:
                if m is not best[1]:
                    for i in hits - best[1]:
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
        return Resolved(kept, removed)

    def decide_explained(
        self, scores: np.ndarray, thresholds: np.ndarray, measurements: Mapping | None = None
    ) -> Resolved:
        """Thresholds, criteria and the rules on one window's scores (no rhythm analysis, no quality)."""
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
        return self.resolve(found, scores, {i for i, v in verdicts.items() if v}, removed)

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
