#!/usr/bin/env bash
# `make demo`: the main job end to end on built-in synthetic data, on CPU.
# synth -> ingest -> train (small preset, both stages) -> eval -> report.
set -euo pipefail
cd "$(dirname "$0")/.."
DP=target/release/dpersona
OUT=${DEMO_OUT:-demo_out}
# Outputs of another build (older shard formats, a model trained by older code) would make
# the resumed steps below fail or print stale numbers: start afresh when the binaries that
# made $OUT differ from these (or are unknown, for folders made before this stamp existed).
built_by=$(cat "$DP" target/release/libdpersona_torch.so | sha256sum | cut -c1-16)
if [ -d "$OUT" ] && [ "$(cat "$OUT/.built-by" 2>/dev/null)" != "$built_by" ] \
  && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
  echo "demo: $OUT was made by another build of dpersona; starting it afresh"
  rm -rf "$OUT/raw" "$OUT/data" "$OUT/runs" "$OUT/predictions" "$OUT/figures" \
    "$OUT/results.parquet"
fi
mkdir -p "$OUT"
echo "$built_by" >"$OUT/.built-by"
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

step "1/5 synth: synthetic LIDC-style studies (CT DICOM series + LIDC XML reads of 4 raters)"
$DP synth lidc "$OUT/raw" --studies 24 --seed 7

step "2/5 ingest: DICOM + XML -> Parquet slice shards + manifest"
$DP ingest lidc "$OUT/raw" --out "$OUT/data" --crop-size 64

step "3/5 train: D-Persona, small preset, Stage I then Stage II"
# A rerun continues (or finds finished) the run of an earlier `make demo`, as ingest does.
if [ -f "$OUT/runs/demo/config.toml" ]; then
  $DP train --manifest "$OUT/data/manifest.parquet" --out "$OUT/runs/demo" --resume
else
  $DP train --manifest "$OUT/data/manifest.parquet" --out "$OUT/runs/demo" --preset small --seed 7
fi

step "4/5 eval: Stage I samples and Stage II personalised masks on the test split"
$DP eval --run "$OUT/runs/demo" --out "$OUT/results.parquet" --samples 10 --bank 100 \
  --save-predictions "$OUT/predictions"

step "5/5 report: paper-style table and figures"
$DP report "$OUT/results.parquet" --figures "$OUT/figures" --run "$OUT/runs/demo" \
  --predictions "$OUT/predictions/stage1_n10" --predictions "$OUT/predictions/stage2_bank100"

echo
echo "demo finished in $(( $(date +%s) - start )) s; figures in $OUT/figures"
