#!/usr/bin/env bash
# `make compare`: every method of the D-Persona comparison (baselines.md) trained with its
# authors' settings (`--preset compare`: data_manifests/presets/compare.toml plus
# presets/compare/<method>.toml) on synthetic data, each evaluated on the test split, for
# several seeds and two datasets; then the paper's Table 1 layout per dataset, one row per
# method pooled over the seeds (`report --by-method`: `mean [lo, hi] ±seed-std`), and the
# paper's claims tested on it (`report --claims`).
#
# Datasets (COMPARE_DATASETS, space-separated):
#   lidc  `synth lidc`: LIDC-style CT + XML, area-ranked raters (as the paper's LIDC), some
#         raters absent; slice units.
#   npc   `synth nifti`: NPC-style NIfTI volumes (t1, t1c, t2) whose four raters keep their
#         identity (so personalisation means something), nobody absent; volume units, as the
#         paper's NPC. Trained with the NPC augmentation (a --config written below).
# Layout: OUT/<dataset>/{raw,data} (one data set and split per dataset, the same for every
# seed), OUT/<dataset>/runs/<method>-s<seed> (one run per method and seed: the run name
# keeps the seeds apart in results.parquet, `--by-method` pools them),
# OUT/<dataset>/results.parquet, OUT/<dataset>/diagnostics/dpersona-s<seed>.{parquet,txt}
# (`dpersona diagnose` of each D-Persona run), OUT/<dataset>/timing.tsv (wall time and
# epochs per run; a resumed run's line is replaced, with the resumed time added).
#
# Re-running continues: existing data is reused, a finished run is resumed (nothing to do)
# and its evaluation rows are replaced. Knobs (environment):
#   COMPARE_OUT       output folder (compare_out)
#   COMPARE_SEEDS     training seeds, space-separated (COMPARE_SEED, else 7)
#   COMPARE_DATASETS  datasets, space-separated (lidc)
#   COMPARE_METHODS   methods, space-separated (all of them)
#   COMPARE_STUDIES   synthetic studies per dataset (default: lidc 48, npc 96: enough that
#                     the test split holds 113 slice units from 10 patients (lidc) and 19
#                     volume units (npc), and validation, which decides early stopping, is
#                     not a coin toss of 2 studies; 24 of each left 41 test slices and 5 test
#                     volumes, and NPC validation on 2 volumes stopped runs on noise)
#   COMPARE_DATA_SEED seed of the synthetic studies and of the split (7)
#   COMPARE_CROP      crop side in pixels (64)
#   COMPARE_PRESET    training preset (compare)
#   COMPARE_TRAIN_ARGS extra `dpersona train` flags for new runs, e.g. "--epochs-stage1 1
#                     --epochs-stage2 1" for a smoke test
#   DPERSONA          the dpersona binary (target/release/dpersona)
set -euo pipefail
cd "$(dirname "$0")/.."
DP=${DPERSONA:-target/release/dpersona}
OUT=${COMPARE_OUT:-compare_out}
SEEDS=${COMPARE_SEEDS:-${COMPARE_SEED:-7}}
DATASETS=${COMPARE_DATASETS:-lidc}
DATA_SEED=${COMPARE_DATA_SEED:-7}
CROP=${COMPARE_CROP:-64}
PRESET=${COMPARE_PRESET:-compare}
read -r -a TRAIN_ARGS <<<"${COMPARE_TRAIN_ARGS:-}"
METHODS=${COMPARE_METHODS:-"dpersona prob-unet unet-rater mv rs staple cm-global cm-pixel pionono tab"}
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

# "stage1 E (best B)" for every checkpoint sidecar of a run (unet-rater: one per rater).
epochs_of() {
  local out="" f e b
  while IFS= read -r f; do
    e=$(grep -o '"epoch": *[0-9]*' "$f" | grep -o '[0-9]*$' || true)
    b=$(grep -o '"best_epoch": *[0-9]*' "$f" | grep -o '[0-9]*$' || true)
    out+="${out:+, }$(basename "$(dirname "$(dirname "$f")")")/$(basename "$(dirname "$f")") $((e + 1)) (best $((b + 1)))"
  done < <(find "$1" -name last.json -path '*stage*' | sort)
  echo "${out:-none}"
}

