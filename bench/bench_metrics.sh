#!/usr/bin/env bash
# Metrics for 1000 units x 50 samples x 4 raters at 128x128: dpersona (eval::score_units,
# release build, all cores) on all UNITS units, next to two Python references timed in the
# same run on REF_UNITS units each (they are slow) and compared per unit:
#  - the AUTHORS' way (bench/metrics_authors_reference.py: torch tensors, one-hot
#    [n, m, P, 2] broadcast IoUs, a Python loop of torch Dice calls, scipy Hungarian),
#    the issue's target being >= 200x;
#  - an efficient numpy of the same definitions (bench/metrics_reference.py).
# Prints two Markdown table rows.
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
ours_unit_ms=$(awk -v s="$ours_s" -v u="$UNITS" 'BEGIN{printf "%.3f", 1000*s/u}')
py=${DPERSONA_PYTHON:-.venv/bin/python}
load=$(cut -d' ' -f1-3 /proc/loadavg)
row() { # name script
  local per_unit ratio
  per_unit=$("$py" "$2" "$REF_UNITS" "$N" "$R" "$SIZE" | sed -n 's/seconds_per_unit=//p')
  ratio=$(awk -v p="$per_unit" -v s="$ours_s" -v u="$UNITS" 'BEGIN{printf "%.0f", p/(s/u)}')
  echo "| metrics ${UNITS}u x ${N}s x ${R}r @${SIZE}² vs $1 | ${ours_s} s = ${ours_unit_ms} ms/unit ($PROFILE, $threads threads) | ${per_unit} s/unit ($1, timed on ${REF_UNITS} units; x${UNITS} = $(awk -v p="$per_unit" -v u="$UNITS" 'BEGIN{printf "%.0f", p*u}') s) | ${ratio}x per unit | GED+Dice_soft+Dice_max(2)+Dice_match+per-rater; load avg $load |"
}
row "authors' torch/numpy" bench/metrics_authors_reference.py
row "efficient numpy" bench/metrics_reference.py
