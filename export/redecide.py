"""``ecg-export redecide``: change a bundle's rules, thresholds or ranking weight without retraining (contract 8.5).

A bundle's decision (``manifest.decision``: the rules and the criteria weight; ``labels[].threshold``) is data.
The export keeps, beside it, the cosine scores it computed on every validation and test window
(:data:`SCORES_FILE`, listed in the manifest's ``files`` and named in ``decision.scores``): int8 (what the
device runs) and fp32 (the reference) scores ``[N, n_labels]``, the ground truth and its known-label mask, the
split of each window and its contract-7 measurements. ``redecide`` re-applies changed rules, thresholds or
weight to those scores:

1. the new rules are parsed (a bad file is refused with one line naming the field); new thresholds are
   checked (label ids of the bundle, numbers in [-1, 1]);
2. the weight is kept, set (``--weight W``) or chosen again on the validation windows (``--weight auto``,
   :func:`export.decision.choose_decision`);
3. the parts of gate v2 (DESIGN.md contract 3) that depend on decisions are run again: condition 3 (finding
   decisions int8 vs fp32 on every window) with the new thresholds. The other conditions (embedding cosine,
   decisive top-1, top-5 and AUROC) depend on the encoder only and are kept as measured at export. Changing
   thresholds needs the fp32 scores: a bundle that has none (see below) refuses ``--thresholds``;
4. what the change does on the ground truth is measured (findings per window, micro precision and recall
   on the known labels, per split) before and after, and written to ``decision.redecided``;
5. the manifest is rewritten (decision block, thresholds, gate numbers), checked by loading it as the device
   would, re-signed (``--sign-key``, else this machine's key when the bundle was signed) and swapped into
   place; for the shipped default bundle, ``edge/bundles/default.sha256`` is updated.

Bundles exported before the scores were kept have no :data:`SCORES_FILE`: ``redecide`` computes the int8
scores once with the bundle's own encoder on the validation and test folds of the export's data (the
manifest's ``provenance.export_data``; ``--data`` overrides), and records that fp32 scores are unavailable.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.bundle.loader import default_bundle_path, load_bundle, manifest_sha256, write_manifest
from edge.bundle.signing import Trust
from edge.interpret.findings import FindingRules, load_rules_doc

from .decision import choose_decision
from .gate import Gate
from .onnx_export import ExportError

__all__ = ["SCORES_FILE", "DecisionScores", "decision_effect", "finding_agreement", "keep_decision_scores", "redecide",
           "redecide_main"]

logger = logging.getLogger(__name__)

SCORES_FILE = "decision_scores.npz"
SPLITS = ("validation", "test")


@dataclass
class DecisionScores:
    """Per-window cosine scores of the export's validation and test windows, with what they need to be judged."""

    int8: np.ndarray  # float32 [N, n_labels]: the device's encoder (the bundle's first int8 format)
    fp32: np.ndarray | None  # float32 [N, n_labels]: the fp32 reference; None where it was not kept
    targets: np.ndarray  # uint8 [N, <= n_labels]: ground truth (catalogue columns; labels added later have none)
    known: np.ndarray  # uint8 like targets: 1 where the window's sources state the label
    split: np.ndarray  # uint8 [N]: 0 validation, 1 test
    measurements: np.ndarray  # float32 [N, K]: contract-7 measurements of each raw window (NaN: not measured)
    measurement_keys: list[str]
    label_ids: list[str]  # the bundle's rows

    def save(self, path: str | Path) -> None:
        arrays = {
            "int8": self.int8.astype(np.float32),
            "targets": self.targets.astype(np.uint8),
            "known": self.known.astype(np.uint8),
            "split": self.split.astype(np.uint8),
            "measurements": self.measurements.astype(np.float32),
            "measurement_keys": np.array(self.measurement_keys, dtype=str),
            "label_ids": np.array(self.label_ids, dtype=str),
        }
        if self.fp32 is not None:
            arrays["fp32"] = self.fp32.astype(np.float32)
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str | Path, label_ids: Sequence[str]) -> DecisionScores:
        """Read and check a scores file against the bundle's label rows (one-line ``ExportError`` if it does not fit)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise ExportError(f"cannot read {path}: {exc}") from None
        need = {"int8", "targets", "known", "split", "measurements", "measurement_keys", "label_ids"}
        if need - set(data):
            raise ExportError(f"{path}: lacks {sorted(need - set(data))}")
        out = cls(data["int8"], data.get("fp32"), data["targets"], data["known"], data["split"],
                  data["measurements"], [str(k) for k in data["measurement_keys"]], [str(i) for i in data["label_ids"]])
        n = len(out.int8)
        if out.label_ids != list(label_ids):
            raise ExportError(f"{path}: its label rows are not the bundle's")
        shapes_ok = (out.int8.shape == (n, len(label_ids)) and (out.fp32 is None or out.fp32.shape == out.int8.shape)
                     and out.targets.shape[0] == n and out.known.shape == out.targets.shape and out.split.shape == (n,)
                     and out.measurements.shape == (n, len(out.measurement_keys)))
        if not shapes_ok:
            raise ExportError(f"{path}: arrays of inconsistent shapes")
        return out

    def measurement_dicts(self) -> list[dict]:
        from training.prepare import measurement_dicts

        return measurement_dicts(self.measurements, self.measurement_keys)

    def full_targets(self) -> tuple[np.ndarray, np.ndarray]:
        """Targets and known mask padded to every bundle row (labels added at export: unknown)."""
        pad = ((0, 0), (0, self.int8.shape[1] - self.targets.shape[1]))
        return np.pad(self.targets, pad).astype(bool), np.pad(self.known, pad).astype(bool)


def scores_entry(scores: DecisionScores, note: str | None = None) -> dict:
    """The manifest's ``decision.scores``: which file, how many windows per split, whether fp32 was kept."""
    entry = {"file": SCORES_FILE, "windows": {s: int((scores.split == i).sum()) for i, s in enumerate(SPLITS)},
             "int8": True, "fp32": scores.fp32 is not None}
    if note:
        entry["note"] = note
    return entry


