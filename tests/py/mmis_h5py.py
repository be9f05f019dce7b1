"""MMIS-2024 Task 1 fixtures written with h5py, and the check of dpersona's rows against
h5py + numpy + scipy.

Usage:
  mmis_h5py.py write RAW
      Writes a release-like folder (3D training/validation/testing files, the official
      loader's training_2d slice files, bad files, stray names) and RAW/expect.json
      (good cases with their split, bad cases with the key at fault, stray names).
  mmis_h5py.py check RAW OUT SIZE NORMALIZE VAL_RANGE
      Reads OUT's manifest and shards with pyarrow and compares every row with the
      reference: h5py reads each key, each slice goes through scipy.ndimage.zoom(order=0)
      to SIZE x SIZE (the authors' transform), channels stacked t1, t1c, t2, masks
      label_a1..a4; NORMALIZE is none or zscore; VAL_RANGE is A..B or -.
"""
import json
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
from scipy import ndimage

CHANNELS = ["t1", "t1c", "t2"]
LABELS = ["label_a1", "label_a2", "label_a3", "label_a4"]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def case_arrays(rng, shape, img_dtypes):
    """Images of the given dtypes and four overlapping binary masks of `shape`."""
    imgs = {}
    for key, dt in zip(CHANNELS, img_dtypes):
        if np.dtype(dt).kind == "f":
            imgs[key] = rng.normal(50.0, 20.0, shape).astype(dt)
        else:
            imgs[key] = rng.integers(-300, 1200, shape).astype(dt)
    grid = np.indices(shape).astype(float)
    centre = [s / 2 for s in shape]
    d = sum(((g - c) / max(s / 3, 1)) ** 2 for g, c, s in zip(grid, centre, shape))
    labels = {k: (d < 0.5 + 0.15 * i + rng.normal(0, 0.05, shape)).astype("u1") for i, k in enumerate(LABELS)}
    return imgs, labels


# Storage settings h5py offers that a release might use, spread over keys and cases.
STORAGE = [
    {},  # contiguous (h5py's default)
    dict(chunks=True, compression="gzip", shuffle=True),
    dict(compression="gzip", compression_opts=9),
    dict(chunks=True),
    dict(compression="gzip", compression_opts=1, shuffle=True, fletcher32=True),
]


def write_h5(path, imgs, labels, spacing, storage_offset=0, skip=(), override=None, libver=None):
    override = override or {}
    with h5py.File(path, "w", libver=libver) as f:
        for i, (key, arr) in enumerate(list(imgs.items()) + list(labels.items())):
            if key in skip:
                continue
            arr = override.get(key, arr)
            f.create_dataset(key, data=arr, **STORAGE[(i + storage_offset) % len(STORAGE)])
        if "voxel_spacing" not in skip:
            f.create_dataset("voxel_spacing", data=np.asarray(spacing, dtype="f8"))


