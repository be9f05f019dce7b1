"""Independent check of a `dpersona diagnose` frame with polars and numpy.

Usage: diagnostics_numpy.py FRAME DATA_DIR SPLIT BANK LATENT_DIM

Against the shards alone (no dpersona code):
* the frame's rows cover exactly the split's slices (study, target, slice), for both stages;
* `rater_agreement` is, per slice, numpy's mean pairwise Dice (eps 1e-8) over the raters
  present on that slice (bit-unpacked from the shard), and is absent where fewer than two
  raters read it;
* per-rater quantities (`bank_best_dice`, `bank_mean_dice`, `head_dice`) exist exactly for
  the present raters;
* the ranges every quantity must obey: KL per dim >= 0 on all LATENT_DIM dims, sigma > 0,
  1 <= distinct masks <= BANK, Dice and 1 - IoU in [0, 1], best draw >= mean draw,
  attention entropy in [0, 1], largest weight in [1/BANK, 1], whole numbers of dead query
  channels in [0, LATENT_DIM].
Exits non-zero with a message on the first mismatch.
"""
import itertools
import sys
from pathlib import Path

import json

import numpy as np
import polars as pl
import pyarrow.parquet as pq


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


frame_path, data, split, bank, latent = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
frame = pl.read_parquet(frame_path)
manifest = pl.read_parquet(data / "manifest.parquet")
studies = set(manifest.filter(pl.col("split") == split)["study_id"].to_list())
shards = pl.read_parquet(data / "shards" / "*.parquet").filter(pl.col("study_id").is_in(list(studies)))
if shards.height == 0:
    fail(f"split {split} has no slices")

# The model sees the raters of an `area_rank` manifest (LIDC) in ascending order of mask
# area, ties in manifest order (a stable sort), absent raters (empty) first: rater index k
# in the frame is that order's k-th channel (method.md 1.2 step 6).
header = json.loads(pq.read_metadata(data / "manifest.parquet").metadata[b"dpersona.manifest"])
ranked = header["rater_order"] == "area_rank"

key = ["study_id", "target_id", "slice_index"]
for stage in (1, 2):
    got = frame.filter(pl.col("stage") == stage).select(key).unique().sort(key)
    want = shards.select(key).unique().sort(key)
    if not got.equals(want):
        fail(f"stage {stage}: the frame covers {got.height} slices, the split has {want.height}")

agreement = {}
present_of = {}
for row in shards.iter_rows(named=True):
    present = row["raters_present"]
    r, h, w = len(present), row["height"], row["width"]
    bits = np.unpackbits(np.frombuffer(row["masks"], np.uint8))[: r * h * w].reshape(r, -1).astype(np.int64)
    if ranked:
        order = np.argsort(bits.sum(axis=1), kind="stable")
        bits, present = bits[order], [present[i] for i in order]
    k = (row["study_id"], row["target_id"], row["slice_index"])
    present_of[k] = {i for i, p in enumerate(present) if p}
    pairs = [(a, b) for a, b in itertools.permutations(sorted(present_of[k]), 2)]
    if pairs:
        d = [(2 * (bits[a] & bits[b]).sum() + 1e-8) / (bits[a].sum() + bits[b].sum() + 1e-8) for a, b in pairs]
        agreement[k] = float(np.mean(d))

for stage in (1, 2):
    rows = frame.filter((pl.col("stage") == stage) & (pl.col("quantity") == "rater_agreement"))
    got = {(r["study_id"], r["target_id"], r["slice_index"]): r["value"] for r in rows.iter_rows(named=True)}
    if set(got) != set(agreement):
        fail(f"stage {stage}: rater_agreement on {len(got)} slices, numpy has {len(agreement)} with two raters")
    for k, v in agreement.items():
        if abs(got[k] - v) > 1e-9:
            fail(f"stage {stage} {k}: rater_agreement {got[k]} != numpy {v}")

per_rater = {1: ["bank_best_dice", "bank_mean_dice"], 2: ["bank_best_dice", "bank_mean_dice", "head_dice"]}
for stage, quantities in per_rater.items():
    for q in quantities:
        rows = frame.filter((pl.col("stage") == stage) & (pl.col("quantity") == q))
        got = {}
        for r in rows.iter_rows(named=True):
            got.setdefault((r["study_id"], r["target_id"], r["slice_index"]), set()).add(r["index"])
        for k, present in present_of.items():
            if got.get(k, set()) != present:
                fail(f"stage {stage} {q} {k}: raters {sorted(got.get(k, set()))}, present {sorted(present)}")


def values(stage, q):
    return frame.filter((pl.col("stage") == stage) & (pl.col("quantity") == q))["value"].to_numpy()


def in_range(stage, q, lo, hi):
    v = values(stage, q)
    if v.size == 0:
        fail(f"stage {stage}: no {q} rows")
    if (v < lo).any() or (v > hi).any():
        fail(f"stage {stage} {q}: values outside [{lo}, {hi}]: {v.min()}..{v.max()}")


n_slices = shards.height
kl = frame.filter((pl.col("stage") == 1) & (pl.col("quantity") == "kl"))
if sorted(kl["index"].unique().to_list()) != list(range(latent)) or kl.height != n_slices * latent:
    fail(f"kl: {kl.height} rows over dims {sorted(kl['index'].unique().to_list())}, want {latent} per slice")
in_range(1, "kl", -1e-6, np.inf)
in_range(1, "prior_sigma", 1e-30, np.inf)
in_range(1, "posterior_vs_prior_dice", 0, 1)
for stage in (1, 2):
    in_range(stage, "bank_distinct", 1, bank)
    if not np.all(values(stage, "bank_distinct") == np.round(values(stage, "bank_distinct"))):
        fail(f"stage {stage}: bank_distinct is not a count")
    in_range(stage, "bank_diversity", 0, 1)
    in_range(stage, "bank_best_dice", 0, 1)
    in_range(stage, "bank_mean_dice", 0, 1)
    best = frame.filter((pl.col("stage") == stage) & (pl.col("quantity") == "bank_best_dice")).sort(key + ["index"])
    mean = frame.filter((pl.col("stage") == stage) & (pl.col("quantity") == "bank_mean_dice")).sort(key + ["index"])
    if (best["value"].to_numpy() < mean["value"].to_numpy() - 1e-12).any():
        fail(f"stage {stage}: a best draw scores below the mean draw")
in_range(2, "head_dice", 0, 1)
in_range(2, "attention_entropy", -1e-9, 1 + 1e-9)
in_range(2, "attention_max", 1.0 / bank - 1e-9, 1 + 1e-9)
in_range(2, "query_norm", 0, np.inf)
in_range(2, "query_zero_channels", 0, latent)
in_range(2, "head_agreement", 0, 1)
print(f"ok: {n_slices} slices of {split}, {frame.height} rows")
