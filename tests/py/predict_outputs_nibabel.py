"""`dpersona predict` outputs checked with nibabel, numpy and scipy (independently of dpersona).

Usage:
  predict_outputs_nibabel.py check PRED CASE INPUT_0000 EVAL_STAGE1 EVAL_STAGE2 N R
      PRED/CASE is a case folder `dpersona predict --save-model-grid` wrote from the input
      whose first channel is INPUT_0000; EVAL_STAGE1 / EVAL_STAGE2 are the volume folders
      (`<study>/<target>/`) that `dpersona eval --save-predictions` wrote for the same case
      (Stage I with N samples, Stage II with R heads), every slice of the case in the
      manifest. Checks:
        - nibabel reads every output; shape, affine (sform and qform) and zooms equal the
          input's; dtypes are float32 (probabilities) and uint8 (masks);
        - the model-grid maps equal eval's, voxel for voxel (float32 equality);
        - each input-grid map equals scipy.ndimage.zoom of eval's map back onto the input's
          grid (order 1, mode 'nearest' for probabilities; order 0 of the > 0.5 mask for
          rater masks), exactly;
        - mean and uncertainty (population variance) equal numpy's over eval's samples,
          resampled the same way.
      Prints one line of facts; exits non-zero on the first mismatch.
  predict_outputs_nibabel.py make-bad OUT GOOD_0000 GOOD_0001 GOOD_0002
      writes OUT/ with the bad cases of the error test: `fewchan` (channel 0000 only),
      `flat` (three 2D files), `corrupt` (three files of random bytes), and `good` (copies
      of the three GOOD files).
"""
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage


def fail(msg):
    print(f"MISMATCH: {msg}")
    sys.exit(1)


def load(path):
    img = nib.load(str(path))
    return img, np.asarray(img.dataobj)


def same_geometry(path, img, ref):
    if img.shape != ref.shape[:3]:
        fail(f"{path}: shape {img.shape} != input {ref.shape[:3]}")
    if not np.array_equal(img.affine, ref.affine):
        fail(f"{path}: affine\n{img.affine}\n!= input's\n{ref.affine}")
    for form in ("sform", "qform"):
        a, ca = getattr(img.header, f"get_{form}")(coded=True)
        b, cb = getattr(ref.header, f"get_{form}")(coded=True)
        if ca != cb or (a is not None and not np.array_equal(a, b)):
            fail(f"{path}: {form} (code {ca}) differs from the input's (code {cb})")
    if img.header.get_zooms()[:3] != ref.header.get_zooms()[:3]:
        fail(f"{path}: zooms {img.header.get_zooms()} != {ref.header.get_zooms()}")


def back(vol, shape, order):
    """A model-grid volume (S, S, D) onto the input grid (nx, ny, nz) with scipy."""
    out = np.zeros(shape, dtype=vol.dtype)
    factors = [shape[0] / vol.shape[0], shape[1] / vol.shape[1], 1.0]
    return ndimage.zoom(vol, factors, order=order, mode="nearest", output=out)


def check(pred, case, input0, eval1, eval2, n, r):
    folder = Path(pred) / case
    ref = nib.load(input0)
    shape = ref.shape[:3]
    if ref.affine[2, 2] < 0:
        fail("the test expects an input with ascending z (slice_index = plane)")
    files = sorted(folder.glob("*.nii.gz"))
    names = [f.name for f in files]
    expected = [f"rater_{k}.nii.gz" for k in range(1, r + 1)]
    expected += [f"sample_{j:02}.nii.gz" for j in range(1, n + 1)]
    expected += ["mean.nii.gz", "uncertainty.nii.gz"]
    if sorted(expected) != names:
        fail(f"{folder}: files {names}, expected {sorted(expected)}")
    for f in files:
        img, data = load(f)
        same_geometry(f, img, ref)
        want = np.uint8 if f.name.startswith("rater_") else np.float32
        if data.dtype != want:
            fail(f"{f}: dtype {data.dtype}, expected {want}")

    samples = []
    for j in range(1, n + 1):
        _, ev = load(Path(eval1) / f"pred_{j:02}.nii.gz")
        _, mg = load(folder / "model_grid" / f"sample_{j:02}.nii.gz")
        if mg.shape != ev.shape or not np.array_equal(mg, ev):
            fail(f"sample {j}: model grid differs from eval's (max |d| "
                 f"{np.abs(mg.astype(np.float64) - ev).max() if mg.shape == ev.shape else 'shape'})")
        _, out = load(folder / f"sample_{j:02}.nii.gz")
        want = back(ev, shape, 1)
        if not np.array_equal(out, want):
            fail(f"sample {j}: input grid differs from scipy zoom(order=1) of eval's map "
                 f"(max |d| {np.abs(out.astype(np.float64) - want).max()}, "
                 f"{int((out != want).sum())} voxels)")
        samples.append(ev)
    masks_on = 0
    for k in range(1, r + 1):
        _, ev = load(Path(eval2) / f"pred_{k:02}.nii.gz")
        _, mg = load(folder / "model_grid" / f"rater_{k}.nii.gz")
        if not np.array_equal(mg, ev):
            fail(f"rater {k}: model grid differs from eval's Stage II map")
        _, out = load(folder / f"rater_{k}.nii.gz")
        want = back((ev > 0.5).astype(np.uint8), shape, 0)
        if not np.array_equal(out, want):
            fail(f"rater {k}: mask differs from scipy zoom(order=0) of eval's map > 0.5 "
                 f"({int((out != want).sum())} voxels)")
        masks_on += int(out.sum())
    s = np.stack(samples).astype(np.float64)
    mean = s.mean(axis=0)
    var = ((s - mean) ** 2).mean(axis=0)
    for name, ref_map in (("mean", mean), ("uncertainty", var)):
        _, out = load(folder / f"{name}.nii.gz")
        want = back(ref_map.astype(np.float32), shape, 1)
        if not np.array_equal(out, want):
            fail(f"{name}: differs from numpy + scipy (max |d| "
                 f"{np.abs(out.astype(np.float64) - want).max()})")
    _, unc = load(folder / "uncertainty.nii.gz")
    print(f"ok: {len(files)} volumes {shape} with the input's affine; model grid {samples[0].shape} "
          f"equals eval's for {n} samples and {r} heads; {masks_on} mask voxels; "
          f"max uncertainty {unc.max():.4f}")


def make_bad(out, goods):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ref = nib.load(goods[0])
    for c, g in enumerate(goods):
        shutil.copy(g, out / f"good_{c:04}.nii.gz")
        flat = nib.Nifti1Image(np.asarray(nib.load(g).dataobj)[:, :, 0].astype(np.float32), ref.affine)
        flat.to_filename(str(out / f"flat_{c:04}.nii.gz"))
        (out / f"corrupt_{c:04}.nii.gz").write_bytes(np.random.default_rng(c).bytes(3000))
    shutil.copy(goods[0], out / "fewchan_0000.nii.gz")
    print(f"ok: bad cases in {out}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "check":
        check(*sys.argv[2:7], int(sys.argv[7]), int(sys.argv[8]))
    elif cmd == "make-bad":
        make_bad(sys.argv[2], sys.argv[3:6])
    else:
        fail(f"unknown command {cmd}")
