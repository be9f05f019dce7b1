#!/usr/bin/env bash
# One prepared CUDA check for a lent GPU machine (see the device tool): the binaries are
# built here (x86_64, release) and copied into gpucheck/ (git-ignored, carried): dpersona,
# libdpersona_torch.so (train/eval load it from beside the binary) and examples/step_bench;
# they run there against that machine's own torch 2.11 libraries (LD_LIBRARY_PATH below).
#   1. Stage-I training step of the paper model (batch 12, 128x128): ours in fp32 and bf16
#      (optim.precision), PyTorch fp32 and torch.autocast bf16 (bench/step_reference.py,
#      the same model and loss written the way a PyTorch user would), side by side.
#   2. Four folds at once (`train --folds 0,1,2,3`) against one fold alone: one Stage-I
#      epoch of the paper-lidc preset each, wall time -> the protocol's projection.
#   3. The whole CLI on CUDA: synth -> ingest -> train (small, bf16) -> eval -> report.
#   (1. also: bf16 + cuDNN autotuning, and the "fast" mode bf16 + autotuning + channels-last,
#   against PyTorch autocast with channels_last and cudnn.benchmark, its AMP guide's advice.)
# Prints the table the README shows. Budget: about 8 minutes on an H100 (STEPS=200).
#
# Build and run (from the repository root, here):
#   cargo build --release -p dpersona -p torch_commands && cargo build --release -p train --example step_bench
#   mkdir -p gpucheck && cp target/release/{dpersona,libdpersona_torch.so} target/release/examples/step_bench gpucheck/
#   then on the device: bash bench/gpu_check.sh   (carry gpucheck)
set -euo pipefail
B=${B:-gpucheck}
OUT=${OUT:-/tmp/gpucheck_out}
STEPS=${STEPS:-200}
mkdir -p "$OUT"
TORCH_LIB=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
key() { sed -n "s/^.*\b$1=\([^ ]*\).*$/\1/p" "$2" | head -n1; }

echo "== 1. paper model, Stage I, batch 12, 128x128, CUDA"
# "fast": bf16 + channels-last + cuDNN autotuning (optim.precision/channels_last/
# cudnn_benchmark), each lever also alone on top of bf16 so the table says which pays.
for p in fp32 bf16; do
  "$B/step_bench" /tmp/sb --device cuda --steps "$STEPS" --warmup 10 --batch 12 \
    --threads 8 --loader-threads 8 --samples 600 --precision "$p" | tee "$OUT/ours_$p.txt"
done
"$B/step_bench" /tmp/sb --device cuda --steps "$STEPS" --warmup 10 --batch 12 --threads 8 \
  --loader-threads 8 --samples 600 --precision bf16 --cudnn-benchmark | tee "$OUT/ours_bf16_bench.txt"
"$B/step_bench" /tmp/sb --device cuda --steps "$STEPS" --warmup 10 --batch 12 --threads 8 \
  --loader-threads 8 --samples 600 --precision bf16 --cudnn-benchmark --channels-last \
  | tee "$OUT/ours_fast.txt"
for ac in none bf16; do
  python3 bench/step_reference.py --device cuda --autocast "$ac" --steps "$STEPS" --warmup 10 \
    --batch 12 --threads 8 --sgemm-n 1024 | tee "$OUT/torch_$ac.txt"
done
python3 bench/step_reference.py --device cuda --autocast bf16 --channels-last --cudnn-benchmark \
  --steps "$STEPS" --warmup 10 --batch 12 --threads 8 --sgemm-n 1024 | tee "$OUT/torch_fast.txt"

echo "== 2. four folds at once vs one fold alone (paper-lidc, one Stage-I epoch each)"
W=/tmp/gpufolds; rm -rf "$W"
"$B/dpersona" synth lidc "$W/raw" --studies 40 --seed 3 >/dev/null
"$B/dpersona" ingest lidc "$W/raw" --out "$W/data" --crop-size 128 >/dev/null
common=(--manifest "$W/data/manifest.parquet" --preset paper-lidc --stage 1 --epochs-stage1 1
        --select-on test --device cuda --quiet)
t0=$(date +%s.%N)
"$B/dpersona" train "${common[@]}" --fold 0 --out "$W/alone" >/dev/null
t1=$(date +%s.%N)
"$B/dpersona" train "${common[@]}" --folds 0,1,2,3 --out "$W/cv" >/dev/null
t2=$(date +%s.%N)
alone=$(echo "$t1 - $t0" | bc); four=$(echo "$t2 - $t1" | bc)
echo "one fold alone: ${alone} s; four folds at once: ${four} s" | tee "$OUT/folds.txt"

echo "== 3. CLI end to end on CUDA (bf16)"
W=/tmp/gpucli; rm -rf "$W"; mkdir -p "$W"
printf '[optim]\nprecision = "bf16"\n' > "$W/bf16.toml"
"$B/dpersona" synth lidc "$W/raw" --studies 12 --seed 3
"$B/dpersona" ingest lidc "$W/raw" --out "$W/data" --crop-size 64
"$B/dpersona" train --manifest "$W/data/manifest.parquet" --out "$W/runs/a" --preset small \
  --config "$W/bf16.toml" --device cuda --quiet
"$B/dpersona" eval --run "$W/runs/a" --out "$W/results.parquet" --samples 10 --bank 100 --device cuda
"$B/dpersona" report "$W/results.parquet" | tee "$OUT/report_cuda.txt"

echo
echo "== table (Stage-I step, batch 12, 128x128)"
printf '%-28s %10s %10s %8s\n' "what" "step ms" "images/s" "wait"
for p in fp32 bf16 bf16_bench fast; do
  s=$(key step_s "$OUT/ours_$p.txt")
  printf '%-28s %10.1f %10s %8s\n' "dpersona $p" "$(echo "$s*1000" | bc -l)" \
    "$(key images_per_s "$OUT/ours_$p.txt")" "$(key data_wait_share "$OUT/ours_$p.txt")"
done
for ac in none bf16 fast; do
  s=$(key step_s "$OUT/torch_$ac.txt")
  printf '%-28s %10.1f %10.1f %8s\n' "pytorch $ac" "$(echo "$s*1000" | bc -l)" \
    "$(echo "12/$s" | bc -l)" "-"
done
# The LIDC protocol: 4 folds x (100 + 100) epochs of ~1,070 steps; Stage II's step is
# cheaper, counted here at Stage I's cost (an upper bound).
for p in fp32 bf16 fast; do
  s=$(key step_s "$OUT/ours_$p.txt")
  echo "projected LIDC protocol, $p, folds one after another: $(echo "4*200*1070*$s/3600" | bc -l | cut -c1-5) h"
done
echo "four folds at once take ${four} s for what one fold alone takes ${alone} s"
