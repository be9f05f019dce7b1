"""Re-saves NIfTI files under another name with nibabel (the ending picks .nii or .nii.gz)
and removes the originals: a case exported with another file ending than dataset.json's,
as a real tool would write it.

Usage:
  nifti_resave.py SRC DST [SRC DST ...]
      prints one line `SRC -> DST (shape)` per file.
"""
import os
import sys

import nibabel as nib
import numpy as np

args = sys.argv[1:]
if not args or len(args) % 2:
    sys.exit("usage: nifti_resave.py SRC DST [SRC DST ...]")
for src, dst in zip(args[::2], args[1::2]):
    img = nib.load(src)
    data = np.asanyarray(img.dataobj)
    nib.save(nib.Nifti1Image(data, img.affine, img.header), dst)
    # The copy must hold the same voxels, or the test would warn about a different file.
    assert np.array_equal(np.asanyarray(nib.load(dst).dataobj), data), dst
    os.remove(src)
    print(f"{src} -> {dst} {data.shape}")