# --- decisions on stored scores -----------------------------------------------------------------------
def _decide_all(rules: FindingRules, scores: np.ndarray, thresholds: np.ndarray, meas: list[dict],
                zero_shot: Sequence[bool] | None = None) -> np.ndarray:
    """bool [N, n_labels]: the stated findings of every window, by the device's decision (``edge.interpret.decide``)
    on the stored scores and global measurements. The rhythm analysis and the per-lead criteria need the raw
    window, which is not stored: here the rhythm labels are decided like the others and a per-lead criterion
    is unread (the model decides), so this is the effect of the change, not the device's exact output."""
    from edge.interpret.decide import decide

    out = np.zeros(scores.shape, dtype=bool)
    for i, (s, m) in enumerate(zip(scores, meas, strict=True)):
        d = decide(rules, s, thresholds, m, zero_shot=zero_shot)
        out[i, [rules.index[lid] for lid in [*d.findings, *d.zero_shot_findings]]] = True
    return out


def finding_agreement(ref: np.ndarray, q: np.ndarray, thresholds: np.ndarray, label_ids: Sequence[str]) -> dict:
    """Gate v2 condition 3 on stored scores: per-(window, label) decisions ``score >= threshold``, fp32 vs int8."""
    th = np.asarray(thresholds, dtype=np.float64)
    decides = np.isfinite(th)
    differ = (ref[:, decides] >= th[decides]) != (q[:, decides] >= th[decides])
    cols = np.flatnonzero(decides)
    return {"labels": int(decides.sum()), "pairs": int(differ.size), "changed": int(differ.sum()),
            "agreement": float(1.0 - differ.mean()) if differ.size else None,
            "changed_by_label": {label_ids[j]: int(c) for j, c in zip(cols, differ.sum(axis=0), strict=True) if c}}


def decision_effect(stated: np.ndarray, scores: DecisionScores) -> dict:
    """Per split: windows, findings per window, micro precision and recall of the stated findings on known labels."""
    truth, known = scores.full_targets()
    out = {}
    for i, name in enumerate(SPLITS):
        rows = scores.split == i
        s, t, k = stated[rows], truth[rows], known[rows]
        tp = int((s & t & k).sum())
        said, true = int((s & k).sum()), int((t & k).sum())
        out[name] = {"windows": int(rows.sum()), "findings_per_window": round(float(s.sum(axis=1).mean()), 3)
                     if rows.any() else None,
                     "precision": round(tp / said, 4) if said else None, "recall": round(tp / true, 4) if true else None,
                     "true_positives": tp, "stated_known": said, "true_known": true}
    return out


