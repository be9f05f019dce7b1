#!/usr/bin/env bash
# Ingest throughput and peak memory: `dpersona ingest lidc` vs a pydicom/numpy/pyarrow
# reference converter (bench/ingest_reference.py) on the same synthetic LIDC set, measured
# in the same run; then dpersona again at 8x the studies to show peak RSS stays flat
# (bounded channel, row-group-sized writes).
# Prints Markdown rows: | benchmark | dpersona | reference | ratio | notes |
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DPERSONA_BIN:-target/release/dpersona}
PY=${DPERSONA_PYTHON:-.venv/bin/python}
N=${BENCH_INGEST_STUDIES:-50}
[ -x "$BIN" ] || cargo build --release -p dpersona -p torch_commands >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# measure OUTFILE CMD...: wall seconds, peak RSS (kB) and CPU seconds (user + sys) of CMD
# via GNU time.
measure() {
  local out=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$out" "$@" > "$out.stdout" 2> "$out.stderr" || { cat "$out.stderr" >&2; return 1; }
}
rows_of() { "$PY" -c "import polars as pl,sys; print(pl.read_parquet(sys.argv[1]+'/manifest.parquet')['n_slices'].sum())" "$1"; }

"$BIN" synth lidc "$work/raw" --studies "$N" --seed 1337 > /dev/null
measure "$work/dp.time" "$BIN" ingest lidc "$work/raw" --out "$work/dp"
measure "$work/ref.time" "$PY" bench/ingest_reference.py "$work/raw" "$work/ref"
read -r dp_s dp_kb dp_u dp_sys < "$work/dp.time"
read -r ref_s ref_kb ref_u ref_sys < "$work/ref.time"
dp_rows=$(rows_of "$work/dp")
ref_rows=$(tail -n1 "$work/ref.time.stdout")
awk -v np="$(nproc)" -v n="$N" -v dr="$dp_rows" -v ds="$dp_s" -v rr="$ref_rows" -v rs="$ref_s" -v dk="$dp_kb" -v rk="$ref_kb" \
    -v du="$dp_u" -v dsy="$dp_sys" -v ru="$ref_u" -v rsy="$ref_sys" -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
  d = dr / ds; r = rr / rs; dc = du + dsy; rc = ru + rsy
  printf "| ingest lidc, %d studies (slices/s) | %.0f | %.0f | %.1fx | %d vs %d rows; %d cores, load %s; both hash sources (SHA-256) and write zstd Parquet |\n", n, d, r, d / r, dr, rr, np, load
  printf "| ingest lidc, %d studies (CPU ms per study, user+sys) | %.1f | %.1f | %.1fx | lower is better; wall %.2f s vs %.2f s |\n", n, 1000 * dc / n, 1000 * rc / n, rc / dc, ds, rs
  printf "| ingest lidc, %d studies (peak RSS MB) | %.0f | %.0f | %.2fx | lower is better |\n", n, dk / 1024, rk / 1024, dk / rk
}'

# Process start alone: the dpersona binary does not link libtorch (train/eval load it from
# libdpersona_torch.so when run), so this is just the binary; the reference's equivalent
# is importing its modules. Both are included in the rows above.
measure "$work/dp0.time" "$BIN" --help
measure "$work/ref0.time" "$PY" -c "import hashlib, numpy, pyarrow.parquet, pydicom, scipy.sparse.csgraph, scipy.spatial, matplotlib.path"
read -r dp0_s dp0_kb _ _ < "$work/dp0.time"
read -r ref0_s ref0_kb _ _ < "$work/ref0.time"
awk -v ds="$dp0_s" -v rs="$ref0_s" -v dk="$dp0_kb" -v rk="$ref0_kb" 'BEGIN {
  printf "| process start only (s; peak RSS MB) | %.2f; %.0f | %.2f; %.0f | %.2fx | `dpersona --help` (libtorch is loaded only by train/eval) vs the reference'"'"'s imports; part of every row above |\n", ds, dk / 1024, rs, rk / 1024, ds / rs
}'

N8=$((N * 8))
"$BIN" synth lidc "$work/raw8" --studies "$N8" --seed 1337 > /dev/null
measure "$work/dp8.time" "$BIN" ingest lidc "$work/raw8" --out "$work/dp8"
read -r dp8_s dp8_kb _ _ < "$work/dp8.time"
dp8_rows=$(rows_of "$work/dp8")
awk -v n="$N" -v n8="$N8" -v dk="$dp_kb" -v dk8="$dp8_kb" -v r8="$dp8_rows" -v s8="$dp8_s" 'BEGIN {
  printf "| ingest lidc peak RSS, %d vs %d studies (MB) | %.0f | %.0f | %.2fx | flat memory: %d-study run at %.0f slices/s |\n", n8, n, dk8 / 1024, dk / 1024, dk8 / dk, n8, r8 / s8
}'
