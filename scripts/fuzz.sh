#!/usr/bin/env bash
# Coverage-guided fuzzing of dpersona's readers of untrusted files (libFuzzer via cargo-fuzz).
#
#   scripts/fuzz.sh TARGET [SECONDS]   fuzz one target (default 120 s)
#   scripts/fuzz.sh all [SECONDS]      every target in turn, SECONDS each
#   scripts/fuzz.sh build              only build the targets
#   scripts/fuzz.sh list               the targets
#
# Works on a stable toolchain: cargo-fuzz passes rustc `-Z` flags, which RUSTC_BOOTSTRAP=1
# lets stable rustc accept (no nightly needed). `--sanitizer none`: the readers are safe
# Rust, so AddressSanitizer would only halve the speed; what we look for (panics, hangs,
# memory blow-ups) libFuzzer catches by itself (-timeout, -rss_limit_mb, -malloc_limit_mb).
# Debug assertions and overflow checks are on (`-a`, and fuzz/Cargo.toml's release
# profile): an integer overflow on a hostile size is a finding.
#
# Memory: -rss_limit_mb (FUZZ_RSS_MB, default 512) is what catches an allocation sized
# from a claim: with `--sanitizer none` libFuzzer has no malloc hooks, so
# -malloc_limit_mb (FUZZ_MALLOC_MB, default 256) only takes effect in a sanitizer build.
# No input of at most 64 KB needs 512 MB: the readers bound what a file may claim by
# what it holds (README, "Fuzzing").
#
# Set-up is automatic: cargo-fuzz is installed with `cargo install` if missing. The fuzz
# crate has its own target dir (fuzz/target) so it never thrashes the workspace's. Corpora
# grow in fuzz/corpus/TARGET (git-ignored; seeded from the committed fuzz/seeds/TARGET) and
# findings land in fuzz/artifacts/TARGET (git-ignored): minimise one with
#   scripts/fuzz.sh tmin TARGET fuzz/artifacts/TARGET/crash-...
# and turn it into a regression test (see README, "Fuzzing").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$root/fuzz/target"
TARGETS=(lidc_xml dicom_series nifti_volume predictions_folder lidc_pickle mmis_h5)
# Largest input per target: big enough for a few small files, small enough that a
# decompression bomb cannot legitimately need more than the memory limit.
declare -A MAX_LEN=([lidc_xml]=65536 [dicom_series]=65536 [nifti_volume]=32768
                    [predictions_folder]=65536 [lidc_pickle]=65536
                    [mmis_h5]=32768)
NICE="nice -n 10"
RSS_MB="${FUZZ_RSS_MB:-512}"
MALLOC_MB="${FUZZ_MALLOC_MB:-256}"

ensure_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "fuzz: installing cargo-fuzz (once per machine)" >&2
        $NICE cargo install cargo-fuzz --locked
    fi
}

build() {
    ensure_cargo_fuzz
    (cd fuzz && $NICE cargo fuzz build --sanitizer none -a -O "$@")
}

run_one() {
    local t="$1" secs="$2"
    [[ -n "${MAX_LEN[$t]:-}" ]] || { echo "fuzz: unknown target $t (try: ${TARGETS[*]})" >&2; exit 2; }
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    build "$t"
    echo "fuzz: $t for ${secs}s" >&2
    # Inside fuzz/: cargo fuzz finds its crate there; corpus dirs are relative to it.
    # Each crash/timeout/OOM is written to artifacts/ and ends the run (exit code != 0).
    # Address space capped at 1.2 GB: a parser's fallible reservation of a size a file
    # merely claims (dicom-parser's try_reserve_exact of an element's declared length) then
    # fails into its clean error, as it would on a machine short of memory, instead of
    # zero-filling gigabytes; an infallible allocation that large still aborts (a finding).
    # A claim that fits under the cap but zero-fills past -rss_limit_mb is an OOM finding.
    (ulimit -v "${FUZZ_AS_KB:-1228800}"; cd fuzz && $NICE cargo fuzz run --sanitizer none -a -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$MALLOC_MB" \
        -max_len="${MAX_LEN[$t]}" -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/")
}

case "${1:-}" in
    list) printf '%s\n' "${TARGETS[@]}" ;;
    build) build ;;
    all)
        for t in "${TARGETS[@]}"; do run_one "$t" "${2:-120}"; done ;;
    tmin)
        ensure_cargo_fuzz
        (cd fuzz && $NICE cargo fuzz tmin --sanitizer none -a -O "$2" "$(realpath --relative-to=fuzz "$3")" -- \
            -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$MALLOC_MB" -timeout=10) ;;
    ""|-h|--help) sed -n '2,8p' "$0" ;;
    *) run_one "$1" "${2:-120}" ;;
esac
