#!/usr/bin/env bash
# Metrics for 1000 units x 50 samples x 4 raters at 128x128: dpersona (eval::score_units,
# release build, all cores) next to a numpy implementation in the authors' style, timed on
# REF_UNITS units (default 20) and extrapolated linearly to 1000 (the reference takes about
# a second per unit). Prints one Markdown table row.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh >/dev/null 2>&1 || true
UNITS=${UNITS:-1000}; N=${N:-50}; R=${R:-4}; SIZE=${SIZE:-128}; REF_UNITS=${REF_UNITS:-20}
PROFILE=${BENCH_PROFILE:-release}
flag=$([ "$PROFILE" = release ] && echo --release || echo)
cargo build -q $flag -p eval --example bench_metrics
bin=target/$([ "$PROFILE" = release ] && echo release || echo debug)/examples/bench_metrics
ours=$("$bin" "$UNITS" "$N" "$R" "$SIZE")
ours_s=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$ours")
threads=$(sed -n 's/.*threads=\([0-9]*\).*/\1/p' <<<"$ours")
py=${DPERSONA_PYTHON:-.venv/bin/python}
per_unit=$("$py" bench/metrics_reference.py "$REF_UNITS" "$N" "$R" "$SIZE" | sed -n 's/seconds_per_unit=//p')
ref_s=$(awk -v p="$per_unit" -v u="$UNITS" 'BEGIN{printf "%.1f", p*u}')
ratio=$(awk -v a="$ref_s" -v b="$ours_s" 'BEGIN{printf "%.0f", a/b}')
echo "| metrics ${UNITS}u x ${N}s x ${R}r @${SIZE}² | ${ours_s} s ($PROFILE, $threads threads) | ${ref_s} s (numpy, ${per_unit} s/unit x ${UNITS}, timed on ${REF_UNITS} units) | ${ratio}x | GED+Dice_soft+Dice_max(2)+Dice_match+per-rater |"
