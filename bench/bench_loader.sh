#!/usr/bin/env bash
# Loader throughput: dpersona's loader (release build of train/examples/loader_bench.rs,
# 2 worker threads) next to a PyTorch DataLoader with 2 workers doing the same
# augmentations on the same 128x128 shards (bench/loader_reference.py), in the same run.
# Prints one Markdown row per augmentation pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f scripts/env.sh ] && source scripts/env.sh
PY="${DPERSONA_PYTHON:-.venv/bin/python}"
SAMPLES="${LOADER_BENCH_SAMPLES:-1200}"
EPOCHS="${LOADER_BENCH_EPOCHS:-3}"
cargo build --quiet --release -p train --example loader_bench
BIN=target/release/examples/loader_bench
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for aug in lidc npc; do
  "$BIN" write "$work/$aug" --samples "$SAMPLES" --augment "$aug" >/dev/null
  ours=$("$BIN" run "$work/$aug" --epochs "$EPOCHS" --threads 2 --batch 12 --augment "$aug" 2>/dev/null | sed -n 's/^samples_per_s=//p')
  ref=$("$PY" bench/loader_reference.py "$work/$aug" --epochs "$EPOCHS" --workers 2 --batch 12 --augment "$aug" | sed -n 's/^samples_per_s=//p')
  ratio=$(awk -v a="$ours" -v b="$ref" 'BEGIN { printf "%.2fx", a / b }')
  echo "| loader ${aug} augmentation, 128x128, batch 12 | ${ours} samples/s | ${ref} samples/s (PyTorch DataLoader, 2 workers) | ${ratio} | 2 threads vs 2 workers, ${SAMPLES} slices x ${EPOCHS} epochs, target >= 3x |"
done
