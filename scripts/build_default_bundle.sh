#!/usr/bin/env bash
# Rebuild the default bundle shipped in edge/bundles/default from the real data, with the project's
# own commands only:  scripts/build_default_bundle.sh [DATA_DIR]   (or: make default-bundle DATA=...)
#
# 1. ecg-train on PTB-XL folds 1-8 (with heart_axis) + the preprocessed PTB-XL set (SCP and Challenge 2020
#    labels; the Challenge-only records state 27 classes, the rest is unknown for them) + Challenge 2021 and
#    Challenge 2020 records (China, Georgia); the same ECG from several sources is merged,
#    fold 9 for validation / early stopping, fold 10 held out for the model card's figures;
# 2. ecg-export: int8 ONNX calibrated on training windows, gate on fold 10, thresholds on fold 9.
#    --tie-margin 0.005: a top-1 swap between two labels whose fp32 cosine scores differ by at most
#    0.005 counts as agreement (int8 rounding decides near-ties such as 洞調律 vs 正常心電図, which
#    co-occur); the strict agreement and every swap are still recorded in the manifest. Why: docs/int8-gate.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-${DATA:-../shared/data}}
RUN=${RUN:-runs/default}
BIN=${BIN:-.venv/bin}
for d in ptbxl ptbxl_processed cinc2021 challenge2020; do
  [ -d "$DATA/$d" ] || { echo "build_default_bundle: $DATA/$d not found (give the data folder as argument)" >&2; exit 2; }
done
"$BIN/ecg-train" \
  --data "ptbxl=$DATA/ptbxl" --data "ptbxl_processed=$DATA/ptbxl_processed" --data "cinc2021=$DATA/cinc2021" \
  --data "challenge2020=$DATA/challenge2020" \
  --out "$RUN" --cache "runs/cache" \
  --encoder resnet1d18-small --text-encoder use-m3 --text-mode "${TEXT_MODE:-ja}" --loss "${LOSS:-multi_positive}" \
  --epochs "${EPOCHS:-30}" --seed 0 --quiet
"$BIN/ecg-export" "$RUN/checkpoint.pt" --out edge/bundles/default --force --name default --tie-margin 0.005 --quiet
# The package trusts the default bundle by the sha256 of its manifest (edge/bundles/default.sha256; DESIGN.md
# contract 3): after a re-export, update the pin, or every ecg-edge command refuses the new default bundle
# (tests/test_hostile_bundle.py::test_default_bundle_pin_is_current says so too). Commit both together.
sha256sum edge/bundles/default/manifest.json | cut -d' ' -f1 > edge/bundles/default.sha256
"$BIN/ecg-edge" info --bundle edge/bundles/default
