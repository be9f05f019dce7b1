"""Independent check of an ingest output folder with polars (rows) and pyarrow (metadata).

Usage: shards_polars_check.py OUT_DIR [EXPECTED_STUDIES]

Checks, against the files alone (no dpersona code):
* every shard in the manifest header exists with the listed size, SHA-256 (hashlib) and
  row count (polars), and carries the manifest's fingerprint and the ids of exactly the
  studies whose rows it holds;
* each manifest study's n_slices equals its rows in the shards, in the shard it names;
* per row: the image list has C x H x W values; the bit-packed masks (R x H x W),
  intersection and union (H x W) hold exactly the bytes np.unpackbits needs, with zero
  padding; rater_area is each mask's sum;
  intersection and union equal the min and max over the PRESENT raters only (all zero
  when none is present); missing raters have empty masks;
* no patient is in two folds or two splits; folds are 0..k-1.
Exits non-zero with a message on the first mismatch.
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq


def unpack(path, row, column, shape):
    """A bit-packed mask column (numpy packbits order) as a 0/1 uint8 array of `shape`;
    the byte count must be exactly what the values need and the padding bits zero."""
    raw = row[column]
    if not isinstance(raw, bytes):
        fail(f"{path}: `{column}` is {type(raw).__name__}, expected bytes (bit-packed)")
    n = int(np.prod(shape))
    if len(raw) != (n + 7) // 8:
        fail(f"{path}: `{column}` holds {len(raw)} bytes, {n} values need {(n + 7) // 8}")
    bits = np.unpackbits(np.frombuffer(raw, np.uint8))
    if bits[n:].any():
        fail(f"{path}: `{column}` has non-zero padding bits")
    return bits[:n].reshape(shape)


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def kv(path):
    meta = pq.read_metadata(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()}


def main():
    out = Path(sys.argv[1])
    expected_studies = int(sys.argv[2]) if len(sys.argv) > 2 else None
    man_path = out / "manifest.parquet"
    man_kv = kv(man_path)
    if man_kv.get("dpersona.schema") != "manifest":
        fail(f"{man_path}: schema is {man_kv.get('dpersona.schema')!r}")
    header = json.loads(man_kv["dpersona.manifest"])
    studies = pl.read_parquet(man_path)
    if expected_studies is not None and studies.height != expected_studies:
        fail(f"manifest has {studies.height} studies, expected {expected_studies}")
    canon = json.dumps(header["params"], sort_keys=True, separators=(",", ":"))
    if hashlib.sha256(canon.encode()).hexdigest() != header["fingerprint"]:
        fail("fingerprint is not the SHA-256 of the sorted params JSON")
    n_raters = len(header["raters"])

    rows_per_study = {}
    total_rows = 0
    checked_rows = 0
    present_patterns = set()
    for entry in header["shards"]:
        path = out / entry["path"]
        data = path.read_bytes()
        if len(data) != entry["bytes"]:
            fail(f"{path}: {len(data)} bytes, manifest says {entry['bytes']}")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            fail(f"{path}: sha256 differs from the manifest")
        meta = kv(path)
        if meta.get("dpersona.schema") != "slices":
            fail(f"{path}: not a slices file")
        if meta.get("dpersona.fingerprint") != header["fingerprint"]:
            fail(f"{path}: fingerprint differs from the manifest")
        df = pl.read_parquet(path)
        if df.height != entry["rows"]:
            fail(f"{path}: {df.height} rows, manifest says {entry['rows']}")
        total_rows += df.height
        listed = json.loads(meta["dpersona.studies"])
        in_rows = set(df["study_id"].unique().to_list())
        if not in_rows <= set(listed):
            fail(f"{path}: rows of studies not listed in its metadata: {in_rows - set(listed)}")
        in_manifest = set(studies.filter(pl.col("shard") == entry["path"])["study_id"].to_list())
        if in_manifest != set(listed):
            fail(f"{path}: metadata lists {sorted(listed)}, manifest puts {sorted(in_manifest)} there")
        for sid, n in df.group_by("study_id").len().iter_rows():
            if sid in rows_per_study:
                fail(f"study {sid} has rows in two shards")
            rows_per_study[sid] = n

        for row in df.iter_rows(named=True):
            h, w, c = row["height"], row["width"], row["channels"]
            if len(row["image"]) != c * h * w:
                fail(f"{path}: image length {len(row['image'])} != {c}x{h}x{w}")
            masks = unpack(path, row, "masks", (n_raters, h, w))
            present = np.asarray(row["raters_present"], dtype=bool)
            present_patterns.add(tuple(present.tolist()))
            if not set(np.unique(masks).tolist()) <= {0, 1}:
                fail(f"{path}: masks are not 0/1")
            if list(masks.reshape(n_raters, -1).sum(axis=1)) != list(row["rater_area"]):
                fail(f"{path}: rater_area {row['rater_area']} differs from the masks' sums")
            if masks[~present].any():
                fail(f"{path}: a missing rater has a non-empty mask")
            inter = unpack(path, row, "intersection", (h, w))
            union = unpack(path, row, "union", (h, w))
            if present.any():
                want_i, want_u = masks[present].min(axis=0), masks[present].max(axis=0)
            else:
                want_i = want_u = np.zeros((h, w), np.uint8)
            if not np.array_equal(inter, want_i):
                fail(f"{path}: study {row['study_id']} slice {row['slice_index']}: intersection != min over present raters")
            if not np.array_equal(union, want_u):
                fail(f"{path}: study {row['study_id']} slice {row['slice_index']}: union != max over present raters")
            checked_rows += 1

    for sid, n in studies.select("study_id", "n_slices").iter_rows():
        if rows_per_study.get(sid, 0) != n:
            fail(f"study {sid}: manifest says {n} slices, shards hold {rows_per_study.get(sid, 0)}")
    extra = set(rows_per_study) - set(studies["study_id"].to_list())
    if extra:
        fail(f"shards hold rows of studies missing from the manifest: {sorted(extra)}")

    per_patient = studies.group_by("patient_id").agg(
        pl.col("fold").n_unique().alias("folds"), pl.col("split").n_unique().alias("splits")
    )
    leaking = per_patient.filter((pl.col("folds") > 1) | (pl.col("splits") > 1))
    if leaking.height:
        fail(f"patients in two folds or splits: {leaking['patient_id'].to_list()}")
    folds = set(studies["fold"].unique().to_list())
    if not folds <= set(range(header["k_folds"])):
        fail(f"folds {folds} outside 0..{header['k_folds']}")
    if not set(studies["split"].unique().to_list()) <= {"train", "val", "test"}:
        fail("unknown split names")

    print(
        f"ok: {studies.height} studies, {len(header['shards'])} shards, {total_rows} rows "
        f"({checked_rows} checked), rater-presence patterns {sorted(present_patterns)}"
    )


if __name__ == "__main__":
    main()
