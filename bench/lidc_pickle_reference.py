"""Reference converter for bench/bench_lidc_pickle.sh: the job `dpersona ingest lidc-pickle`
does, written the way a Python user would (pickle.load + numpy + pyarrow, one process).

Usage:
  lidc_pickle_reference.py write N PATH   a MedicalMatting-style pickle of N items (uint8
                                          128x128 image, 4 uint8 masks, series_uid, alpha)
  lidc_pickle_reference.py PICKLE OUT     convert; prints the number of rows written

It does the work dpersona does: unpickles the whole file (numpy arrays in memory, as the
authors' loader does), SHA-256 hashes the file, /255 in float32, bit-packs the masks,
intersection and union (np.packbits), computes areas, assigns the authors' image-level
folds (np.random.seed(1337) shuffle + KFold(4) chunks) and writes zstd Parquet in 32-row
groups, 2048 rows per shard.
"""
import hashlib
import pickle
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP = 32
SHARD_ROWS = 2048


def write(n, path):
    rng = np.random.default_rng(1337)
    items = {}
    for i in range(n):
        yy, xx = np.mgrid[:128, :128]
        masks = []
        for r in range(4):
            rad = 6 + 2 * r + int(rng.integers(0, 4))
            masks.append(((yy - 64) ** 2 + (xx - 64) ** 2 < rad * rad).astype(np.uint8))
        items[f"LIDC-IDRI-{i // 17:04d}_{i}"] = {
            "image": rng.integers(0, 256, (128, 128), dtype=np.uint8),
            "masks": masks,
            "series_uid": f"LIDC-IDRI-{i // 17:04d}_{i}",
            "alpha": (masks[0] * 255).astype(np.uint8),
        }
    with open(path, "wb") as f:
        pickle.dump(items, f, protocol=4)


def folds(n):
    np.random.seed(1337)
    idx = np.arange(n)
    np.random.shuffle(idx)
    fold = np.zeros(n, int)
    start = 0
    for f in range(4):
        size = n // 4 + (1 if f < n % 4 else 0)
        fold[idx[start:start + size]] = f
        start += size
    return fold


def convert(src, out):
    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    data = Path(src).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    items = pickle.loads(data)
    del data
    fold = folds(len(items))
    rows, shard, written = [], 0, 0

    def flush():
        nonlocal rows, shard
        if rows:
            table = pa.table({k: [r[k] for r in rows] for k in rows[0]})
            pq.write_table(table, out / "shards" / f"shard-{shard:05d}.parquet",
                           compression="zstd", row_group_size=ROW_GROUP)
            shard += 1
            rows = []

    for i, (key, item) in enumerate(items.items()):
        img = np.asarray(item["image"]).astype(np.float32) / np.float32(255)
        m = np.stack([np.asarray(x).astype(np.uint8) for x in item["masks"]])
        rows.append({
            "study_id": str(key),
            "patient_id": item["series_uid"].split("_")[0],
            "image": img.ravel(),
            "masks": np.packbits(m).tobytes(),
            "rater_area": m.reshape(4, -1).sum(axis=1).astype(np.uint32),
            "intersection": np.packbits(m.min(axis=0)).tobytes(),
            "union": np.packbits(m.max(axis=0)).tobytes(),
            "fold": int(fold[i]),
            "source_sha256": sha,
        })
        written += 1
        if len(rows) >= SHARD_ROWS:
            flush()
    flush()
    print(written)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(int(sys.argv[2]), sys.argv[3])
    else:
        convert(sys.argv[1], sys.argv[2])
