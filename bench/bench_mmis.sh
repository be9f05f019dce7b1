#!/usr/bin/env bash
# MMIS ingest throughput and peak memory: `dpersona ingest mmis` vs an h5py/scipy/pyarrow
# reference converter (bench/mmis_reference.py) on the same release-like set of HDF5 cases,
# measured in the same run.
# Prints Markdown rows: | benchmark | dpersona | reference | ratio | notes |
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${DPERSONA_BIN:-target/release/dpersona}
PY=${DPERSONA_PYTHON:-.venv/bin/python}
N=${BENCH_MMIS_CASES:-40}
[ -x "$BIN" ] || cargo build --release -p dpersona -p torch_commands >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# measure OUTFILE CMD...: wall seconds, peak RSS (kB) and CPU seconds (user + sys) of CMD.
measure() {
  local out=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$out" "$@" > "$out.stdout" 2> "$out.stderr" || { cat "$out.stderr" >&2; return 1; }
}
rows_of() { "$PY" -c "import polars as pl,sys; print(pl.read_parquet(sys.argv[1]+'/manifest.parquet')['n_slices'].sum())" "$1"; }

"$PY" bench/mmis_reference.py synth "$work/raw" "$N"
measure "$work/dp.time" "$BIN" ingest mmis "$work/raw" --out "$work/dp"
measure "$work/ref.time" "$PY" bench/mmis_reference.py convert "$work/raw" "$work/ref"
read -r dp_s dp_kb dp_u dp_sys < "$work/dp.time"
read -r ref_s ref_kb ref_u ref_sys < "$work/ref.time"
dp_rows=$(rows_of "$work/dp")
ref_rows=$(tail -n1 "$work/ref.time.stdout")
awk -v np="$(nproc)" -v n="$N" -v dr="$dp_rows" -v ds="$dp_s" -v rr="$ref_rows" -v rs="$ref_s" -v dk="$dp_kb" -v rk="$ref_kb" \
    -v du="$dp_u" -v dsy="$dp_sys" -v ru="$ref_u" -v rsy="$ref_sys" -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
  d = dr / ds; r = rr / rs; dc = du + dsy; rc = ru + rsy
  printf "| ingest mmis, %d cases (slices/s) | %.0f | %.0f | %.1fx | %d vs %d rows; %d cores, load %s; both hash sources (SHA-256), zoom to 128 and write zstd Parquet |\n", n, d, r, d / r, dr, rr, np, load
  printf "| ingest mmis, %d cases (CPU ms per case, user+sys) | %.1f | %.1f | %.1fx | lower is better; wall %.2f s vs %.2f s |\n", n, 1000 * dc / n, 1000 * rc / n, rc / dc, ds, rs
  printf "| ingest mmis, %d cases (peak RSS MB) | %.0f | %.0f | %.2fx | lower is better |\n", n, dk / 1024, rk / 1024, dk / rk
}'