for ds in $DATASETS; do
  dir="$OUT/$ds"
  mkdir -p "$dir/runs"
  config=()
  case "$ds" in
    lidc) synth=lidc; ingest=lidc; studies=${COMPARE_STUDIES:-48} ;;
    npc)
      synth=nifti; ingest=nifti; studies=${COMPARE_STUDIES:-96}
      # The NPC protocol's augmentation (rot90 + flip, small rotation, noise).
      printf '# written by scripts/compare.sh\n[loader]\naugment = "npc"\n' >"$dir/train.toml"
      config=(--config "$dir/train.toml") ;;
    *) echo "COMPARE_DATASETS: unknown dataset '$ds' (known: lidc npc)" >&2; exit 2 ;;
  esac
  if [ ! -f "$dir/data/manifest.parquet" ]; then
    step "$ds: synth $studies synthetic $synth studies (seed $DATA_SEED)"
    $DP synth "$synth" "$dir/raw" --studies "$studies" --seed "$DATA_SEED"
    step "$ds: ingest into Parquet slice shards + manifest"
    $DP ingest "$ingest" "$dir/raw" --out "$dir/data" --crop-size "$CROP"
  fi
  [ -f "$dir/timing.tsv" ] || printf 'dataset\tseed\tmethod\twall_s\tepochs\n' >"$dir/timing.tsv"
  for seed in $SEEDS; do
    for m in $METHODS; do
      run="$dir/runs/$m-s$seed"
      t0=$(date +%s)
      if [ -e "$run" ]; then
        step "$ds seed $seed: train $m: resume $run"
        $DP train --manifest "$dir/data/manifest.parquet" --out "$run" --resume --quiet
      else
        step "$ds seed $seed: train $m (preset $PRESET)"
        $DP train --manifest "$dir/data/manifest.parquet" --out "$run" --method "$m" \
          --preset "$PRESET" --seed "$seed" --quiet "${config[@]}" "${TRAIN_ARGS[@]}"
      fi
      # One line per run: a resumed run's line replaces the old one, its time added to it.
      before=$(awk -F'\t' -v d="$ds" -v s="$seed" -v m="$m" \
        '$1 == d && $2 == s && $3 == m { t = $4 } END { print t + 0 }' "$dir/timing.tsv")
      awk -F'\t' -v d="$ds" -v s="$seed" -v m="$m" '!($1 == d && $2 == s && $3 == m)' \
        "$dir/timing.tsv" >"$dir/timing.tsv.tmp"
      printf '%s\t%s\t%s\t%s\t%s\n' "$ds" "$seed" "$m" "$(( before + $(date +%s) - t0 ))" \
        "$(epochs_of "$run")" >>"$dir/timing.tsv.tmp"
      mv "$dir/timing.tsv.tmp" "$dir/timing.tsv"
      step "$ds seed $seed: eval $m"
      $DP eval --run "$run" --out "$dir/results.parquet" --samples 10 --bank 100
      if [ "$m" = dpersona ]; then
        # What the latent space carries (collapse, the bank's diversity, the heads'
        # attention): the README's explanation of the claims reads these.
        step "$ds seed $seed: diagnose $m"
        mkdir -p "$dir/diagnostics"
        $DP diagnose --run "$run" --out "$dir/diagnostics/$m-s$seed.parquet" --bank 100 \
          >"$dir/diagnostics/$m-s$seed.txt"
        cat "$dir/diagnostics/$m-s$seed.txt"
      fi
    done
  done
  step "$ds: report, one row per method over seeds ${SEEDS}"
  $DP report "$dir/results.parquet" --by-method --claims
  echo
  echo "wall time and epochs per run ($dir/timing.tsv):"
  column -t -s $'\t' "$dir/timing.tsv" 2>/dev/null || cat "$dir/timing.tsv"
done
echo
echo "compare finished in $(( $(date +%s) - start )) s; results in $OUT/<dataset>/results.parquet"
