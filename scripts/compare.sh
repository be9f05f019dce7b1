#!/usr/bin/env bash
# `make compare`: every method of the D-Persona comparison (baselines.md) trained on the same
# synthetic LIDC-style data with the small preset, each evaluated on the test split into ONE
# results.parquet, then the paper's Table 1 layout with one row per method.
#
# synth -> ingest -> for each method: train -> eval -> report.
# Re-running continues: existing data is reused, a finished run is resumed (nothing to do)
# and its evaluation rows are replaced. COMPARE_OUT, COMPARE_SEED, COMPARE_STUDIES and
# COMPARE_METHODS (space-separated) change the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
DP=target/release/dpersona
OUT=${COMPARE_OUT:-compare_out}
SEED=${COMPARE_SEED:-7}
STUDIES=${COMPARE_STUDIES:-24}
METHODS=${COMPARE_METHODS:-"dpersona prob-unet unet-rater mv rs staple cm-global cm-pixel pionono tab"}
mkdir -p "$OUT/runs"
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

if [ ! -f "$OUT/data/manifest.parquet" ]; then
  step "synth: $STUDIES synthetic LIDC-style studies (4 raters with distinct styles)"
  $DP synth lidc "$OUT/raw" --studies "$STUDIES" --seed "$SEED"
  step "ingest: DICOM + XML -> Parquet slice shards + manifest"
  $DP ingest lidc "$OUT/raw" --out "$OUT/data" --crop-size 64
fi

for m in $METHODS; do
  run="$OUT/runs/$m"
  if [ -e "$run" ]; then
    step "train $m: resume $run"
    $DP train --manifest "$OUT/data/manifest.parquet" --out "$run" --resume --quiet
  else
    step "train $m (small preset)"
    $DP train --manifest "$OUT/data/manifest.parquet" --out "$run" --method "$m" \
      --preset small --seed "$SEED" --quiet
  fi
  step "eval $m"
  $DP eval --run "$run" --out "$OUT/results.parquet" --samples 10 --bank 100
done

step "report: one row per method"
$DP report "$OUT/results.parquet"
echo
echo "compare finished in $(( $(date +%s) - start )) s; results in $OUT/results.parquet"