# --- scores for bundles exported before they were kept ----------------------------------------------
def compute_int8_scores(bundle_path: Path, manifest: Mapping, data: Sequence[str] = (), progress: bool = True
                        ) -> tuple[DecisionScores, str]:
    """int8 scores of the bundle's own encoder on the validation and test folds of its export data; and a note."""
    from edge.interpret.catalogue import load_catalogue
    from edge.runtime.engine import Classifier

    from .data import load_export_windows

    export_data = (manifest.get("provenance") or {}).get("export_data") or {}
    folds = export_data.get("folds") or {}
    if not data and not export_data.get("sources"):
        raise ExportError("the bundle does not say which data it was exported on; give it with --data KIND=PATH")
    catalogue = load_catalogue()
    trust = Trust(allow_unsigned=True, warn=False)
    with Classifier.from_bundle(bundle_path, trust=trust, warmup=False) as clf:
        ckpt = {"data": {"sources": export_data.get("sources") or [], "fingerprint": export_data.get("fingerprint"),
                         "train_folds": folds.get("calibration")},
                "signal_config": clf.signal, "label_ids": list(catalogue.ids)}
        from training.prepare import default_cache_dir

        from .data import checkpoint_sources

        cache = None if data else default_cache_dir(checkpoint_sources(ckpt), clf.signal)  # no training run here
        windows = load_export_windows(ckpt, bundle_path / "no-checkpoint", catalogue, data=data, cache=cache,
                                      calib_folds=folds.get("calibration"), val_folds=folds.get("validation") or (9,),
                                      test_folds=folds.get("test") or (10,), calib_windows=1, progress=progress)
        x = np.concatenate([windows.val_x, windows.test_x])
        emb = np.concatenate([clf.embed(x[i : i + 64]) for i in range(0, len(x), 64)])
        int8 = clf.score(emb).astype(np.float32)
    n_val = len(windows.val_x)
    split = np.r_[np.zeros(n_val, np.uint8), np.ones(len(windows.test_x), np.uint8)]
    targets = np.concatenate([windows.val_y, windows.test_y]).astype(np.uint8)
    known = np.concatenate([windows.val_known, windows.test_known]).astype(np.uint8)
    meas = np.concatenate([windows.val_measurements, windows.test_measurements]).astype(np.float32)
    same = windows.fingerprint == export_data.get("fingerprint")
    note = ("int8 scores computed after the export with the bundle's own encoder on the validation and test folds "
            f"{folds.get('validation')}/{folds.get('test')}; fp32 scores unavailable (the checkpoint is not kept "
            "with the bundle); prepared data fingerprint " + windows.fingerprint
            + ("" if same else f" (the export's was {export_data.get('fingerprint')}: the data was prepared again)"))
    return DecisionScores(int8, None, targets, known, split, meas, list(windows.measurement_keys),
                          [lb["id"] for lb in clf.labels]), note


# --- the command ---------------------------------------------------------------------------------------
def _read_thresholds(text: str, label_ids: Sequence[str]) -> dict[str, float]:
    """``ID=0.31,ID2=0.2`` or a JSON file ``{id: threshold}`` -> checked ``{id: threshold}``."""
    path = Path(text)
    if "=" not in text:  # a file (an inline list always has ID=VALUE)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ExportError(f"--thresholds {text}: {exc}") from None
        if not isinstance(raw, dict):
            raise ExportError(f"--thresholds {text}: expected a JSON object {{label id: threshold}}")
        items = list(raw.items())
    else:
        items = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise ExportError(f"--thresholds: {part!r} is not ID=VALUE")
            items.append((key.strip(), value.strip()))
    out = {}
    for key, value in items:
        if key not in label_ids:
            raise ExportError(f"--thresholds: {key!r} is not a label of the bundle")
        try:
            t = float(value)
        except (TypeError, ValueError):
            raise ExportError(f"--thresholds: {key}={value!r} is not a number") from None
        if not -1.0 <= t <= 1.0:
            raise ExportError(f"--thresholds: {key}={t:g} is outside the cosine range [-1, 1]")
        out[key] = t
    return out


