"""Reference loader for bench_loader.sh: a PyTorch DataLoader with the paper's augmentations.

Reads the same slice shards as dpersona's loader (pyarrow, into numpy arrays, not timed),
then times EPOCHS epochs of a DataLoader(batch_size=12, shuffle=True, num_workers=2,
persistent_workers=True) whose Dataset does, per sample, what dpersona's does:
  lidc: flips (p=0.5 each), PIL Image.rotate(U[-180,180], NEAREST) of the image and the
        4 masks, area ranking (torch.sort), union/intersection over present raters;
  npc:  p=0.5 rot90(k)+flip, p=0.5 scipy.ndimage.rotate(randint(-20,20), order=0,
        reshape=False), p=0.5 clipped Gaussian noise, union/intersection.
Prints `samples_per_s=<float>`.
"""
import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset


def load(dir_):
    meta = pq.read_metadata(dir_ / "manifest.parquet").metadata
    header = json.loads(meta[b"dpersona.manifest"])
    c, r, n = len(header["channels"]), len(header["raters"]), header["crop_size"]
    images, masks, present = [], [], []
    for shard in header["shards"]:
        t = pq.read_table(dir_ / shard["path"], columns=["image", "masks", "raters_present"])
        images.append(t.column("image").combine_chunks().flatten().to_numpy().reshape(-1, c, n, n))
        packed = np.frombuffer(b"".join(t.column("masks").to_pylist()), np.uint8).reshape(t.num_rows, -1)
        masks.append(np.unpackbits(packed, axis=1, count=r * n * n).reshape(-1, r, n, n))
        present.append(np.array(t.column("raters_present").to_pylist(), dtype=bool))
    return np.concatenate(images), np.concatenate(masks), np.concatenate(present), header["rater_order"]


def consensus(masks, present):
    p = masks[present]
    return p.max(axis=0).astype(np.float32), p.min(axis=0).astype(np.float32)


class Slices(Dataset):
    def __init__(self, images, masks, present, kind, rank):
        self.images, self.masks, self.present, self.kind, self.rank = images, masks, present, kind, rank

    def __len__(self):
        return len(self.images)

    def lidc(self, image, masks):
        if random.random() > 0.5:
            image, masks = image[:, :, ::-1], masks[:, :, ::-1]
        if random.random() < 0.5:
            image, masks = image[:, ::-1, :], masks[:, ::-1, :]
        angle = float(torch.empty(1).uniform_(-180.0, 180.0).item())
        rot = lambda a, mode: np.asarray(Image.fromarray(np.ascontiguousarray(a), mode).rotate(angle, resample=Image.NEAREST))
        image = np.stack([rot(ch, "F") for ch in image])
        masks = np.stack([rot(m, "L") for m in masks])
        return image, masks

    def npc(self, image, masks):
        if random.random() > 0.5:
            k, axis = np.random.randint(0, 4), np.random.randint(0, 2)
            image = np.flip(np.rot90(image, k, axes=(1, 2)), axis=axis + 1)
            masks = np.flip(np.rot90(masks, k, axes=(1, 2)), axis=axis + 1)
        if random.random() > 0.5:
            angle = np.random.randint(-20, 20)
            image = ndimage.rotate(image, angle, axes=(1, 2), order=0, reshape=False)
            masks = ndimage.rotate(masks, angle, axes=(1, 2), order=0, reshape=False)
        if random.random() > 0.5:
            image = image + np.clip(0.1 * np.random.randn(*image.shape), -0.2, 0.2).astype(np.float32)
        return image, masks

    def __getitem__(self, i):
        image, masks, present = self.images[i], self.masks[i], self.present[i]
        image, masks = (self.lidc if self.kind == "lidc" else self.npc)(image, masks)
        masks = torch.from_numpy(np.ascontiguousarray(masks)).float()
        present = torch.from_numpy(present.copy())
        if self.rank:
            _, idx = torch.sort(masks.sum(dim=(1, 2)))
            masks, present = masks[idx], present[idx]
        union, inter = consensus(masks.numpy(), present.numpy())
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), masks, present, union, inter


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", type=Path)
    ap.add_argument("--augment", choices=["lidc", "npc"], default="lidc")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=12)
    a = ap.parse_args()
    torch.set_num_threads(1)
    images, masks, present, order = load(a.dir)
    ds = Slices(images, masks, present, a.augment, order == "area_rank")
    dl = DataLoader(ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, persistent_workers=a.workers > 0)
    start = time.perf_counter()
    n = 0
    for _ in range(a.epochs):
        for batch in dl:
            n += batch[0].shape[0]
    secs = time.perf_counter() - start
    print(f"samples_per_s={n / secs:.1f}")


if __name__ == "__main__":
    main()
