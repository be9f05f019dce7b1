"""Prints the folds and run names of a results.parquet, read with polars (tests/train_folds.rs)."""
import sys

import polars as pl

frame = pl.read_parquet(sys.argv[1])
print(sorted(frame["fold"].unique().to_list()), sorted(frame["run"].unique().to_list()))
