"""Readable descriptions of a bundle (``ecg-edge info``) and of its labels (``ecg-edge labels --bundle``).

Pure formatting of what ``edge.bundle.loader.load_bundle`` verified: nothing here changes or trusts anything
beyond the manifest. Manifest sections written by the exporter that this module does not know are
shown as nested ``key: value`` lines, so new fields appear without a change here.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from edge.bundle.loader import Bundle
from edge.views.terminal import display_width, pad

__all__ = [
    "BACKEND_OF",
    "describe_bundle",
    "filter_labels",
    "bundle_label_rows",
    "format_sizes",
    "gate_lines",
    "human_bytes",
    "zero_shot_note",
]

# device model (manifest["models"] key) -> the ecg-edge --backend that runs it
BACKEND_OF = {"onnx_int8": "onnx (onnxruntime)", "tflite_int8": "litert (LiteRT)"}


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _nested(value, indent: int = 4) -> list[str]:  # noqa: ANN001 - any JSON value
    pad_ = " " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, dict) and v:
                lines.append(f"{pad_}{k}:")
                lines += _nested(v, indent + 2)
            else:
                lines.append(f"{pad_}{k}: {_short(v)}")
        return lines or [f"{pad_}-"]
    return [f"{pad_}{_short(value)}"]


def _short(v) -> str:  # noqa: ANN001
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list) and len(v) > 8:
        return "[" + ", ".join(_short(x) for x in v[:8]) + f", ... ({len(v)} items)]"
    if isinstance(v, list):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    return "-" if v is None or v == "" else str(v)


def format_sizes(manifest: dict, manifest_bytes: int = 0) -> dict[str, int]:
    """Bytes a device needs per int8 format it can run: the common files plus that format's model."""
    models = {k: v for k, v in manifest["models"].items() if v}
    common = manifest_bytes + sum(
        e["bytes"] for n, e in manifest["files"].items() if n not in models.values()
    )
    return {k: common + manifest["files"][v]["bytes"] for k, v in models.items() if k in BACKEND_OF}


def _num(v, fmt: str = ".4f") -> str:  # noqa: ANN001
    return "-" if v is None else format(v, fmt)


def gate_lines(key: str, q: dict) -> list[str]:
    """The int8 gate (v2) of one format's quantization section, readable; older sections as they are."""
    gate = q.get("gate") or {}
    if gate.get("version") != 2:
        return [
            f"  {key}: gate v{gate.get('version', 1)}, top-1 agreement {_num(q.get('agreement_top1'))}, "
            f"cosine {_num(q.get('cosine_mean'), '.5f')}, passed {q.get('passed')}"
        ]
    cond = gate.get("conditions") or {}
    state = (
        "passed"
        if q.get("passed")
        else "BELOW THE GATE, accepted with --accept-below-gate"
        if q.get("accepted_below_gate")
        else "FAILED"
    )
    win = gate.get("windows") or {}

    def mark(name: str) -> str:
        return "ok" if (cond.get(name) or {}).get("passed", True) else "FAILED"

    d, f = q.get("decisive") or {}, q.get("findings") or {}
    acc = q.get("accuracy") or {}
    fp, qq, loss = acc.get("fp32") or {}, acc.get("quantized") or {}, acc.get("loss") or {}
    lines = [
        f"  {key}: gate v2 {state}, vs fp32 on {q.get('n_windows')} windows "
        f"({win.get('validation')} validation + {win.get('test')} test)",
        f"    embedding cosine mean {_num(q.get('cosine_mean'), '.5f')} (>= {gate.get('min_cosine_mean')}) "
        f"{mark('cosine')}; min {_num(q.get('cosine_min'), '.5f')}",
        f"    top-1 agreement on decisive windows {_num(d.get('agreement'))} (>= {gate.get('min_decisive_agreement')}) "
        f"{mark('decisive_top1')}: {d.get('windows')} windows whose fp32 margin exceeds the int8 noise "
        f"{_num(q.get('int8_noise'))}, {d.get('changes')} changed",
        f"    finding decisions agree {_num(f.get('agreement'))} (>= {gate.get('min_finding_agreement')}) "
        f"{mark('findings')}: {f.get('changed')} of {f.get('pairs')} window-label pairs differ",
        f"    top-5 accuracy {_num(qq.get('top5'))} vs fp32 {_num(fp.get('top5'))} (loss {_num(loss.get('top5'))} "
        f"<= {gate.get('max_top5_loss')}) {mark('top5')}; macro AUROC {_num(qq.get('macro_auroc'))} vs "
        f"{_num(fp.get('macro_auroc'))} (loss {_num(loss.get('macro_auroc'))} <= {gate.get('max_auroc_loss')}) "
        f"{mark('macro_auroc')}",
    ]
    changed = q.get("changed_windows") or []
    lines.append(
        f"    strict top-1 agreement {_num(q.get('agreement_top1'))}: {len(changed)} window(s) changed"
        + (" (fp32 margin; near-tie = within the int8 noise)" if changed else "")
    )
    for c in changed:
        lines.append(
            f"      {c.get('split') or '-'} {c.get('record') or '-'}: {c['fp32_top1']} -> "
            f"{c['quantized_top1']} (margin {c['fp32_margin']:.4f}, "
            f"{'decisive' if c.get('decisive') else 'near-tie'})"
        )
    return lines


