"""Tiny copies of the paper's two data files, written by the tools their authors used, for
the end-to-end test of scripts/reproduce.sh.

Usage:
  reproduce_fixtures.py lidc FILE   # a MedicalMatting-style pickle (pickle.dump of numpy)
  reproduce_fixtures.py npc DIR     # an MMIS-2024-style release folder (h5py)

Each image holds a bright disc; the four raters draw discs of different radii around it, so
the area ranking and the per-rater Dice have something to tell apart. Sizes are the real
ones in-plane for the pickle (128 x 128) and small volumes of a non-square grid for MMIS.
"""
import pickle
import sys
from pathlib import Path

import h5py
import numpy as np


def disc(h, w, cy, cx, r):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)


def lidc(path):
    rng = np.random.default_rng(3)
    items = {}
    for i in range(16):
        patient = f"{i // 4:04d}"
        cy, cx = rng.integers(44, 84, size=2)
        r = int(rng.integers(8, 16))
        img = rng.normal(60, 15, (128, 128)) + 120 * disc(128, 128, cy, cx, r)
        masks = [disc(128, 128, cy, cx, max(r + d, 2)) for d in (-3, -1, 1, 3)]
        items[f"{patient}_slice{i:02d}"] = {
            "image": np.clip(img, 0, 255).astype(np.uint8),
            "masks": masks,
            "series_uid": f"{patient}_1.3.6.1.4.1.{i}",
            "alpha": np.zeros((128, 128), np.uint8),
        }
    with open(path, "wb") as f:
        pickle.dump(items, f, protocol=4)
    print(f"wrote {len(items)} items to {path}")


def npc(root):
    rng = np.random.default_rng(5)
    root = Path(root)
    for folder, samples in (("training", range(0, 5)), ("validation", range(5, 7))):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for n in samples:
            d, h, w = 4, 40, 52
            cy, cx, r = 20 + int(rng.integers(-4, 5)), 26 + int(rng.integers(-4, 5)), 7
            lesion = np.stack([disc(h, w, cy, cx, r - abs(k - 1)) for k in range(d)])
            with h5py.File(root / folder / f"Sample_{n}.h5", "w") as f:
                for key in ("t1", "t1c", "t2"):
                    f[key] = (rng.normal(0, 1, (d, h, w)) + 2 * lesion).astype(np.float32)
                for a, grow in zip(range(1, 5), (-2, -1, 0, 1)):
                    f[f"label_a{a}"] = np.stack(
                        [disc(h, w, cy, cx, max(r - abs(k - 1) + grow, 1)) for k in range(d)]
                    ).astype(np.uint8)
                f["voxel_spacing"] = np.array([3.0, 0.5, 0.5])
    print(f"wrote 7 MMIS cases to {root}")


if __name__ == "__main__":
    {"lidc": lidc, "npc": npc}[sys.argv[1]](sys.argv[2])
