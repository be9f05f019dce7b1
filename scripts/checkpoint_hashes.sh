#!/usr/bin/env bash
# scripts/checkpoint_hashes.sh BIN OUT: a refactoring check for the training code.
# It trains D-Persona (small, 2+2 epochs) and every baseline (2 epochs)
# on the demo's synthetic data with --threads 1, then prints every checkpoint's sha256.
# Run it with the binary built before a change and after (same machine), then
#   diff <(grep -E '^[0-9a-f]{64} ' before.txt) <(grep -E '^[0-9a-f]{64} ' after.txt)
# Copy each binary (with libdpersona_torch.so beside it) out of target/ first.
set -euo pipefail
DP=$1; OUT=$2
mkdir -p "$OUT"
if [ ! -f "$OUT/data/manifest.parquet" ]; then
  $DP synth lidc "$OUT/raw" --studies 12 --seed 7 >/dev/null
  $DP ingest lidc "$OUT/raw" --out "$OUT/data" --crop-size 64 >/dev/null 2>&1
fi
rm -rf "$OUT/runs"
M="$OUT/data/manifest.parquet"
$DP train --manifest $M --out "$OUT/runs/dpersona" --preset small --seed 7 --threads 1 --epochs-stage1 2 --epochs-stage2 2 --quiet
for m in prob-unet unet-rater mv rs staple cm-global cm-pixel pionono tab; do
  $DP train --manifest $M --out "$OUT/runs/$m" --method $m --preset small --seed 7 --threads 1 --epochs-stage1 2 --quiet
done
# A resume of the finished run must change nothing.
$DP train --manifest $M --out "$OUT/runs/dpersona" --resume --threads 1 --quiet
cd "$OUT/runs" && find . -name '*.safetensors' | sort | xargs sha256sum
