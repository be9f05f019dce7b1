#!/usr/bin/env bash
# `make bench`: runs every bench/bench_*.sh. Each prints one or more Markdown table rows
# measuring dpersona next to a reference implementation in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
echo "| benchmark | dpersona | reference | ratio | notes |"
echo "|---|---|---|---|---|"
status=0
for b in bench/bench_*.sh; do
  [ -e "$b" ] || continue
  bash "$b" || { echo "| $(basename "$b") | FAILED | | | |"; status=1; }
done
exit $status