def redecide(bundle: str | Path | None = None, rules: str | Path | None = None, thresholds: str | None = None,
             weight: str | float | None = None, sign_key: str | Path | None = None, data: Sequence[str] = (),
             progress: bool = True) -> dict:
    """Re-apply rules / thresholds / weight to ``bundle`` in place (see the module doc); returns the redecided block."""
    t0 = time.perf_counter()
    folder = Path(bundle) if bundle is not None else default_bundle_path()
    if not (folder / "manifest.json").is_file():
        raise ExportError(f"{folder}: not a bundle folder (no manifest.json); unzip a zipped bundle first")
    is_default = folder.resolve() == default_bundle_path().resolve()
    was_signed = (folder / "manifest.sig").is_file()
    with load_bundle(folder, verify=True, trust=Trust(allow_unsigned=True, warn=False)) as b:
        manifest, labels = copy.deepcopy(b.manifest), copy.deepcopy(b.labels)
    ids = [lb["id"] for lb in labels]
    decision = dict(manifest.get("decision") or {})
    note = None
    if (folder / SCORES_FILE).is_file():
        scores = DecisionScores.load(folder / SCORES_FILE, ids)
    else:
        logger.warning("%s has no %s: computing the int8 scores from the export's data once", folder, SCORES_FILE)
        scores, note = compute_int8_scores(folder, manifest, data, progress)
    meas = scores.measurement_dicts()
    # 1. the new rules and thresholds
    old_doc = decision.get("rules") or load_rules_doc()
    doc = load_rules_doc(rules) if rules is not None else old_doc
    try:
        new_rules = FindingRules(labels, doc)
    except ValueError as exc:  # the rules schema's one-line error names the field
        raise ExportError(f"--rules {rules}: {exc}") from None
    old_rules = FindingRules(labels, old_doc)
    old_th = np.array([np.inf if lb.get("threshold") is None else lb["threshold"] for lb in labels], np.float64)
    changed_th = _read_thresholds(thresholds, ids) if thresholds else {}
    if changed_th and scores.fp32 is None:
        raise ExportError("--thresholds needs the fp32 scores kept at export to run gate condition 3 again; this "
                          "bundle has int8 scores only: re-export it (make default-bundle for the shipped one)")
    new_th = old_th.copy()
    for key, t in changed_th.items():
        new_th[ids.index(key)] = t
    # 2. the weight
    old_weight = float(decision.get("criteria_weight", 0.0))
    val = scores.split == 0
    if weight in (None, ""):
        new_weight, table = old_weight, decision.get("validation")
    elif str(weight) == "auto":
        truth, known = scores.full_targets()
        chosen = choose_decision(scores.int8[val], truth[val], known[val], [m for m, v in zip(meas, val, strict=True)
                                 if v], labels)
        new_weight, table = chosen["criteria_weight"], chosen["validation"]
    else:
        try:
            new_weight = float(weight)
        except ValueError:
            raise ExportError(f"--weight {weight!r}: a number in [0, 1] or 'auto'") from None
        if not 0.0 <= new_weight <= 1.0:
            raise ExportError(f"--weight {new_weight:g}: outside [0, 1]")
        table = decision.get("validation")
    # 3. gate condition 3 again (the other conditions depend on the encoder only)
    quant = manifest.get("quantization") or {}
    gate_cfg = Gate(**{k: v for k, v in (quant.get("gate") or {}).items() if k in Gate.__dataclass_fields__})
    if scores.fp32 is not None:
        findings = finding_agreement(scores.fp32, scores.int8, new_th, ids)
        quant["findings"] = findings
        conds = (quant.get("gate") or {}).get("conditions") or {}
        ok = findings["agreement"] is None or findings["agreement"] >= gate_cfg.min_finding_agreement
        conds["findings"] = {"measured": findings["agreement"], "required": f">= {gate_cfg.min_finding_agreement:g}",
                             "passed": bool(ok), "short_by": None if ok else gate_cfg.min_finding_agreement
                             - findings["agreement"]}
        passed = all(c.get("passed", True) for c in conds.values())
        quant["passed"], quant["failed_conditions"] = passed, [k for k, c in conds.items() if not c.get("passed", True)]
        if not passed and not quant.get("accepted_below_gate"):
            raise ExportError(f"redecided finding decisions agree on {findings['agreement']:.4f} of "
                              f"{findings['pairs']} window-label pairs, gate v2 needs >= {gate_cfg.min_finding_agreement:g}")
        gate_note = "condition 3 (finding decisions) measured again on the stored fp32 and int8 scores"
    else:
        gate_note = ("thresholds unchanged: gate condition 3 stands as measured at export (it depends on thresholds "
                     "only); rules and weight do not enter gate v2's conditions")
    # 4. what the change does against the ground truth, int8 as on the device
    zs = [bool(lb.get("zero_shot", lb.get("new", False))) for lb in labels]
    after_int8 = _decide_all(new_rules, scores.int8, new_th, meas, zs)
    before = decision_effect(_decide_all(old_rules, scores.int8, old_th, meas, zs), scores)
    after = decision_effect(after_int8, scores)
    agree = None
    if scores.fp32 is not None:
        d8, d32 = after_int8, _decide_all(new_rules, scores.fp32, new_th, meas, zs)
        agree = float((d8 == d32).mean())
    # 5. the manifest
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    redecided = {"when": now, "rules_changed": doc != old_doc, "rules_file": None if rules is None else Path(rules).name,
                 "thresholds_changed": changed_th, "criteria_weight": {"before": old_weight, "after": new_weight},
                 "gate": {"passed": bool(quant.get("passed", True)), "note": gate_note},
                 "decided_findings_int8_vs_fp32": agree, "effect": {"before": before, "after": after},
                 "scores": scores_entry(scores, note)}
    decision["criteria_labels"] = [lid for lid in dict.fromkeys(str(c.get("label")) for c in doc.get("criteria", []))
                                   if lid in ids]
    decision.update(rules=doc, criteria_weight=new_weight, scores=scores_entry(scores, note),
                    redecided=[*(decision.get("redecided") or [])[-4:], redecided])
    if table is not None:
        decision["validation"] = table
    for lb, t in zip(labels, new_th, strict=True):
        lb["threshold"] = None if not np.isfinite(t) else round(float(t), 6)
    manifest.update(decision=decision, quantization=quant, labels=labels)
    _rewrite(folder, manifest, labels, scores, sign_key, was_signed)
    if is_default:
        pin = folder.with_suffix(".sha256")
        pin.write_text(manifest_sha256(folder) + "\n", encoding="ascii")
    redecided["seconds"] = round(time.perf_counter() - t0, 2)
    return redecided


