"""Reference MMIS converter for bench/bench_mmis.sh: the job `dpersona ingest mmis` does,
written the way a Python user would (h5py + numpy + scipy + pyarrow, one process).

Usage:
  mmis_reference.py synth RAW N        N release-like cases (RAW/training/Sample_<n>.h5:
                                       t1, t1c, t2 float32 and label_a1..a4 uint8, about
                                       22 x 145 x 179 with varying in-plane sizes, h5py's
                                       default contiguous storage, voxel_spacing)
  mmis_reference.py convert RAW OUT    every case into rows; prints the number of rows
It does the work dpersona does: reads every key with h5py, checks labels are 0/1 and images
finite, resamples each slice of every channel and label with scipy.ndimage.zoom(order=0) to
128 x 128, stacks t1, t1c, t2, derives intersection, union and areas, SHA-256 hashes the
file, bit-packs the masks (np.packbits) and writes zstd Parquet in 32-row groups.
"""
import hashlib
import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import ndimage

SIZE = 128
ROW_GROUP = 32
SHARD_ROWS = 2048
CHANNELS = ["t1", "t1c", "t2"]
LABELS = ["label_a1", "label_a2", "label_a3", "label_a4"]


def synth(raw, n):
    rng = np.random.default_rng(1337)
    (raw / "training").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        d, h, w = int(rng.integers(18, 27)), int(rng.integers(130, 160)), int(rng.integers(160, 200))
        with h5py.File(raw / "training" / f"Sample_{i}.h5", "w") as f:
            for c in CHANNELS:
                f.create_dataset(c, data=rng.normal(0, 1, (d, h, w)).astype("f4"))
            zz, yy, xx = np.indices((d, h, w))
            dist = ((zz - d / 2) / 4) ** 2 + ((yy - h / 2) / 15) ** 2 + ((xx - w / 2) / 15) ** 2
            for r, k in enumerate(LABELS):
                f.create_dataset(k, data=(dist < 1 + 0.1 * r).astype("u1"))
            f.create_dataset("voxel_spacing", data=np.array([3.0, 0.5, 0.5]))


def zoom(a):
    h, w = a.shape
    return ndimage.zoom(a, (SIZE / h, SIZE / w), order=0)


def convert(raw, out):
    out.mkdir(parents=True, exist_ok=True)
    rows, shard, n_rows = [], 0, 0

    def flush():
        nonlocal rows, shard
        if rows:
            pq.write_table(pa.Table.from_pylist(rows), out / f"shard-{shard:05}.parquet",
                           compression="zstd", row_group_size=ROW_GROUP)
            rows, shard = [], shard + 1

    for path in sorted((raw / "training").glob("Sample_*.h5")):
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        with h5py.File(path, "r") as f:
            imgs = [f[c][()] for c in CHANNELS]
            labs = [f[k][()] for k in LABELS]
            sp = f["voxel_spacing"][()]
        if not all(np.isfinite(i).all() for i in imgs) or any(((l != 0) & (l != 1)).any() for l in labs):
            continue
        depth, h, w = imgs[0].shape
        for k in range(depth):
            image = np.stack([zoom(i[k]) for i in imgs]).astype(np.float32)
            masks = np.stack([zoom(l[k]) for l in labs]).astype(np.uint8)
            rows.append({
                "study_id": path.stem, "patient_id": path.stem, "target_id": "lesion",
                "slice_index": k, "z_mm": k * float(sp[0]), "height": SIZE, "width": SIZE,
                "channels": 3, "spacing_row_mm": float(sp[1]) * (h - 1) / (SIZE - 1),
                "spacing_col_mm": float(sp[2]) * (w - 1) / (SIZE - 1),
                "image": image.ravel().tolist(), "masks": np.packbits(masks).tobytes(),
                "raters_present": [True] * 4, "rater_area": masks.reshape(4, -1).sum(1).tolist(),
                "intersection": np.packbits(masks.min(0)).tobytes(),
                "union": np.packbits(masks.max(0)).tobytes(),
                "crop_row0": 0, "crop_col0": 0, "source_height": SIZE, "source_width": SIZE,
                "source_files": [str(path)], "source_sha256": [sha],
            })
            n_rows += 1
        if len(rows) >= SHARD_ROWS:
            flush()
    flush()
    print(n_rows)


if __name__ == "__main__":
    if sys.argv[1] == "synth":
        synth(Path(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "convert":
        convert(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