_SHOWN = {
    "n_windows",
    "agreement_top1",
    "cosine_mean",
    "cosine_min",
    "int8_noise",
    "int8_noise_quantile",
    "decisive",
    "findings",
    "accuracy",
    "changed_windows",
    "gate",
    "passed",
    "failed_conditions",
    "accepted_below_gate",
    "tflite",
    "format",
    "formats",
}


def describe_bundle(bundle: Bundle, path: Path | str) -> str:
    """The manifest in readable sections (after verification of every checksum)."""
    m = bundle.manifest
    sig = bundle.signal
    prov = m.get("provenance") or {}
    created = m.get("created") or prov.get("created") or "-"
    lines = [
        f"bundle      {path}",
        f"format      {m['format']} v{m['format_version']}   created {created}",
        f"verified    {len(m['files'])} files, sha256 of every one matches the manifest",
        f"manifest    {getattr(bundle, 'trust', '') or '-'}",
        "files",
    ]
    used = {v: k for k, v in m["models"].items() if v}
    used[m["label_embeddings"]] = "label embeddings"
    width = max((display_width(n) for n in m["files"]), default=0)
    for name, entry in m["files"].items():
        role = used.get(name, "")
        lines.append(
            f"  {pad(name, width)}  {human_bytes(entry['bytes']):>9}  {entry['sha256'][:16]}  {role}"
        )
    lines.append(
        f"signal      {sig.fs:g} Hz, {sig.window_s:g} s windows ({sig.n_samples} samples), band "
        f"{sig.band_hz[0]:g}-{sig.band_hz[1]:g} Hz (Butterworth order {sig.filter_order}, zero phase), "
        f"{sig.normalization}, clip +-{sig.clip:g}"
    )
    model = m.get("model") or {}

    def shape(dims) -> str:  # noqa: ANN001 - a list of ints, names or None (dynamic)
        return "[" + ", ".join("batch" if d is None else str(d) for d in dims) + "]" if dims else "?"

    lines.append(
        f"model       input {model.get('input_name', '?')} {shape(model.get('input_shape'))} -> "
        f"output {model.get('output_name', '?')} {shape(model.get('output_shape'))}, "
        f"embedding {m['embedding_dim']}-d, logit scale {_short(m.get('logit_scale'))}"
    )
    if model.get("encoder"):
        enc = model["encoder"]
        lines.append(
            "  encoder   "
            + (", ".join(f"{k}={_short(v)}" for k, v in enc.items()) if isinstance(enc, dict) else str(enc))
        )
    lines.append("models      " + ", ".join(f"{k}: {v or '-'}" for k, v in m["models"].items()))
    try:
        manifest_bytes = (Path(bundle.folder) / "manifest.json").stat().st_size
    except OSError:
        manifest_bytes = 0
    sizes = format_sizes(m, manifest_bytes)
    lines.append(
        "formats     "
        + (
            "; ".join(
                f"{k} -> --backend {BACKEND_OF[k]}, {human_bytes(v)} on the device" for k, v in sizes.items()
            )
            or "none (no int8 model)"
        )
    )
    q = m.get("quantization") or {}
    sections = {q.get("format", "onnx_int8"): q}
    if isinstance(q.get("tflite"), dict):
        sections["tflite_int8"] = q["tflite"]
    lines.append("int8 gate")
    for key, section in sections.items():
        lines += gate_lines(key, section)
    lines.append("quantization")
    for key, section in sections.items():
        lines.append(f"  {key}:")
        lines += _nested({k: v for k, v in section.items() if k not in _SHOWN}, 4)
    zero = [lb for lb in bundle.labels if lb.get("zero_shot", lb.get("new"))]
    lines.append(
        f"labels      {len(bundle.labels)}"
        + (
            f"; {len(zero)} never trained (zero-shot, shown as 未検証): "
            + ", ".join(lb["id"] + " " + lb.get("ja", "") for lb in zero[:12])
            + (f", ... ({len(zero) - 12} more: ecg-edge labels --bundle)" if len(zero) > 12 else "")
            if zero
            else ""
        )
    )
    th = bundle.thresholds[np.isfinite(bundle.thresholds)]
    if th.size:
        lines.append(
            f"thresholds  {th.size} set: min {th.min():.3f}, median {np.median(th):.3f}, max {th.max():.3f}"
            + (
                f"; {len(bundle.thresholds) - th.size} labels never reported as findings"
                if th.size < len(bundle.thresholds)
                else ""
            )
        )
    else:
        lines.append("thresholds  none (no label is ever reported as a finding)")
    lines += _decision_lines(m.get("decision"))
    lines.append("text encoder")
    lines += _nested(m.get("text_encoder") or {}, 2)
    lines.append("provenance")
    lines += _nested(prov, 2)
    lines.append("metrics")
    lines += _nested(m.get("metrics") or {}, 2)
    return "\n".join(lines)


