#!/usr/bin/env bash
# `dpersona predict` on CPU: cases per second for NPC-style volumes (3 channels, 160x160x16,
# resampled to 128x128, the paper model: ResNet-34 U-Net + prior + Fcomb, Stage I with 10
# samples, mean and variance written back on the input grid), next to the same model and the
# same steps in PyTorch with nibabel + scipy doing the reading, resampling and writing
# (bench/predict_reference.py), in the same run, 2 threads each.
#
# The run is trained for one epoch per stage on six synthetic studies (weights do not change
# the work a forward pass does); the reference runs the same layers with random weights.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f scripts/env.sh ] && source scripts/env.sh
PY="${DPERSONA_PYTHON:-.venv/bin/python}"
CASES="${PREDICT_BENCH_CASES:-6}"
SAMPLES="${PREDICT_BENCH_SAMPLES:-10}"
BIN="${DPERSONA_BIN:-target/release/dpersona}"
[ -n "${DPERSONA_BIN:-}" ] || cargo build --quiet --release -p dpersona -p torch_commands
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$BIN" synth nifti "$work/train_raw" --studies 6 --seed 1 >/dev/null
"$BIN" ingest nifti "$work/train_raw" --out "$work/data" --crop-size 128 >/dev/null 2>&1
"$BIN" train --manifest "$work/data/manifest.parquet" --out "$work/run" --preset paper-npc \
  --epochs-stage1 1 --epochs-stage2 1 --device cpu --threads 2 --quiet >/dev/null 2>&1
"$BIN" synth nifti "$work/raw" --studies "$CASES" --seed 2 >/dev/null
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s.%N)
"$BIN" predict --run "$work/run" "$work/raw/images" --out "$work/pred" --stage 1 \
  --samples "$SAMPLES" --device cpu --threads 2 --quiet >/dev/null
t1=$(date +%s.%N)
ours=$(awk -v n="$CASES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", n / (b - a) }')
ref=$("$PY" bench/predict_reference.py "$work/raw/images" "$work/ref" --samples "$SAMPLES" \
  --threads 2 | sed -n 's/^.*cases_per_s=\([^ ]*\).*$/\1/p')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
ratio=$(awk -v a="$ours" -v b="$ref" 'BEGIN { printf "%.2fx", a / b }')
echo "| predict, NPC-style 3x160x160x16 -> 128x128, paper model, Stage I #${SAMPLES} + mean + variance, CPU 2 threads | ${ours} cases/s | ${ref} cases/s (PyTorch + nibabel + scipy) | ${ratio} | ${CASES} cases; ours includes process start and model loading; load avg ${load_before} before, ${load_after} after |"