def _rewrite(folder: Path, manifest: dict, labels: list[dict], scores: DecisionScores, sign_key, was_signed: bool
             ) -> None:  # noqa: ANN001 - sign_key: str | Path | None
    """Write the new manifest in a copy of the bundle, check it loads, sign it, swap it into place."""
    from .bundle_writer import sign_bundle, swap_into_place

    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.redecide-", dir=folder.parent))
    try:
        for p in folder.iterdir():
            if p.is_file() and p.name not in ("manifest.json", "manifest.sig"):
                shutil.copy2(p, work / p.name)
        scores.save(work / SCORES_FILE)
        (work / "labels.json").write_text(json.dumps(labels, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        manifest = {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version")}
        write_manifest(work, manifest)
        with load_bundle(work, verify=True, trust=Trust(allow_unsigned=True, warn=False)):
            pass  # validated as the device validates it (rules schema included)
        if sign_key is None and was_signed:
            from .signing import local_key

            sign_key = local_key()
        if sign_key is not None:
            sign_bundle(work, sign_key)
        for p in work.iterdir():
            p.chmod(0o644)
        work.chmod(0o755)
        swap_into_place(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def redecide_main(argv: list[str]) -> int:
    """``ecg-export redecide BUNDLE [--rules FILE] [--thresholds ...] [--weight W|auto] [--sign-key KEY]``."""
    p = argparse.ArgumentParser(
        prog="ecg-export redecide",
        description="Re-apply changed rules, thresholds or the ranking weight to an existing bundle, without "
        "retraining: from the validation and test scores kept with the export, run the decision-dependent part of "
        "gate v2 again, rewrite the manifest's decision block, re-sign, and (for the shipped default bundle) "
        "update its pinned sha256.",
        epilog="examples:\n  ecg-export redecide bundles/ward3 --rules my_rules.json\n"
        "  ecg-export redecide bundles/ward3 --thresholds LNGQT=0.30,1AVB=0.25 --weight auto\n"
        "  ecg-export redecide edge/bundles/default --rules edge/data/findings_rules.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, nargs="?", help="bundle folder (default: the shipped default bundle)")
    p.add_argument("--rules", type=Path, metavar="FILE", help="findings rules JSON (schema: edge.interpret.rules)")
    p.add_argument("--thresholds", metavar="ID=T,...|FILE.json", help="new per-label thresholds (cosine)")
    p.add_argument("--weight", metavar="W|auto", help="criteria weight of the ranking; auto: chosen on validation")
    p.add_argument("--sign-key", type=Path, metavar="KEY", help="sign with this key (default: this machine's key "
                   "when the bundle was signed)")
    p.add_argument("--data", action="append", default=[], metavar="KIND=PATH",
                   help="the export's data, only for a bundle without stored scores (default: its manifest's)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        out = redecide(args.bundle, args.rules, args.thresholds, args.weight, args.sign_key, args.data,
                       not args.quiet)
    except (ExportError, ValueError, OSError) as exc:
        print(f"ecg-export redecide: error: {' '.join(str(exc).split())[:800]}", file=sys.stderr)
        return 2
    eff = out["effect"]
    lines = [f"redecided {args.bundle or default_bundle_path()} in {out['seconds']:.1f} s: rules "
             f"{'changed' if out['rules_changed'] else 'unchanged'}, thresholds changed {len(out['thresholds_changed'])}, "
             f"weight {out['criteria_weight']['before']:g} -> {out['criteria_weight']['after']:g}; gate v2 "
             f"{'passed' if out['gate']['passed'] else 'FAILED'} ({out['gate']['note']})"]
    for split in SPLITS:
        b, a = eff["before"][split], eff["after"][split]
        lines.append(f"  {split:10s} {a['windows']:4d} windows: findings/window {b['findings_per_window']} -> "
                     f"{a['findings_per_window']}, precision {b['precision']} -> {a['precision']}, recall "
                     f"{b['recall']} -> {a['recall']} (known labels, int8)")
    print("\n".join(lines))
    return 0


def keep_decision_scores(folder: Path, q: np.ndarray, ref: np.ndarray, windows, labels) -> dict:  # noqa: ANN001
    """At export: write :data:`SCORES_FILE` into the bundle work folder from the int8 (``q``) and fp32 (``ref``)
    embeddings of the validation + test windows (``export.data.ExportWindows``, ``export.labels.LabelSet``);
    returns the manifest's ``decision.scores`` entry."""

    def cosines(e: np.ndarray) -> np.ndarray:
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)  # as the device scores
        return (e @ labels.embeddings.T).astype(np.float32)

    n_val, n_test = len(windows.val_x), len(windows.test_x)
    empty = np.zeros((n_val + n_test, 0), np.float32)
    meas = (empty if windows.val_measurements is None
            else np.concatenate([windows.val_measurements, windows.test_measurements]).astype(np.float32))
    known_parts = [windows.val_known, windows.test_known]
    targets = np.concatenate([windows.val_y, windows.test_y]).astype(np.uint8)
    known = (np.ones_like(targets) if any(k is None for k in known_parts)
             else np.concatenate(known_parts).astype(np.uint8))
    scores = DecisionScores(cosines(q), cosines(ref), targets, known,
                            np.r_[np.zeros(n_val, np.uint8), np.ones(n_test, np.uint8)], meas,
                            list(windows.measurement_keys) if windows.val_measurements is not None else [],
                            list(labels.ids))
    scores.save(Path(folder) / SCORES_FILE)
    return scores_entry(scores)