def filter_labels(labels: list[dict], query: str | None = None, category: str | None = None) -> list[dict]:
    """Bundle labels matching a catalogue-style search ``query`` (same folding rules) and ``category``."""
    out = labels
    if category:
        out = [lb for lb in out if lb.get("category") == category]
    if query:
        from edge.interpret.catalogue import Catalogue, Label

        known = {f.name for f in fields(Label)} - {"parents"}  # parents may lie outside the filtered set
        cat = Catalogue([Label.from_dict({k: v for k, v in lb.items() if k in known}) for lb in out])
        by_id = {lb["id"]: lb for lb in out}
        out = [by_id[hit.id] for hit in cat.search(query)]
    return out


def zero_shot_note(labels: list[dict], manifest: dict) -> str:
    """How the thresholds of the listed labels that were never trained came about ("" if there are none)."""
    zero = [lb for lb in labels if lb.get("zero_shot", lb.get("new"))]
    if not zero:
        return ""
    th = manifest.get("thresholds") or {}
    without = set(th.get("labels_without_positives") or [])
    pct = th.get("no_positives") or "99th percentile of the label's validation scores"
    by_pct = [lb["id"] for lb in zero if lb["id"] in without]
    by_f1 = [lb["id"] for lb in zero if lb["id"] not in without]
    lines = [
        f"未検証 (zero-shot): {len(zero)} label(s) had no training example (added at export, held out, or absent "
        "from the training folds). Their scores come from the text embedding alone and were never validated."
    ]
    if by_pct:
        lines.append(
            f"  {len(by_pct)} of them had no positive validation window either; their threshold is the {pct}, so "
            "each fires on about 1 % of ordinary windows, where the ECG is unusually close to its text: "
            + ", ".join(by_pct[:20])
            + (" ..." if len(by_pct) > 20 else "")
        )
    if "labels_without_positives" not in th:  # an older manifest: it does not say how
        lines.append(
            "  Their thresholds were chosen like every label's: " + ", ".join(lb["id"] for lb in zero[:20])
        )
    elif by_f1:
        lines.append(
            f"  {len(by_f1)} had positive validation windows; their threshold follows the rule for every label "
            f"({th.get('method') or 'max F1 on validation'}): " + ", ".join(by_f1[:20])
        )
    lines.append(
        "  The runtime reports their findings apart (zero_shot_findings), never among the validated ones."
    )
    return "\n".join(lines) + "\n"


