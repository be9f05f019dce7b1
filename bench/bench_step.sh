#!/usr/bin/env bash
# Stage-I training step of the paper model (ResNet-34 U-Net + prior + posterior + Fcomb, K=10
# bound loss, Adam), batch 12, 128x128, CPU, 2 threads: dpersona (release build of
# train/examples/step_bench.rs, fed by its loader) next to the same model and loss in PyTorch
# (bench/step_reference.py, same torch from .venv), in the same run. The two alternate for
# STEP_BENCH_ROUNDS rounds and each side keeps its best round, so that a burst of load from
# other processes hits both alike; the load average is printed with the rows.
#
# FLOPs per step are counted by torch.utils.flop_counter on the reference (forward, and
# forward + backward; convolutions and matmuls only) and the sgemm rate is the best 4096^3
# f32 matmul through torch.mm (Python) and at::mm via tch (ours), measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f scripts/env.sh ] && source scripts/env.sh
PY="${DPERSONA_PYTHON:-.venv/bin/python}"
STEPS="${STEP_BENCH_STEPS:-3}"
ROUNDS="${STEP_BENCH_ROUNDS:-2}"
THREADS=2
cargo build --quiet --release -p train --example step_bench
BIN=target/release/examples/step_bench
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
key() { sed -n "s/^.*\b$1=\([^ ]*\).*$/\1/p" "$2" | head -n1; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
ours_s=""; ref_s=""
for r in $(seq 1 "$ROUNDS"); do
  "$BIN" "$work/data" --steps "$STEPS" --warmup 1 --batch 12 --threads "$THREADS" \
    --loader-threads 2 --sgemm-n 4096 >"$work/ours_$r.txt" 2>/dev/null
  "$PY" bench/step_reference.py --steps "$STEPS" --warmup 1 --batch 12 --threads "$THREADS" \
    --sgemm-n 4096 >"$work/ref_$r.txt"
  o=$(key step_s "$work/ours_$r.txt"); p=$(key step_s "$work/ref_$r.txt")
  if [ -z "$ours_s" ] || awk -v a="$o" -v b="$ours_s" 'BEGIN { exit !(a < b) }'; then ours_s=$o; ours_f="$work/ours_$r.txt"; fi
  if [ -z "$ref_s" ] || awk -v a="$p" -v b="$ref_s" 'BEGIN { exit !(a < b) }'; then ref_s=$p; ref_f="$work/ref_$r.txt"; fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
fwd=$(key fwd_gflop "$ref_f"); fwd3=$(key fwd_x3_gflop "$ref_f"); fb=$(key fwd_bwd_gflop "$ref_f")
ours_cpu=$(key cpu_s_per_step "$ours_f"); ref_cpu=$(key cpu_s_per_step "$ref_f")
ours_gemm=$(key sgemm_gflop_per_s "$ours_f"); ref_gemm=$(key sgemm_gflop_per_s "$ref_f")
split() { echo "fwd $(key forward_s "$1") / bwd $(key backward_s "$1") / Adam $(key adam_s "$1") s"; }
notes="best of ${ROUNDS} alternating rounds of ${STEPS} timed steps (+1 warm-up); load avg ${load_before} before, ${load_after} after, $(nproc) cores"
echo "| Stage-I train step, paper model, batch 12, 128x128, CPU ${THREADS} threads | ${ours_s} s/step ($(split "$ours_f"); ${ours_cpu} CPU-s) | ${ref_s} s/step ($(split "$ref_f"); ${ref_cpu} CPU-s) | $(awk -v a="$ref_s" -v b="$ours_s" 'BEGIN { printf "%.2fx", a / b }') | reference/ours time (>1: ours faster), target >= 1x; ${notes} |"
gf() { awk -v g="$fb" -v s="$1" 'BEGIN { printf "%.1f", g / s }'; }
share() { awk -v g="$fb" -v s="$1" -v m="$2" 'BEGIN { printf "%.0f%%", 100 * g / s / m }'; }
echo "| Stage-I step achieved GFLOP/s (share of same-run 4096^3 sgemm) | $(gf "$ours_s") GFLOP/s ($(share "$ours_s" "$ours_gemm") of ${ours_gemm}) | $(gf "$ref_s") GFLOP/s ($(share "$ref_s" "$ref_gemm") of ${ref_gemm}) | $(awk -v a="$ref_s" -v b="$ours_s" 'BEGIN { printf "%.2fx", a / b }') | ${fb} GFLOP per step = forward + backward counted by torch.utils.flop_counter (forward alone ${fwd}, x3 = ${fwd3}); target >= 60% of sgemm |"
echo "| sgemm 4096^3 f32, ${THREADS} threads | ${ours_gemm} GFLOP/s (at::mm via tch) | ${ref_gemm} GFLOP/s (torch.mm) | $(awk -v a="$ours_gemm" -v b="$ref_gemm" 'BEGIN { printf "%.2fx", a / b }') | best of 3 after a warm-up, same run |"
