"""Joins a results frame with the slice shards of its manifest in polars, on
(study_id, target_id, slice_index), and checks that every metric row finds the slice it
scored: exactly one shard row each, the same z_mm, and a dice_max that numpy recomputes
from that shard row's bit-packed rater masks.

Usage: results_join_shards.py RESULTS "CX CY R SIDE" SHARD [SHARD ...]
  Every prediction of every unit was the disc of radius R around column CX, row CY on a
  SIDE x SIDE slice (p = 0.9 inside, 0.1 outside: foreground where p > 0.5). With all
  predictions equal, dice_max = mean over PRESENT raters of Dice(disc, rater mask),
  Dice = (2|A n B| + 1e-8) / (|A| + |B| + 1e-8) (MetricOptions::default()).
A join on the wrong keys (slice_index shifted by one) must disagree, or the check could
not fail.
"""
import sys

import numpy as np
import polars as pl

results_path, disc, shard_paths = sys.argv[1], sys.argv[2], sys.argv[3:]
cx, cy, r, side = (float(v) for v in disc.split())
side = int(side)
rows, cols = np.mgrid[0:side, 0:side]
pred = (np.sqrt((cols - cx) ** 2 + (rows - cy) ** 2) < r).astype(np.uint8)
EPS = 1e-8
KEYS = ["study_id", "target_id", "slice_index"]


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


results = pl.read_parquet(results_path)
for c in ("slice_index", "z_mm"):
    if c not in results.columns:
        fail(f"{results_path} has no column {c}: {results.columns}")
if results["slice_index"].null_count() or results["z_mm"].null_count():
    fail("slice units must carry slice_index and z_mm in every row")
shards = pl.concat(
    [pl.read_parquet(p, columns=KEYS + ["z_mm", "height", "width", "masks", "raters_present"])
     for p in shard_paths]
)
if shards.select(KEYS).is_duplicated().any():
    fail("the shards hold a (study, target, slice_index) twice")


def expected_dice_max(row):
    h, w = row["height"], row["width"]
    present = row["raters_present"]
    n = len(present) * h * w
    bits = np.unpackbits(np.frombuffer(row["masks"], np.uint8))[:n].reshape(len(present), h, w)
    dice = [
        (2 * np.sum(pred & bits[k]) + EPS) / (np.sum(pred) + np.sum(bits[k]) + EPS)
        for k in range(len(present)) if present[k]
    ]
    return float(np.mean(dice))


def check(joined, strict):
    """Number of dice_max rows whose value disagrees with the joined slice's masks."""
    bad = 0
    for row in joined.filter(pl.col("metric") == "dice_max").iter_rows(named=True):
        want = expected_dice_max(row)
        if abs(row["value"] - want) > 1e-12:
            bad += 1
            if strict:
                print(f"{row['study_id']}/{row['target_id']} slice {row['slice_index']}: "
                      f"dice_max {row['value']} but the joined slice gives {want}", file=sys.stderr)
    return bad


shard_cols = shards.rename({"z_mm": "z_mm_shard"})
joined = results.join(shard_cols, on=KEYS, how="inner")
if joined.height != results.height:
    fail(f"{results.height} metric rows but {joined.height} joined a shard row")
if (joined["z_mm"] != joined["z_mm_shard"]).any():
    fail("z_mm of a metric row differs from the z_mm of the slice it joins")
n_dice = joined.filter(pl.col("metric") == "dice_max").height
if n_dice != shards.height:
    fail(f"{n_dice} dice_max rows for {shards.height} slices")
values = joined.filter(pl.col("metric") == "dice_max")["value"]
if values.n_unique() < 3:
    fail(f"dice_max takes {values.n_unique()} values only: the check cannot tell slices apart")
bad = check(joined, strict=True)
if bad:
    fail(f"{bad} dice_max rows disagree with the slice they join")

# Negative control: joined to the next slice of the same target, rows must disagree.
shifted = results.with_columns(pl.col("slice_index") + 1).join(shard_cols, on=KEYS, how="inner")
if shifted.height and check(shifted, strict=False) == 0:
    fail("a join on the neighbouring slice agrees too: the check cannot fail")
print(f"joined {results.height} metric rows to {shards.height} slices; "
      f"{n_dice} dice_max values recomputed from the joined masks agree "
      f"({values.n_unique()} distinct); the shifted join disagrees on "
      f"{check(shifted, strict=False)} of {shifted.filter(pl.col('metric') == 'dice_max').height}")
