#!/usr/bin/env bash
# One prepared CUDA check for a lent GPU machine (see the device tool): the binaries are
# built here (x86_64, release) and copied into gpucheck/ (git-ignored, carried): dpersona,
# libdpersona_torch.so (train/eval load it from beside the binary) and examples/step_bench;
# they run there against that machine's own torch 2.11 libraries (LD_LIBRARY_PATH below).
#   1. Stage-I training steps of the paper model on CUDA: images/s, data-wait share.
#   2. The whole CLI on CUDA: synth -> ingest -> train (small) -> eval -> report.
set -euo pipefail
B=${B:-gpucheck}
OUT=${OUT:-/tmp/gpucheck_out}
mkdir -p "$OUT"
TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'

echo "== 1. paper model, Stage I, batch 12, 128x128, CUDA"
"$B/step_bench" /tmp/sb --device cuda --steps "${STEPS:-300}" --warmup 10 --batch 12 \
  --threads 8 --loader-threads 8 --samples 600 | tee "$OUT/step_bench_cuda.txt"

echo "== 2. CLI end to end on CUDA"
W=/tmp/gpucli; rm -rf "$W"
"$B/dpersona" synth lidc "$W/raw" --studies 12 --seed 3
"$B/dpersona" ingest lidc "$W/raw" --out "$W/data" --crop-size 64
"$B/dpersona" train --manifest "$W/data/manifest.parquet" --out "$W/runs/a" --preset small --device cuda --quiet
"$B/dpersona" eval --run "$W/runs/a" --out "$W/results.parquet" --samples 10 --bank 100 --device cuda
"$B/dpersona" report "$W/results.parquet" | tee "$OUT/report_cuda.txt"
