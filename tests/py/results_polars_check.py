"""Reads a dpersona results.parquet and its summary with polars (independently of dpersona)
and checks that the summary's means and population stds are those of the metric rows:
per (run, method, stage, n_samples, bank, n_outputs, fold, metric) over units, and over
the fold means (fold = null). Prints the across-fold means as JSON for the report test.

Summary version 2: with several `seed` values in a group, a fold's mean is the mean of the
per-seed means and `seed_std` their population std (null with one seed); `std` and `count`
stay over the pooled values. `n_units` counts distinct units (study, target, slice index or
unit index) per fold (summed across folds), `seeds` distinct seeds, and the bootstrap
interval [ci_lo, ci_hi] must hold the mean (its exact values are checked against numpy in
eval/tests/stats_vs_scipy.rs).

Usage: results_polars_check.py RESULTS SUMMARY
"""
import json
import sys

import polars as pl

KEY = ["run", "method", "stage", "n_samples", "bank", "n_outputs", "metric"]

results = pl.read_parquet(sys.argv[1])
summary = pl.read_parquet(sys.argv[2])
assert results.height > 0, "no rows"
assert set(["run", "metric", "value", "fold", "unit"]).issubset(results.columns), results.columns

results = results.with_columns(
    pl.when(pl.col("slice_index").is_not_null())
    .then(pl.format("s{}", pl.col("slice_index")))
    .otherwise(pl.format("u{}", pl.col("unit_index")))
    .alias("pos"))
per_seed = results.group_by(KEY + ["fold", "seed"]).agg(pl.col("value").mean().alias("seed_mean"))
seed_stats = per_seed.group_by(KEY + ["fold"]).agg(
    pl.col("seed_mean").mean().alias("mean_pl"),
    pl.col("seed_mean").std(ddof=0).alias("seed_std_pl"),
    pl.len().alias("seeds_pl"))
pooled = results.group_by(KEY + ["fold"]).agg(
    pl.col("value").std(ddof=0).alias("std_pl"), pl.len().alias("n_pl"),
    pl.struct("study_id", "target_id", "pos").n_unique().alias("units_pl"))
per_fold = pooled.join(seed_stats, on=KEY + ["fold"])
# Each seed's across-fold mean (mean of its fold means), then their spread.
seed_across = per_seed.group_by(KEY + ["seed"]).agg(pl.col("seed_mean").mean()).group_by(KEY).agg(
    pl.col("seed_mean").std(ddof=0).alias("seed_std_pl"), pl.len().alias("seeds_pl"))
across = per_fold.group_by(KEY).agg(
    pl.col("mean_pl").mean().alias("mean_pl"), pl.col("mean_pl").std(ddof=0).alias("std_pl"), pl.len().alias("n_pl"),
    pl.col("units_pl").sum().alias("units_pl")).join(seed_across, on=KEY)
for name in ("per_fold", "across"):
    frame = globals()[name].with_columns(
        pl.when(pl.col("seeds_pl") > 1).then(pl.col("seed_std_pl")).otherwise(None).alias("seed_std_pl"),
        pl.col("seeds_pl").cast(pl.UInt32), pl.col("units_pl").cast(pl.UInt32))
    globals()[name] = frame
assert set(["ci_lo", "ci_hi", "n_units", "seeds", "seed_std"]).issubset(summary.columns), summary.columns

s_fold = summary.filter(pl.col("fold").is_not_null())
s_all = summary.filter(pl.col("fold").is_null())
assert s_fold.height == per_fold.height, (s_fold.height, per_fold.height)
assert s_all.height == across.height, (s_all.height, across.height)

bad = 0
for got, want, keys in ((s_fold, per_fold, KEY + ["fold"]), (s_all, across, KEY)):
    j = got.join(want.with_columns(pl.col("n_pl").cast(pl.UInt32)), on=keys, how="inner")
    assert j.height == got.height, "summary keys do not match the groups of the results"
    diff = j.filter(((pl.col("mean") - pl.col("mean_pl")).abs() > 1e-12)
                    | ((pl.col("std") - pl.col("std_pl")).abs() > 1e-12)
                    | (pl.col("count") != pl.col("n_pl"))
                    | (pl.col("n_units") != pl.col("units_pl"))
                    | (pl.col("seeds") != pl.col("seeds_pl"))
                    | (pl.col("seed_std").is_null() != pl.col("seed_std_pl").is_null())
                    | ((pl.col("seed_std") - pl.col("seed_std_pl")).abs() > 1e-12)
                    | ~((pl.col("ci_lo") <= pl.col("mean") + 1e-12) & (pl.col("mean") <= pl.col("ci_hi") + 1e-12)))
    if diff.height:
        print(diff)
        bad += diff.height
if bad:
    sys.exit(f"{bad} summary rows disagree with polars")
print(f"summary OK: {s_fold.height} per-fold rows, {s_all.height} across-fold rows, {results.height} metric rows")
out = {f"{r['method']}|{r['stage']}|{r['n_samples']}|{r['bank']}|{r['metric']}": [r["mean_pl"], r["std_pl"], r["n_pl"]] for r in across.iter_rows(named=True)}
print("ACROSS " + json.dumps(out))
full = {f"{r['run']}|{r['method']}|{r['stage']}|{r['n_samples']}|{r['bank']}|{r['metric']}":
        [r["mean_pl"], r["std_pl"], r["n_pl"], r["seeds_pl"], r["seed_std_pl"], r["units_pl"]]
        for r in across.iter_rows(named=True)}
print("ACROSS_RUNS " + json.dumps(full))
