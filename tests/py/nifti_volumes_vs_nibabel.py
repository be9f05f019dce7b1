"""Checks dpersona's NIfTI reader against nibabel.

Usage: nifti_volumes_vs_nibabel.py MANIFEST.json
MANIFEST lists {"file", "dims", "data" (raw little-endian f64, x fastest), "affine" (3x4)} per
volume, as dpersona read them. For each, nibabel's get_fdata() (NaN-aware) and img.affine must
match exactly (affine to float32 precision). Exits non-zero on any mismatch.
"""
import json
import sys

import nibabel as nib
import numpy as np


def main() -> int:
    entries = json.load(open(sys.argv[1]))
    bad = 0
    for e in entries:
        img = nib.load(e["file"])
        ref = img.get_fdata()
        ours = np.fromfile(e["data"], dtype="<f8").reshape(e["dims"], order="F")
        ok = True
        if list(ref.shape) != e["dims"]:
            print(f"FAIL {e['file']}: shape {e['dims']} vs nibabel {list(ref.shape)}")
            bad += 1
            continue
        nan_ref, nan_ours = np.isnan(ref), np.isnan(ours)
        if not np.array_equal(nan_ref, nan_ours):
            print(f"FAIL {e['file']}: NaN positions differ ({nan_ours.sum()} vs nibabel {nan_ref.sum()})")
            ok = False
        elif not np.array_equal(ref[~nan_ref], ours[~nan_ours]):
            diff = np.abs(ref[~nan_ref] - ours[~nan_ours]).max()
            print(f"FAIL {e['file']}: values differ by up to {diff}")
            ok = False
        aff = np.asarray(e["affine"])
        if not np.allclose(aff, img.affine[:3], rtol=0, atol=1e-4):
            print(f"FAIL {e['file']}: affine {aff.tolist()} vs nibabel {img.affine[:3].tolist()}")
            ok = False
        if ok:
            print(f"ok {e['file']}: shape {list(ref.shape)}, {int(nan_ref.sum())} NaN, "
                  f"sum {np.nansum(ref):.6g}, affine matches")
        else:
            bad += 1
    print(f"{len(entries) - bad}/{len(entries)} volumes match nibabel")
    return 1 if bad or not entries else 0


if __name__ == "__main__":
    sys.exit(main())
