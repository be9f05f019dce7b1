#!/usr/bin/env bash
# LIDC pickle ingest throughput and peak memory: `dpersona ingest lidc-pickle` (restricted
# unpickler over a memory map, arrays decoded per row) vs pickle.load + numpy + pyarrow
# (bench/lidc_pickle_reference.py) on the same MedicalMatting-style pickle, same run.
# Prints Markdown rows: | benchmark | dpersona | reference | ratio | notes |
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DPERSONA_BIN:-target/release/dpersona}
PY=${DPERSONA_PYTHON:-.venv/bin/python}
N=${BENCH_PICKLE_ITEMS:-4000}
[ -x "$BIN" ] || cargo build --release -p dpersona >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# measure OUTFILE CMD...: wall seconds, peak RSS (kB), user and sys CPU seconds (GNU time).
measure() {
  local out=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$out" "$@" > "$out.stdout" 2> "$out.stderr" || { cat "$out.stderr" >&2; return 1; }
}
rows_of() { "$PY" -c "import polars as pl,sys; print(pl.read_parquet(sys.argv[1]+'/manifest.parquet')['n_slices'].sum())" "$1"; }

"$PY" bench/lidc_pickle_reference.py write "$N" "$work/lidc.pkl"
mb=$(du -m "$work/lidc.pkl" | cut -f1)
measure "$work/dp.time" "$BIN" ingest lidc-pickle "$work/lidc.pkl" --out "$work/dp"
measure "$work/ref.time" "$PY" bench/lidc_pickle_reference.py "$work/lidc.pkl" "$work/ref"
read -r dp_s dp_kb dp_u dp_y < "$work/dp.time"
read -r ref_s ref_kb ref_u ref_y < "$work/ref.time"
dp_rows=$(rows_of "$work/dp")
ref_rows=$(tail -n1 "$work/ref.time.stdout")
awk -v np="$(nproc)" -v n="$N" -v mb="$mb" -v dr="$dp_rows" -v ds="$dp_s" -v rr="$ref_rows" -v rs="$ref_s" \
    -v dk="$dp_kb" -v rk="$ref_kb" -v dc="$(awk -v u="$dp_u" -v y="$dp_y" 'BEGIN{print u+y}')" \
    -v rc="$(awk -v u="$ref_u" -v y="$ref_y" 'BEGIN{print u+y}')" -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
  printf "| ingest lidc-pickle, %d items, %d MB (slices/s) | %.0f | %.0f | %.1fx | %d vs %d rows; %d cores, load %s; both hash the file and write zstd Parquet |\n", n, mb, dr / ds, rr / rs, (dr / ds) / (rr / rs), dr, rr, np, load
  printf "| ingest lidc-pickle, %d items (CPU s, user + sys) | %.2f | %.2f | %.1fx | on a host whose other jobs fill the cores, the wall ratio tends to this one |\n", n, dc, rc, rc / dc
  printf "| ingest lidc-pickle, %d items (peak RSS MB) | %.0f | %.0f | %.2fx | lower is better; the reference holds the unpickled dict, dpersona maps the file |\n", n, dk / 1024, rk / 1024, dk / rk
}'