def write(raw):
    raw = Path(raw)
    rng = np.random.default_rng(2024)
    expect = {"good": {}, "bad": {}, "notices": []}
    for d in ["training", "validation", "testing", "training_2d"]:
        (raw / d).mkdir(parents=True, exist_ok=True)

    def good3d(folder, n, shape, dtypes, spacing, study_id=None, offset=0, libver=None):
        imgs, labels = case_arrays(rng, shape, dtypes)
        write_h5(raw / folder / f"Sample_{n}.h5", imgs, labels, spacing, offset, libver=libver)
        split = {"training": "train", "validation": "val", "testing": "test"}[folder]
        expect["good"][study_id or f"Sample_{n}"] = {
            "files": [f"{folder}/Sample_{n}.h5"], "split": split, "folder": folder, "sample": n}

    # Non-square, odd sizes; several dtypes (float32/64, int16, big-endian float32, uint16).
    good3d("training", 0, (5, 23, 31), ("<f4", "<f8", "<i2"), (3.0, 0.7, 0.6))
    good3d("training", 2, (4, 40, 17), (">f4", "<f4", "<u2"), (2.5, 0.5, 0.55), offset=2)
    good3d("training", 85, (3, 145, 179), ("<f4", "<f4", "<f4"), (4.0, 0.45, 0.45), offset=1)
    good3d("training", 99, (6, 12, 129), ("<f8", "<i2", ">i2"), (3.3, 0.8, 0.8), offset=3, libver="latest")
    good3d("validation", 200, (4, 130, 150), ("<f4", "<f4", "<f4"), (3.0, 0.6, 0.6), offset=4)
    good3d("testing", 300, (2, 64, 48), ("<f8", "<f8", "<f8"), (5.0, 1.0, 0.9))
    # The same sample number in two folders: both get the folder in their study id.
    good3d("training", 1, (3, 20, 25), ("<f4", "<f4", "<f4"), (3.0, 0.7, 0.7), "training_Sample_1")
    good3d("validation", 1, (3, 21, 24), ("<f4", "<f4", "<f4"), (3.0, 0.7, 0.7), "validation_Sample_1", 1)

    # The official loader's layout: 2D slice files of one case, grouped back by k.
    def good2d(n, ks, shape, spacing, dtypes=("<f4", "<f4", "<f4")):
        imgs, labels = case_arrays(rng, (len(ks),) + shape, dtypes)
        files = []
        for i, k in enumerate(ks):
            write_h5(raw / "training_2d" / f"Sample_{n}_slice_{k}.h5",
                     {c: a[i] for c, a in imgs.items()}, {c: a[i] for c, a in labels.items()},
                     spacing, i)
            files.append(f"training_2d/Sample_{n}_slice_{k}.h5")
        expect["good"][f"Sample_{n}"] = {"files": files, "split": "train", "folder": "training_2d",
                                         "sample": n, "ks": list(ks)}

    good2d(7, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], (19, 26), (3.0, 0.65, 0.6), ("<f8", "<i2", "<f4"))
    good2d(8, [0, 1, 3, 4], (15, 11), (3.0, 0.65, 0.6))  # k = 2 missing: a notice, still ingested
    expect["notices"].append("Sample_8_slice_0.h5")

    # A case in both layouts: rejected (which one is the truth cannot be told).
    imgs, labels = case_arrays(rng, (2, 10, 12), ("<f4",) * 3)
    write_h5(raw / "training" / "Sample_9.h5", imgs, labels, (3, 1, 1))
    write_h5(raw / "training_2d" / "Sample_9_slice_0.h5", {c: a[0] for c, a in imgs.items()},
             {c: a[0] for c, a in labels.items()}, (3, 1, 1))
    expect["bad"]["Sample_9"] = {"file": "Sample_9.h5", "says": "keep one layout"}

    def bad3d(n, says, **kw):
        imgs, labels = case_arrays(rng, (3, 16, 20), ("<f4",) * 3)
        write_h5(raw / "training" / f"Sample_{n}.h5", imgs, labels, (3, 1, 1), **kw)
        expect["bad"][f"Sample_{n}"] = {"file": f"Sample_{n}.h5", "says": says}

    bad3d(20, "`label_a3`", skip=("label_a3",))
    bad3d(21, "`t2` has shape [3, 17, 20]", override={"t2": np.zeros((3, 17, 20), "f4")})
    lab = np.zeros((3, 16, 20), "u1"); lab[1, 5, 5] = 2
    bad3d(22, "`label_a2`: 1 values are neither 0 nor 1", override={"label_a2": lab})
    img = rng.normal(size=(3, 16, 20)).astype("f4"); img[2, 3, 4] = np.nan
    bad3d(23, "`t1c`: 1 values are NaN or infinite", override={"t1c": img})
    img = rng.normal(size=(3, 16, 20)).astype("f8"); img[0, 0, 1] = np.inf; img[1, 1, 1] = -np.inf
    bad3d(24, "`t1`: 2 values are NaN or infinite", override={"t1": img})
    bad3d(27, "`voxel_spacing`", skip=("voxel_spacing",))
    (raw / "training" / "Sample_25.h5").write_text("this is not HDF5\n")
    expect["bad"]["Sample_25"] = {"file": "Sample_25.h5", "says": "not a readable HDF5 file"}
    imgs, labels = case_arrays(rng, (4, 60, 70), ("<f4",) * 3)
    write_h5(raw / "training" / "Sample_26.h5", imgs, labels, (3, 1, 1))
    data = (raw / "training" / "Sample_26.h5").read_bytes()
    (raw / "training" / "Sample_26.h5").write_bytes(data[: len(data) // 2])
    expect["bad"]["Sample_26"] = {"file": "Sample_26.h5", "says": ""}

    # Names that fit no pattern: notices, never dropped silently.
    (raw / "training" / "notes.txt").write_text("notes\n")
    (raw / "training" / "Sample_x.h5").write_bytes(b"")
    (raw / "training_2d" / "Sample_3.h5").write_bytes(b"")
    (raw / "README.md").write_text("release notes\n")
    expect["notices"] += ["notes.txt", "Sample_x.h5", "Sample_3.h5", "README.md"]
    (raw / "expect.json").write_text(json.dumps(expect, indent=1))
    expect["notices"].append("expect.json")
    (raw / "expect.json").write_text(json.dumps(expect, indent=1))
    print(f"wrote {len(expect['good'])} good and {len(expect['bad'])} bad cases to {raw}")


def unpack(raw, shape):
    n = int(np.prod(shape))
    if len(raw) != (n + 7) // 8:
        fail(f"bit-packed column has {len(raw)} bytes, {n} values need {(n + 7) // 8}")
    return np.unpackbits(np.frombuffer(raw, np.uint8))[:n].reshape(shape)


def reference(raw, case, size, normalize):
    """(ks, images [D,3,S,S] float32, masks [D,4,S,S] uint8, spacing, native H, W)."""
    vols = {k: [] for k in CHANNELS + LABELS}
    spacing = None
    for rel in case["files"]:
        with h5py.File(raw / rel, "r") as f:
            for k in vols:
                vols[k].append(f[k][()])
            spacing = f["voxel_spacing"][()]
    if case["folder"].endswith("_2d"):
        vols = {k: np.stack(v) for k, v in vols.items()}
        ks = case["ks"]
    else:
        vols = {k: v[0] for k, v in vols.items()}
        ks = list(range(vols["t1"].shape[0]))
    depth, h, w = vols["t1"].shape
    images = []
    for c in CHANNELS:
        v = vols[c].astype(np.float64)
        if normalize == "zscore":
            v = (v - v.mean()) / v.std()
        images.append(np.stack([ndimage.zoom(v[d], (size / h, size / w), order=0) for d in range(depth)]))
    masks = [np.stack([ndimage.zoom(vols[k][d], (size / h, size / w), order=0) for d in range(depth)]) for k in LABELS]
    img = np.stack(images, axis=1).astype(np.float32)
    return ks, img, np.stack(masks, axis=1).astype(np.uint8), spacing, h, w


def check(raw, out, size, normalize, val_range):
    raw, out, size = Path(raw), Path(out), int(size)
    expect = json.loads((raw / "expect.json").read_text())
    header = json.loads((pq.read_metadata(out / "manifest.parquet").metadata or {})[b"dpersona.manifest"])
    protocol = "mmis-folders" if val_range == "-" else f"mmis-folders-val{val_range}"
    if header.get("split_protocol") != protocol or header["k_folds"] != 1:
        fail(f"header split_protocol {header.get('split_protocol')} / k_folds {header['k_folds']}, expected {protocol} / 1")
    if header["raters"] != ["a1", "a2", "a3", "a4"] or header["channels"] != CHANNELS:
        fail(f"header raters {header['raters']} channels {header['channels']}")
    if header["crop_size"] != size:
        fail(f"header crop_size {header['crop_size']}")
    man = pq.read_table(out / "manifest.parquet").to_pylist()
    studies = {m["study_id"]: m for m in man}
    if set(studies) != set(expect["good"]):
        fail(f"manifest studies {sorted(studies)}, expected {sorted(expect['good'])}")
    lo, hi = (None, None) if val_range == "-" else map(int, val_range.split(".."))
    rows = {}
    for shard in sorted((out / "shards").glob("*.parquet")):
        for r in pq.read_table(shard).to_pylist():
            rows.setdefault(r["study_id"], []).append(r)
    n_rows = 0
    for sid, case in expect["good"].items():
        m = studies[sid]
        split = case["split"]
        if lo is not None and case["folder"].startswith("training") and lo <= case["sample"] <= hi:
            split = "val"
        if (m["split"], m["fold"], m["patient_id"]) != (split, 0, sid):
            fail(f"{sid}: manifest split/fold/patient {m['split']}/{m['fold']}/{m['patient_id']}, expected {split}/0/{sid}")
        ks, img, masks, sp, h, w = reference(raw, case, size, normalize)
        got = sorted(rows.get(sid, []), key=lambda r: r["slice_index"])
        if [r["slice_index"] for r in got] != ks:
            fail(f"{sid}: slice_index {[r['slice_index'] for r in got]}, expected {ks}")
        if (m["n_slices"], m["volume_depth"], m["volume_height"], m["volume_width"]) != (len(ks), len(ks), size, size):
            fail(f"{sid}: manifest n_slices/volume {m['n_slices']} {m['volume_depth']}x{m['volume_height']}x{m['volume_width']}")
        for i, (k, r) in enumerate(zip(ks, got)):
            where = f"{sid} slice {k}"
            if (r["height"], r["width"], r["channels"]) != (size, size, 3):
                fail(f"{where}: {r['height']}x{r['width']}x{r['channels']}")
            ours = np.asarray(r["image"], np.float32).reshape(3, size, size)
            if normalize == "zscore":
                # numpy sums pairwise, dpersona in order: the float64 z-scores differ in the
                # last bits, which may flip the float32 rounding by one unit at most.
                tol = np.spacing(np.abs(img[i]))
                if not (np.abs(ours - img[i]) <= tol).all():
                    fail(f"{where}: image differs from the z-scored reference by up to {np.abs(ours - img[i]).max()}")
            elif not np.array_equal(ours, img[i]):
                fail(f"{where}: image differs from h5py + zoom by up to {np.abs(ours - img[i]).max()}")
            if not np.array_equal(unpack(r["masks"], (4, size, size)), masks[i]):
                fail(f"{where}: masks differ from h5py + zoom")
            if not np.array_equal(unpack(r["union"], (size, size)), masks[i].max(0)):
                fail(f"{where}: union differs")
            if not np.array_equal(unpack(r["intersection"], (size, size)), masks[i].min(0)):
                fail(f"{where}: intersection differs")
            if list(r["rater_area"]) != [int(x) for x in masks[i].reshape(4, -1).sum(1)]:
                fail(f"{where}: rater_area {r['rater_area']}")
            if r["raters_present"] != [True] * 4 or r["target_id"] != "lesion":
                fail(f"{where}: raters_present {r['raters_present']} target {r['target_id']}")
            # scipy's order-0 zoom maps corner onto corner: output step = (n - 1) / (S - 1) inputs.
            exp_sp = (sp[1] * (h - 1) / (size - 1), sp[2] * (w - 1) / (size - 1))
            if not np.isclose(r["z_mm"], k * sp[0], rtol=0, atol=1e-12) or \
               not np.allclose((r["spacing_row_mm"], r["spacing_col_mm"]), exp_sp, rtol=1e-12, atol=0):
                fail(f"{where}: z {r['z_mm']} spacing {r['spacing_row_mm']},{r['spacing_col_mm']}, expected {k * sp[0]}, {exp_sp}")
            if (r["crop_row0"], r["crop_col0"], r["source_height"], r["source_width"]) != (0, 0, size, size):
                fail(f"{where}: crop/source {r['crop_row0']},{r['crop_col0']},{r['source_height']},{r['source_width']}")
            if [os.path.basename(f) for f in r["source_files"]] != [os.path.basename(f) for f in case["files"]]:
                fail(f"{where}: source_files {r['source_files']}")
            n_rows += 1
    print(f"{n_rows} rows of {len(expect['good'])} cases match h5py + scipy zoom (normalize {normalize}, "
          f"size {size}, split protocol {protocol})")


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    elif sys.argv[1] == "check":
        check(*sys.argv[2:7])
    else:
        fail(f"unknown mode {sys.argv[1]}")
