"""The manifest's ``decision`` block checked once, at load (DESIGN.md contract 3 and 8.5): one-line errors.

A bundle's rules must be refused when it is loaded, never raise at the first window (a crash loop under
systemd). Rules documents of the current version (``edge.interpret.rules.RULES_VERSION``) go through that
module's schema (``parse_rules``: unknown keys, wrong types, misspelt measurement keys). Bundles exported
before it carry version-1 rules (``edge.interpret.findings``): their shape is checked here, strictly (the
keys that version reads, numbers where it compares numbers, either ``key`` or ``all``/``any``), since the
runtime still reads them. Either way the runtime's own rule object is then built once, as the engine will.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["validate_decision"]

V1_TOP = {
    "version",
    "about",
    "exclusive",
    "rhythm_modifiers",
    "normal",
    "keep_parents",
    "criteria",
    "criteria_about",
}
V1_GROUP = {"name", "ja", "members", "note", "about"}
V1_NORMAL = {"label", "compatible", "note"}
V1_CRITERION = {"label", "mode", "key", "min", "max", "all", "any", "name", "source", "note", "about"}
V1_CONDITION = {"key", "min", "max", "all", "any", "note"}
MAX_DEPTH = 8


class _Bad(ValueError):
    pass


def _strs(v: Any, where: str) -> None:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _Bad(f"{where}: must be a list of label ids")


def _keys(v: Any, allowed: set[str], where: str) -> Mapping:
    if not isinstance(v, Mapping):
        raise _Bad(f"{where}: must be an object, got {type(v).__name__}")
    unknown = sorted(str(k) for k in v if k not in allowed)
    if unknown:
        raise _Bad(f"{where}.{unknown[0][:40]}: unknown key (allowed: {', '.join(sorted(allowed))})")
    return v


def _condition(c: Any, where: str, depth: int, allowed: set[str]) -> None:
    if depth > MAX_DEPTH:
        raise _Bad(f"{where}: conditions nested deeper than {MAX_DEPTH}")
    c = _keys(c, allowed, where)
    nested = [k for k in ("all", "any") if k in c]
    if len(nested) > 1 or (nested and "key" in c):
        raise _Bad(
            f"{where}: give one of key, all, any (not {', '.join(k for k in ('key', 'all', 'any') if k in c)})"
        )
    if nested and ("min" in c or "max" in c):
        raise _Bad(
            f"{where}: min/max beside {nested[0]} would be ignored; put them in a condition with a key"
        )
    if nested:
        parts = c[nested[0]]
        if not isinstance(parts, list) or not parts:
            raise _Bad(f"{where}.{nested[0]}: must be a non-empty list of conditions")
        for i, part in enumerate(parts):
            _condition(part, f"{where}.{nested[0]}[{i}]", depth + 1, V1_CONDITION)
        return
    if not isinstance(c.get("key"), str):
        raise _Bad(f"{where}.key: each condition needs a measurement key (a string)")
    for bound in ("min", "max"):
        if bound in c and c[bound] is not None:
            v = c[bound]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise _Bad(f"{where}.{bound}: must be a finite number, got {str(v)[:20]!r}")


def _v1(doc: Mapping) -> None:
    doc = _keys(doc, V1_TOP, "decision.rules")
    groups = doc.get("exclusive", [])
    if not isinstance(groups, list):
        raise _Bad("decision.rules.exclusive: must be a list of groups")
    for i, g in enumerate(groups):
        where = f"decision.rules.exclusive[{i}]"
        g = _keys(g, V1_GROUP, where)
        if not isinstance(g.get("name"), str):
            raise _Bad(f"{where}.name: must be a string")
        members = g.get("members")
        if not isinstance(members, list) or not all(
            isinstance(m, str) or (isinstance(m, list) and all(isinstance(x, str) for x in m))
            for m in members
        ):
            raise _Bad(f"{where}.members: must be a list of label ids or lists of label ids")
    if "normal" in doc:
        normal = _keys(doc["normal"], V1_NORMAL, "decision.rules.normal")
        if "label" in normal and not isinstance(normal["label"], str):
            raise _Bad("decision.rules.normal.label: must be a label id")
        _strs(normal.get("compatible", []), "decision.rules.normal.compatible")
    _strs(doc.get("keep_parents", []), "decision.rules.keep_parents")
    criteria = doc.get("criteria", [])
    if not isinstance(criteria, list):
        raise _Bad("decision.rules.criteria: must be a list")
    for i, spec in enumerate(criteria):
        where = f"decision.rules.criteria[{i}]"
        spec = _keys(spec, V1_CRITERION, where)
        if not isinstance(spec.get("label"), str):
            raise _Bad(f"{where}.label: must be a label id")
        if spec.get("mode", "decide") not in ("decide", "veto"):
            raise _Bad(f"{where}.mode: must be 'decide' or 'veto', got {str(spec.get('mode'))[:20]!r}")
        _condition({k: v for k, v in spec.items() if k in V1_CONDITION}, where, 0, V1_CONDITION)


def validate_decision(decision: Mapping, manifest: Mapping) -> str | None:
    """None if the decision block's rules are sound; else a one-line problem naming the field."""
    rules = decision.get("rules")
    if rules is None:
        return None
    if not isinstance(rules, Mapping):
        return "decision.rules: must be an object"
    try:
        version = rules.get("version", 1)
        from edge.interpret.rules import RULES_VERSION, parse_rules

        if version == RULES_VERSION:
            parse_rules(rules, "decision.rules")
        elif version == 1:
            _v1(rules)
        else:
            return f"decision.rules.version: {str(version)[:20]} is not a rules version this runtime reads"
        from edge.interpret.findings import FindingRules

        FindingRules.from_manifest(manifest["labels"], manifest)  # what the engine builds from it
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        text = " ".join(str(exc).split())[:200]
        return text if text.startswith("decision.rules") else f"decision.rules: {text}"
    return None
