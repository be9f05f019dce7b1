"""Reads a dpersona results.parquet and its summary with polars (independently of dpersona)
and checks that the summary's means and population stds are those of the metric rows:
per (run, method, stage, n_samples, bank, n_outputs, fold, metric) over units, and over
the fold means (fold = null). Prints the across-fold means as JSON for the report test.

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

per_fold = results.group_by(KEY + ["fold"]).agg(
    pl.col("value").mean().alias("mean_pl"), pl.col("value").std(ddof=0).alias("std_pl"), pl.len().alias("n_pl"))
across = per_fold.group_by(KEY).agg(
    pl.col("mean_pl").mean().alias("mean_pl"), pl.col("mean_pl").std(ddof=0).alias("std_pl"), pl.len().alias("n_pl"))

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
                    | (pl.col("count") != pl.col("n_pl")))
    if diff.height:
        print(diff)
        bad += diff.height
if bad:
    sys.exit(f"{bad} summary rows disagree with polars")
print(f"summary OK: {s_fold.height} per-fold rows, {s_all.height} across-fold rows, {results.height} metric rows")
out = {f"{r['method']}|{r['stage']}|{r['n_samples']}|{r['bank']}|{r['metric']}": [r["mean_pl"], r["std_pl"], r["n_pl"]] for r in across.iter_rows(named=True)}
print("ACROSS " + json.dumps(out))
