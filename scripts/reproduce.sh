#!/usr/bin/env bash
# The paper's whole protocol on the paper's own data, then one report: the command a user
# with the data runs (on a GPU) to put dpersona's numbers beside Tables 1-2 of the paper.
#
#   scripts/reproduce.sh lidc lidc_attributes.pkl [OUT]   # 4 folds x (Stage I + Stage II)
#   scripts/reproduce.sh npc  MMIS2024TASK1/      [OUT]   # train / val (selection) / test
#
# lidc: `ingest lidc-pickle` (the authors' image-level folds, seed 1337), then for each fold
#       `train --fold K --select-on test` with the paper-lidc preset (the checkpoint is
#       picked on the fold's test split, as the authors do: LIDC has no val split) and `eval` with the paper's #10/#30/#50 samples and a 500-code bank.
#       The four runs are all named `dpersona` (OUT/runs/foldK/dpersona), so the report
#       prints one row per stage with the mean and std over the folds, as the paper does.
# npc:  `ingest mmis` (the release's folders; REPRO_VAL_FROM_TRAINING=80..99 reproduces the
#       follow-up work's validation set), `train` with the paper-npc preset (selection on
#       val) and `eval` on the test split; the public release has no test set, so without a
#       `testing/` folder the val split is evaluated and the report says so.
#
# Resumable: every step that finished is skipped on a rerun (ingest resumes its shards,
# train --resume continues an interrupted run, an evaluation leaves a marker when done).
# Knobs (defaults are the paper's): REPRO_PRESET, REPRO_EPOCHS_STAGE1, REPRO_EPOCHS_STAGE2,
# REPRO_SAMPLES (10,30,50), REPRO_BANK (500), REPRO_FOLDS (0 1 2 3), REPRO_DEVICE (auto),
# REPRO_SPLIT_PROTOCOL (image | patient, lidc), REPRO_VAL_FROM_TRAINING (npc), DPERSONA
# (the binary; default target/release/dpersona).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/reproduce.sh lidc PICKLE [OUT] | scripts/reproduce.sh npc MMIS_DIR [OUT]" >&2
  exit 2
}
[ $# -ge 2 ] || usage
dataset=$1
input=$2
OUT=${3:-reproduce_$dataset}
DP=${DPERSONA:-target/release/dpersona}
[ -x "$DP" ] || { echo "reproduce: $DP not found; run \`cargo build --release\` first" >&2; exit 1; }
[ -e "$input" ] || { echo "reproduce: $input does not exist" >&2; exit 1; }
SAMPLES=${REPRO_SAMPLES:-10,30,50}
BANK=${REPRO_BANK:-500}
DEVICE=${REPRO_DEVICE:-auto}
mkdir -p "$OUT/runs"
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

# Flags shared by every training run; empty knobs leave the preset's values.
train_flags=(--device "$DEVICE" --quiet)
[ -n "${REPRO_PRESET:-}" ] && train_flags+=(--preset "$REPRO_PRESET")
[ -n "${REPRO_EPOCHS_STAGE1:-}" ] && train_flags+=(--epochs-stage1 "$REPRO_EPOCHS_STAGE1")
[ -n "${REPRO_EPOCHS_STAGE2:-}" ] && train_flags+=(--epochs-stage2 "$REPRO_EPOCHS_STAGE2")

# train_and_eval RUN EVAL_MARKER [train flags...]: a new run, or --resume of an existing one
# (which finds a finished run finished), then one evaluation unless its marker exists.
train_and_eval() {
  local run=$1 marker=$2
  shift 2
  if [ -f "$run/config.toml" ]; then
    step "train: resume $run"
    "$DP" train --manifest "$OUT/data/manifest.parquet" --out "$run" --resume --quiet
  else
    step "train: $run"
    "$DP" train --manifest "$OUT/data/manifest.parquet" --out "$run" "${train_flags[@]}" "$@"
  fi
  if [ -f "$marker" ]; then
    step "eval: $run already evaluated ($marker)"
  else
    step "eval: $run (Stage I #$SAMPLES samples, Stage II bank $BANK)"
    "$DP" eval --run "$run" --out "$OUT/results.parquet" --samples "$SAMPLES" --bank "$BANK" \
      --device "$DEVICE" "${eval_flags[@]}"
    touch "$marker"
  fi
}

case "$dataset" in
  lidc)
    step "ingest: $input -> $OUT/data (the authors' folds)"
    "$DP" ingest lidc-pickle "$input" --out "$OUT/data" \
      --split-protocol "${REPRO_SPLIT_PROTOCOL:-image}"
    eval_flags=()
    for fold in ${REPRO_FOLDS:-0 1 2 3}; do
      train_and_eval "$OUT/runs/fold$fold/dpersona" "$OUT/runs/fold$fold/.evaluated" \
        --fold "$fold" --select-on test
    done
    ;;
  npc)
    ingest_flags=()
    [ -n "${REPRO_VAL_FROM_TRAINING:-}" ] \
      && ingest_flags+=(--val-from-training "$REPRO_VAL_FROM_TRAINING")
    step "ingest: $input -> $OUT/data (the release's training/validation/testing folders)"
    "$DP" ingest mmis "$input" --out "$OUT/data" "${ingest_flags[@]}"
    split=test
    if [ ! -d "$input/testing" ]; then
      split=val
      echo "reproduce: $input has no testing/ folder (the public MMIS-2024 release holds" \
        "training and validation only): the val split, which also picks the checkpoint, is" \
        "evaluated; these numbers are optimistic next to the paper's test set" >&2
    fi
    eval_flags=(--split "$split")
    train_and_eval "$OUT/runs/npc/dpersona" "$OUT/runs/npc/.evaluated-$split" --select-on val
    ;;
  *) usage ;;
esac

step "report"
"$DP" report "$OUT/results.parquet"
echo
echo "reproduce $dataset finished in $(( $(date +%s) - start )) s; results in $OUT/results.parquet"
