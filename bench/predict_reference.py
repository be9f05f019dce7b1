"""PyTorch reference for bench/bench_predict.sh: what `dpersona predict --stage 1` does to an
NPC-style case, written with the usual Python tools, on CPU.

Per case: nibabel reads the channel files, numpy z-scores each channel over the volume, scipy
resamples every axial slice to SIZE x SIZE (ndimage.zoom order 0, as ingest does), the paper's
D-Persona model (ResNet-34 U-Net + prior + Fcomb, bench/step_reference.py; the same layers as
ours, so the same FLOPs) draws N prior samples per slice in batches of 8 and decodes each with
Fcomb, scipy maps every probability map back to the input grid (order 1, mode 'nearest'), numpy
takes the mean and variance, and nibabel writes sample_01..N, mean and uncertainty (.nii.gz) with
the input's affine.

  python bench/predict_reference.py IMAGES_DIR OUT_DIR [--samples 10] [--size 128] [--threads 2]

Prints key=value lines: cases, seconds (wall, loading included), cases_per_s.
"""
import argparse
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_reference import DPersonaStage1  # noqa: E402


def cases_of(images):
    cases = {}
    for f in sorted(Path(images).glob("*.nii.gz")):
        case, _ = f.name[: -len(".nii.gz")].rsplit("_", 1)
        cases.setdefault(case, []).append(f)
    return cases


def predict_case(model, files, out, n, size):
    imgs = [nib.load(str(f)) for f in files]
    vols = [np.asarray(i.dataobj, dtype=np.float64) for i in imgs]
    nx, ny, nz = vols[0].shape[:3]
    x = np.zeros((nz, len(vols), size, size), np.float32)
    for c, v in enumerate(vols):
        z = (v - v.mean()) / v.std()
        for k in range(nz):
            plane = z[:, :, k].T  # rows = y, cols = x
            x[k, c] = ndimage.zoom(plane, (size / ny, size / nx), order=0,
                                   output=np.zeros((size, size)), mode="nearest")
    probs = np.zeros((n, nz, size, size), np.float32)
    with torch.no_grad():
        for b0 in range(0, nz, 8):
            xb = torch.from_numpy(x[b0:b0 + 8])
            feats = model.backbone(xb)
            mu, ls = model.prior(xb)
            for j in range(n):
                zj = mu + torch.exp(ls) * torch.randn_like(mu)
                probs[j, b0:b0 + 8] = torch.sigmoid(model.fcomb(feats, zj))[:, 0].numpy()
    maps = {f"sample_{j + 1:02}": probs[j] for j in range(n)}
    maps["mean"] = probs.mean(0)
    maps["uncertainty"] = probs.var(0)
    out.mkdir(parents=True, exist_ok=True)
    for name, m in maps.items():
        vol = np.transpose(m, (2, 1, 0))  # (size, size, nz) as (x, y, z)
        back = ndimage.zoom(vol, (nx / size, ny / size, 1), order=1, mode="nearest",
                            output=np.zeros((nx, ny, nz), np.float32))
        nib.Nifti1Image(back, imgs[0].affine, imgs[0].header).to_filename(str(out / f"{name}.nii.gz"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images")
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cases = cases_of(a.images)
    channels = len(next(iter(cases.values())))
    model = DPersonaStage1(channels).eval()
    t0 = time.perf_counter()
    for case, files in cases.items():
        predict_case(model, files, Path(a.out) / case, a.samples, a.size)
    dt = time.perf_counter() - t0
    print(f"cases={len(cases)} seconds={dt:.3f} cases_per_s={len(cases) / dt:.4f}")


if __name__ == "__main__":
    main()
