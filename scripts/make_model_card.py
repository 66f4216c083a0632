"""Write the model card of a bundle: data and attribution, metrics on the test fold with the per-label
table, new-label (zero-shot) results, intended use and limitations.

The figures are computed here by evaluating the bundle's int8 encoder on the test fold (the same path as
``ecg-eval BUNDLE``) and are checked against the manifest's, so the card cannot drift from the bundle.

Usage: ``python scripts/make_model_card.py --data ../shared/data --compare runs/compare``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("ptbxl", "ptbxl_processed", "cinc2021", "challenge2020")  # as scripts/build_default_bundle.sh

ATTRIBUTION = """\
- Wagner, P. et al. PTB-XL, a large publicly available electrocardiography dataset. Scientific Data 7, 154
  (2020). CC BY 4.0. (Records ecg_id 1-500 in the official layout, and 1,819 other PTB-XL records that a
  third party band-pass filtered, z-scored and decimated to 100 Hz.)
- Reyna, M. A. et al. Will two do? Varying dimensions in electrocardiography: the PhysioNet/Computing in
  Cardiology Challenge 2021. CC BY 4.0 records (30 Georgia and PTB-XL records), BSD-2 mapping tables.
- Goldberger, A. et al. PhysioBank, PhysioToolkit, and PhysioNet. Circulation 101(23), 2000.
- Moody, G. B. & Mark, R. G. The impact of the MIT-BIH Arrhythmia Database. IEEE EMB Magazine 20(3), 2001
  (used in tests only)."""


def _f(v) -> str:
    return "–" if v is None or v != v else f"{v:.3f}"


def _sections(q: dict) -> dict[str, dict]:
    """The quantization section of each device format in the bundle."""
    out = {q.get("format", "onnx_int8"): q}
    if isinstance(q.get("tflite"), dict):
        out["tflite_int8"] = q["tflite"]
    return out


def gate_lines(man: dict) -> list[str]:
    """The int8 gate (v2) section: each condition per device format, the strict agreement, every changed window."""
    q = man["quantization"]
    sections = _sections(q)
    gate = q.get("gate") or {}
    if gate.get("version") != 2:
        return ["## The int8 gate", "", f"Gate v{gate.get('version', 1)}: strict top-1 agreement "
                f"{q.get('agreement_top1', float('nan')) * 100:.2f} %, cosine {q.get('cosine_mean', float('nan')):.5f}, "
                f"passed: {q.get('passed')}.", ""]
    win = gate.get("windows") or {}
    names = {"onnx_int8": "int8 ONNX", "tflite_int8": "int8 TFLite"}
    lines = ["## The int8 gate (v2)", "",
             f"Checked at export against the fp32 encoder on every window of the validation and test folds "
             f"({win.get('validation')} + {win.get('test')} windows; docs/int8-gate.md). A window is decisive when "
             "its fp32 top-1 margin exceeds the int8 noise (p99 of the change int8 makes to the top-2 score "
             "difference on the same windows).", "",
             "| condition | limit | " + " | ".join(names.get(k, k) for k in sections) + " |",
             "|---|---|" + "---:|" * len(sections)]

    def row(label: str, limit: str, cell) -> str:  # noqa: ANN001
        return f"| {label} | {limit} | " + " | ".join(cell(s) for s in sections.values()) + " |"

    def ok(s: dict, name: str) -> str:
        return "" if ((s.get("gate") or {}).get("conditions") or {}).get(name, {}).get("passed", True) else " **failed**"

    lines += [
        row("embedding cosine, mean", f">= {gate.get('min_cosine_mean')}",
            lambda s: f"{s['cosine_mean']:.5f}{ok(s, 'cosine')}"),
        row("top-1 agreement, decisive windows", f">= {gate.get('min_decisive_agreement')}",
            lambda s: f"{_f(s['decisive']['agreement'])} ({s['decisive']['changes']} of {s['decisive']['windows']} "
                      f"changed; noise {s['int8_noise']:.4f}){ok(s, 'decisive_top1')}"),
        row("finding decisions, (window, label) pairs", f">= {gate.get('min_finding_agreement')}",
            lambda s: f"{s['findings']['agreement']:.4f} ({s['findings']['changed']} of {s['findings']['pairs']} "
                      f"differ){ok(s, 'findings')}"),
        row("top-5 accuracy lost vs fp32", f"<= {gate.get('max_top5_loss')}",
            lambda s: f"{_f(s['accuracy']['loss']['top5'])}{ok(s, 'top5')}"),
        row("macro AUROC lost vs fp32", f"<= {gate.get('max_auroc_loss')}",
            lambda s: f"{_f(s['accuracy']['loss']['macro_auroc'])}{ok(s, 'macro_auroc')}"),
        row("strict top-1 agreement, all windows", "(recorded)", lambda s: f"{s['agreement_top1'] * 100:.2f} %"),
        row("passed", "", lambda s: "yes" if s["passed"] else "no, accepted below the gate"),
        "",
    ]
    for key, s in sections.items():
        changed = s.get("changed_windows") or []
        lines += [f"Windows whose top-1 label changed ({names.get(key, key)}): " + ("none." if not changed else ""), ""]
        lines += [f"- {c.get('split')} {c.get('record')}: {c['fp32_top1']} -> {c['quantized_top1']}, fp32 margin "
                  f"{c['fp32_margin']:.4f} ({'decisive' if c.get('decisive') else 'near-tie within the int8 noise'})"
                  for c in changed]
        lines += _near_tie_lines(s) + [""]
    return lines


def zero_shot_lines(man: dict) -> list[str]:
    zero = [lb for lb in man["labels"] if lb.get("zero_shot", lb.get("new"))]
    if not zero:
        return []
    return ["## Labels never trained (未検証)", "",
            f"{len(zero)} of the {len(man['labels'])} labels had no training example (held out, added at export, or "
            "absent from the training folds). Their scores come from the text embedding alone; the device marks "
            "them 未検証 and reports their findings apart from the validated ones (`zero_shot_findings`):", "",
            ", ".join(f"{lb['ja']} ({lb['id']})" for lb in zero) + ".", ""]


LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
# the bedside patterns of missing leads (as bench/bench_leads.py, which also has every single lead)
LEAD_PATTERNS: dict[str, tuple[str, ...]] = {
    "all 12 leads": (),
    "V2 missing (one chest electrode off)": ("V2",),
    "arm electrode off, 8-channel device (only II of the limb leads)": ("I", "III", "aVR", "aVL", "aVF"),
    "V2, V4, V6 flat": ("V2", "V4", "V6"),
    "limb leads inconsistent (chest leads only)": LEADS[:6],
    "chest leads missing (limb leads only)": LEADS[6:],
}


def evaluate(bundle, data: Path, folds: list[int], measurements: bool = True, drop: tuple[str, ...] = ()) -> dict:
    """The bundle on the test folds through the device's path; ``measurements``: with each window's
    contract-7 measurements in the ranking and the findings (as on the device), else cosine scores alone
    (what the export's manifest states); ``drop``: those leads' model-input rows zeroed, as the runtime feeds
    a window whose leads are unusable (cosine scores alone then)."""
    from edge.interpret.catalogue import load_catalogue
    from training.evaluate import evaluate_bundle
    from training.prepare import Source, default_cache_dir, measurement_dicts, prepare

    catalogue = load_catalogue()
    sources = [Source(kind, data / kind) for kind in SOURCES]
    ds = prepare(sources, default_cache_dir(sources, bundle.signal), bundle.signal, catalogue, progress=False)
    idx = ds.indices(folds)
    meas = measurement_dicts(ds.measurements[idx], ds.measurement_keys) if measurements and not drop else None
    windows = np.array(ds.windows[idx], dtype=np.float32)
    if drop:
        windows[:, [LEADS.index(lead) for lead in drop], :] = 0.0
    return evaluate_bundle(bundle, windows, ds.labels[idx].astype(np.float32),
                           catalogue.ids, known=np.asarray(ds.known[idx]), measurements=meas)


def missing_lead_lines(rows: dict[str, dict], recipe: dict | None) -> list[str]:
    """How the model's ranking holds with leads missing (cosine scores alone, test fold, Wilson intervals)."""
    if not rows:
        return []
    from export.gate import wilson_interval

    lines = ["## Missing leads", ""]
    if recipe:
        lines += [f"Trained with lead dropout: {recipe['lead_dropout_p'] * 100:.0f} % of the training windows lose leads, "
                  f"{recipe['lead_dropout_patterns'] * 100:.0f} % of those in the bedside patterns the runtime produces "
                  "(one arm electrode off on an 8-channel device, limb leads inconsistent), the rest 1-3 random leads "
                  "(`ecg-train --lead-dropout`, `--lead-dropout-patterns`).", ""]
    lines += ["The runtime zeroes the rows of leads it cannot use before the model (`quality.usable_leads`); the same is "
              "done here to the test fold's model inputs. Cosine ranking alone (the rhythm analysis and the criteria "
              "read the remaining leads themselves); every single missing lead: BENCHMARKS.md, `bench/bench_leads.py`.", "",
              "| leads | N | top-1 [95 % CI] | top-5 [95 % CI] | macro AUROC |", "|---|---:|---|---|---:|"]
    for name, m in rows.items():
        n = m["n_ecgs"]
        ci = {k: wilson_interval(int(round(m[k] * n)), n) for k in ("top1", "top5")}
        lines.append(f"| {name} | {n} | {_f(m['top1'])} [{ci['top1'][0]:.2f}–{ci['top1'][1]:.2f}] | "
                     f"{_f(m['top5'])} [{ci['top5'][0]:.2f}–{ci['top5'][1]:.2f}] | {_f(m['macro_auroc'])} |")
    return lines + [""]


def decision_lines(metrics: dict, min_n: int = 3) -> list[str]:
    """Findings at the bundle's thresholds after the rules and the measurement criteria (training.decisions)."""
    d = metrics.get("decisions")
    if not d:
        return []
    lines = ["## Findings at the bundle's thresholds (after the consistency rules and the measurement criteria)", "",
             f"- ECGs: {d['n_ecgs']}; findings per ECG {_f(d['findings_per_ecg'])} against the truth's "
             f"{_f(d['truth_per_ecg'])} (ratio {_f(d['findings_to_truth'])}; target within 1.5×); ECGs without a "
             f"finding: {d['no_findings']}.",
             f"- Contradictory pairs among the findings: **{d['contradictory_pairs']}** (before the rules "
             f"{d['contradictory_pairs_before_rules']}; in the cardiologists' own labels {d['contradictory_pairs_in_truth']}).",
             f"- Per label (at least {min_n} positive test ECGs), a finding counted with the labels it implies:", "",
             "| label | 日本語 | positives | sensitivity | specificity | PPV | F1 |", "|---|---|---:|---:|---:|---:|---:|"]
    rows = sorted((r for r in d["per_label"] if r["n_pos"] >= min_n), key=lambda r: -r["n_pos"])
    for r in rows:
        lines.append(f"| {r['id']} | {r['ja']} | {r['n_pos']} | {_f(r['sensitivity'])} | {_f(r['specificity'])} | "
                     f"{_f(r['ppv'])} | {_f(r['f1'])} |")
    return lines + [""]


def loso_lines(loso: Path | None) -> list[str]:
    """Leave-one-source-out summary from ``bench/bench_loso.py`` run folders (``<hospital>[_seedN]/loso.json``)."""
    if loso is None or not loso.is_dir():
        return []
    import json

    by: dict[str, list[dict]] = {}
    for f in sorted(loso.glob("*/loso.json")):
        by.setdefault(f.parent.name.split("_seed")[0], []).append(json.loads(f.read_text(encoding="utf-8")))
    if not by:
        return []

    def ms(values: list[float]) -> str:
        return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}" if len(values) > 1 else f"{values[0]:.2f}"

    lines = ["## Other hospitals: leave-one-source-out", "",
             "Models of the same recipe trained without a hospital's records and tested on them (`bench/bench_loso.py`;",
             "shorter training than this bundle's, and the lead-dropout rate its BENCHMARKS.md command names; mean ± SD",
             "over training seeds; 95 % intervals in BENCHMARKS.md).",
             "The test sets are small: read every figure with its N.", "",
             "| left out | records | seeds | rhythm top-1 | any-label top-5 | findings per ECG / truth | contradictory pairs |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, rs in by.items():
        rhythm = [r["rhythm_top1"]["k"] / r["rhythm_top1"]["n"] for r in rs if r["rhythm_top1"]["n"]]
        top5 = [r["any_top5"]["k"] / r["any_top5"]["n"] for r in rs]
        ratio = [r["ratio"]["value"] for r in rs]
        lines.append(f"| {name} | {rs[0]['n_records']} | {len(rs)} | {ms(rhythm)} (n={rs[0]['rhythm_top1']['n']}) | "
                     f"{ms(top5)} | {ms(ratio)} | {sum(r['contradictory_pairs'] for r in rs)} |")
    return lines + ["", "Targets: rhythm top-1 ≥ 0.90, any-label top-5 ≥ 0.85, findings per ECG within 1.5× the truth's, "
                    "0 contradictions.", ""]


def per_label_table(metrics: dict, min_n: int = 1) -> list[str]:
    from edge.interpret.catalogue import load_catalogue

    cat = load_catalogue()
    rows = [r for r in metrics["per_label"] if r["n"] >= min_n]
    rows.sort(key=lambda r: (cat[r["id"]].category if r["id"] in cat else "new", -r["n"]))
    out = ["| label | 日本語 | category | n (test) | top-5 recall | AUROC |", "|---|---|---|---:|---:|---:|"]
    for r in rows:
        cat_name = cat[r["id"]].category if r["id"] in cat else "new"
        out.append(f"| {r['id']} | {r['name']} | {cat_name} | {r['n']} | {_f(r['top5_recall'])} | {_f(r['auroc'])} |")
    return out


def render(bundle, metrics: dict, compare: dict | None, compare_cmd: str | None, plain: dict | None = None,
           loso: Path | None = None, leads: dict | None = None, recipe: dict | None = None) -> str:
    man = bundle.manifest
    q, prov = man["quantization"], man["provenance"]
    train = prov.get("training_data", {})
    size = sum(f["bytes"] for f in man["files"].values())
    enc = man["model"].get("encoder", {})
    lines = [
        f"# Model card: bundle `{man.get('name', 'default')}`",
        "",
        "**A research tool, not a certified medical device.** It suggests ECG findings in Japanese for trained",
        "staff to review; it does not diagnose, and its output must not drive treatment on its own.",
        "",
        "## What it is",
        "",
        f"- ECG encoder: ResNet1d ({enc.get('widths')} widths, {enc.get('blocks')} blocks; the `resnet1d18-small` preset),",
        f"  int8 ONNX ({q.get('activation_type')} activations, {q.get('weight_type')} per-channel weights, static QDQ),",
        f"  embedding dimension {man['embedding_dim']}; bundle {size / 1e6:.2f} MB.",
        f"- Labels: {len(man['labels'])} Japanese diagnostic labels; their text embeddings were computed once at export",
        f"  by the frozen text encoder `{man['text_encoder'].get('encoder_spec', {}).get('name', man['text_encoder'].get('encoder'))}`",
        f"  (label texts: `{man['text_encoder'].get('mode')}`) and a trained projection; the device runs no text model.",
        f"- Signal contract: {man['signal']['fs']:g} Hz, {man['signal']['window_s']:g} s windows, band-pass "
        f"{man['signal']['band_hz'][0]:g}-{man['signal']['band_hz'][1]:g} Hz, {man['signal']['normalization']}.",
        f"- Code version {prov.get('code_version')}; checkpoint sha256 {prov.get('checkpoint_sha256', '')[:16]}...",
        "",
        "## Training data",
        "",
        f"Folds {train.get('train_folds')} for training ({train.get('n_train')} windows), fold(s) {train.get('val_folds')} for early",
        f"stopping and the per-label thresholds, fold(s) {train.get('test_folds')} held out for the figures below (PTB-XL's",
        "patient-wise `strat_fold`; Challenge records get a stable fold from their name).",
        "",
        ATTRIBUTION,
        "",
        "## Figures on the test fold (int8 bundle, as on the device)",
        "",
        f"- ECGs: {metrics['n_ecgs']}; top-1 accuracy **{_f(metrics['top1'])}**, top-5 accuracy **{_f(metrics['top5'])}**,",
        f"  macro AUROC **{_f(metrics['macro_auroc'])}**, mean per-label top-5 recall {_f(metrics.get('mean_label_top5_recall'))}",
        f"  (ranking with the measurements, criteria weight {metrics.get('criteria_weight', 0):g}, as on the device).",
        *([f"- The same bundle on its cosine scores alone (the figures the export's manifest states): top-1 accuracy "
           f"**{_f(plain['top1'])}**, top-5 accuracy **{_f(plain['top5'])}**, macro AUROC **{_f(plain['macro_auroc'])}**."]
          if plain else []),
        "- Targets: fold-10 macro AUROC ≥ 0.88 (missed: see Limitations).",
        "",
        *decision_lines(metrics),
        *missing_lead_lines(leads or {}, recipe),
        *loso_lines(loso),
        *gate_lines(man),
        *zero_shot_lines(man),
        "Top-k accuracy counts an ECG as correct when any of its labels is among the k best-scored labels.",
        "Per-label top-5 recall ranks a label only against the labels that are false for that ECG (filtered",
        "setting), because an ECG carries several labels at once, with the hierarchy expanded.",
        "",
    ]
    if compare:
        lines += ["## Contrastive vs supervised baseline, and new labels (zero-shot)", "",
                  "The same recipe trained with six labels held out of training entirely (their texts too), then",
                  "scored zero-shot through their text embeddings:", "", f"`{compare_cmd}`", "",
                  "| model | top-1 | top-5 | macro AUROC | new labels top-5 recall (strict) | new labels top-5 recall (superset) | new labels AUROC |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in compare.items():
            new = r.get("new", {})
            lines.append(f"| {name} | {_f(r.get('top1'))} | {_f(r.get('top5'))} | {_f(r.get('macro_auroc'))} | "
                         f"{_f(new.get('top5_recall'))} | {_f(new.get('top5_recall_superset'))} | {_f(new.get('macro_auroc'))} |")
        lines += ["", "Strict: the new label itself in the top 5 (its ECG's other true labels do not compete); superset: the",
                  "label or one of its catalogue parents in the top 5, as the reference study counted new labels."]
        lines.append("")
    lines += [
        "## Per-label results (test fold)",
        "",
        "Labels with at least one test ECG. Low-prevalence labels and hypertrophy are the weak spots, as in the",
        "reference study: read their figures with their n.",
        "",
        *per_label_table(metrics),
        "",
        "## Intended use",
        "",
        "Research and development of bedside ECG interpretation with Japanese labels: a demonstration of the",
        "pipeline (training, int8 export, serial runtime) that a hospital retrains on its own labelled ECGs.",
        "",
        "## Limitations",
        "",
        "- Trained on about 2,100 ECGs from public data (mostly PTB-XL, Germany, 1989-1996; 1,307 of them carry only",
        "  the Challenge's 27 classes): far fewer than the reference study's 37,285, and not from Japanese hospitals.",
        "  The fold-10 macro AUROC target (0.88) and the other-hospital targets (rhythm top-1 0.90, findings per ECG",
        "  within 1.5× the truth's) are missed; measurements improve the rhythm labels but not the morphology labels.",
        "  Expect lower accuracy on other devices,",
        "  populations and label practices; retrain on local data (`ecg-train --data manifest=...`).",
        "- Many labels have no or very few training examples; their scores are unreliable. New labels added by",
        "  text only (zero-shot) are much weaker than trained ones.",
        "- Windows with missing samples are reported without findings; with leads off, flat, saturated or",
        "  inconsistent, the remaining leads are read and the statements that need a missing lead are withheld with",
        "  their reason (the model's scores degrade as the Missing leads table shows).",
        "- Not validated clinically. Not a medical device under any jurisdiction.",
    ]
    return "\n".join(lines) + "\n"


def _near_tie_lines(q: dict) -> list[str]:
    t = q.get("near_ties")
    if not t:
        return []
    return [f"Near-ties: {t['within_noise'] * 100:.0f} % of the {t['n_windows']} windows have an fp32 margin below the "
            f"int8 noise p99 ({t['noise_abs_quantiles']['p99']:.4f}); the expected rate of top-1 changes is "
            f"{t['expected_change_rate'] * 100:.1f} %."]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=REPO / "edge" / "bundles" / "default")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--folds", default="10")
    p.add_argument("--compare", type=Path, help="an `ecg-train --compare` run folder")
    p.add_argument("--loso", type=Path, help="the run folder of bench/bench_loso.py (runs/loso)")
    p.add_argument("--checkpoint-config", type=Path,
                   help="the training run's config.json (runs/default/config.json): the card states its lead dropout")
    p.add_argument("--out", type=Path, default=REPO / "edge" / "bundles" / "MODEL_CARD.md")
    args = p.parse_args(argv)
    from edge.bundle.loader import load_bundle

    bundle = load_bundle(args.bundle)
    folds = [int(f) for f in args.folds.split(",")]
    metrics = evaluate(bundle, args.data, folds)  # as on the device: with the measurements
    plain = evaluate(bundle, args.data, folds, measurements=False)  # what the manifest states
    stated = bundle.manifest.get("metrics", {}).get("onnx_int8", {})
    for key in ("top1", "top5"):
        if key in stated and abs(stated[key] - plain[key]) > 1e-6:
            print(f"make_model_card: {key} {plain[key]:.4f} differs from the manifest's {stated[key]:.4f}", file=sys.stderr)
            return 1
    compare, compare_cmd = None, None
    if args.compare:
        compare = json.loads((args.compare / "comparison.json").read_text(encoding="utf-8"))
        cmd = args.compare / "command.txt"
        compare_cmd = cmd.read_text(encoding="utf-8").strip() if cmd.is_file() else "ecg-train --compare ..."
    leads = {name: evaluate(bundle, args.data, folds, measurements=False, drop=drop)
             for name, drop in LEAD_PATTERNS.items()}
    recipe = None
    if args.checkpoint_config and args.checkpoint_config.is_file():
        recipe = json.loads(args.checkpoint_config.read_text(encoding="utf-8")).get("augment")
    args.out.write_text(render(bundle, metrics, compare, compare_cmd, plain, args.loso, leads, recipe),
                        encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