def bundle_label_rows(labels: list[dict]) -> str:
    """A table of bundle labels: id, ja, en, category, threshold, new, zero-shot (未検証 with the reason)."""
    rows = [("id", "ja", "en", "category", "threshold", "new", "zero-shot")]
    for lb in labels:
        th = lb.get("threshold")
        th_text = "-" if th is None or not np.isfinite(th) else f"{th:.3f}"
        rows.append(
            (
                lb["id"],
                lb.get("ja", ""),
                lb.get("en", ""),
                lb.get("category", ""),
                th_text,
                "new" if lb.get("new") else "",
                f"未検証 ({lb.get('zero_shot_reason', 'new')})" if lb.get("zero_shot", lb.get("new")) else "",
            )
        )
    widths = [max(display_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _decision_lines(decision: dict | None) -> list[str]:
    """How the measurements enter the findings (the manifest's ``decision`` block, export.decision)."""
    if not decision:
        return ["decision    no measurement criteria in the manifest (the runtime's shipped rules, weight 0)"]
    crit = decision.get("criteria_labels") or []
    lines = [
        f"decision    measurement criteria for {len(crit)} labels ({', '.join(crit[:12])}{' ...' if len(crit) > 12 else ''}); "
        f"ranking weight {decision.get('criteria_weight', 0):g}, chosen on {decision.get('n_windows', '?')} validation windows"
    ]
    for row in decision.get("validation") or []:
        mark = "  <- chosen" if row.get("weight") == decision.get("criteria_weight") else ""
        lines.append(
            f"  weight {row.get('weight'):<5g} top-1 {row.get('top1')}  top-5 {row.get('top5')}  "
            f"criteria labels top-5 recall {row.get('criteria_labels_top5_recall')}{mark}"
        )
    scores = decision.get("scores")
    if scores:  # kept for ecg-export redecide (export.redecide)
        windows = ", ".join(f"{n} {split}" for split, n in (scores.get("windows") or {}).items())
        lines.append(f"  scores kept for redecide: {scores.get('file')} ({windows} windows; int8"
                     f"{' and fp32' if scores.get('fp32') else ', no fp32: thresholds cannot be redecided'})")
    for entry in (decision.get("redecided") or [])[-3:]:
        weight = entry.get("criteria_weight") or {}
        effect = ((entry.get("effect") or {}).get("after") or {}).get("test") or {}
        lines.append(
            f"  redecided {entry.get('when')}: rules {'changed' if entry.get('rules_changed') else 'unchanged'}, "
            f"{len(entry.get('thresholds_changed') or {})} thresholds, weight {weight.get('before')} -> "
            f"{weight.get('after')}; gate {'passed' if (entry.get('gate') or {}).get('passed') else 'FAILED'}; "
            f"test findings/window {effect.get('findings_per_window')}, precision {effect.get('precision')}, "
            f"recall {effect.get('recall')}"
        )
    return lines
