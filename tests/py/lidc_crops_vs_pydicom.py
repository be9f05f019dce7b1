"""Checks dpersona's LIDC HU values, crops and source hashes against pydicom + hashlib.

Usage: lidc_crops_vs_pydicom.py MANIFEST.json

MANIFEST holds
* "hu": [{"path", "values" (raw little-endian float32 file written by dpersona's
  CtSeries::slice_hu), "rows", "columns"}]: the values must equal pydicom's pixel_array after
  apply_modality_lut, as float32, exactly;
* "out", "window_lo", "window_hi": an ingest output folder: for every slice row, the image
  must equal pydicom's HU of source_files[0], as float32, clipped to the window and scaled to
  [0, 1] in float32, cropped at (crop_row0, crop_col0) with zeros past the slice border; and
  source_sha256 must be hashlib's SHA-256 of source_files.
Exits 1 on the first mismatch.
"""
import glob
import hashlib
import json
import sys

import numpy as np
import pyarrow.parquet as pq
import pydicom
from pydicom.pixels import apply_modality_lut


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def hu(path):
    ds = pydicom.dcmread(path)
    return apply_modality_lut(ds.pixel_array, ds).astype(np.float32)


def check_hu(entries):
    for e in entries:
        ours = np.fromfile(e["values"], dtype="<f4").reshape(e["rows"], e["columns"])
        ref = hu(e["path"])
        if ours.shape != ref.shape or not np.array_equal(ours, ref):
            bad = np.argwhere(ours != ref)[:3].tolist() if ours.shape == ref.shape else ref.shape
            fail(f"{e['path']}: HU differ from pydicom at {bad}")
        print(f"HU EQUAL {e['path']}")


def check_rows(out, lo, hi):
    lo, hi = np.float32(lo), np.float32(hi)
    cache, rows = {}, 0
    for shard in sorted(glob.glob(f"{out}/shards/*.parquet")):
        t = pq.read_table(shard).to_pylist()
        for r in t:
            src, xml = r["source_files"]
            if src not in cache:
                cache[src] = hu(src)
            full = cache[src]
            h, w = r["height"], r["width"]
            window = (np.clip(full, lo, hi) - lo) / (hi - lo)
            ref = np.zeros((h, w), np.float32)
            r0, c0 = r["crop_row0"], r["crop_col0"]
            rs, re_ = max(r0, 0), min(r0 + h, full.shape[0])
            cs, ce = max(c0, 0), min(c0 + w, full.shape[1])
            if rs < re_ and cs < ce:
                ref[rs - r0 : re_ - r0, cs - c0 : ce - c0] = window[rs:re_, cs:ce]
            ours = np.asarray(r["image"], np.float32).reshape(h, w)
            if not np.array_equal(ours, ref):
                fail(f"{src}: crop of {r['target_id']} differs from pydicom's at {np.argwhere(ours != ref)[:3].tolist()}")
            for f, sha in zip(r["source_files"], r["source_sha256"]):
                with open(f, "rb") as fh:
                    want = hashlib.sha256(fh.read()).hexdigest()
                if sha != want:
                    fail(f"{f}: sha256 {sha} but hashlib says {want}")
            rows += 1
    if rows == 0:
        fail(f"no slice rows under {out}")
    print(f"ROWS EQUAL {rows}")


def main():
    m = json.load(open(sys.argv[1]))
    check_hu(m.get("hu", []))
    if "out" in m:
        check_rows(m["out"], m["window_lo"], m["window_hi"])


if __name__ == "__main__":
    main()
