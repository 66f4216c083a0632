"""Readable descriptions of a bundle (``ecg-edge info``) and of its labels (``ecg-edge labels --bundle``).

Pure formatting of what ``edge.bundle.load_bundle`` verified: nothing here changes or trusts anything
beyond the manifest. Manifest sections written by the exporter that this module does not know are
shown as nested ``key: value`` lines, so new fields appear without a change here.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from .bundle import Bundle
from .liveview import display_width, pad

__all__ = ["describe_bundle", "filter_labels", "bundle_label_rows", "human_bytes"]


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
    lines.append("quantization")
    lines += _nested(m.get("quantization") or {}, 2)
    new = [lb for lb in bundle.labels if lb.get("new")]
    lines.append(
        f"labels      {len(bundle.labels)}"
        + (f" (new, zero-shot: {', '.join(lb['id'] + ' ' + lb.get('ja', '') for lb in new)})" if new else "")
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
        from .catalogue import Catalogue, Label

        known = {f.name for f in fields(Label)} - {"parents"}  # parents may lie outside the filtered set
        cat = Catalogue([Label.from_dict({k: v for k, v in lb.items() if k in known}) for lb in out])
        by_id = {lb["id"]: lb for lb in out}
        out = [by_id[hit.id] for hit in cat.search(query)]
    return out


def bundle_label_rows(labels: list[dict]) -> str:
    """A table of bundle labels: id, ja, en, category, threshold, new."""
    rows = [("id", "ja", "en", "category", "threshold", "new")]
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
            )
        )
    widths = [max(display_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
