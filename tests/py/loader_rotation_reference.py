"""Checks dpersona's nearest-neighbour rotations against PIL and scipy.

Usage: loader_rotation_reference.py DIR

DIR holds `cases.json` ({"images": [{"file", "h", "w"}], "cases": [{"lib", "image", "angle",
"file"}]}) and raw uint8 row-major files: the test images and dpersona's rotated outputs.
For each case the reference is
  lib == "pil":   PIL.Image.fromarray(img).rotate(angle, resample=NEAREST)   (expand=False, fill 0)
  lib == "scipy": scipy.ndimage.rotate(img, angle, reshape=False, order=0, mode="constant", cval=0)
Multiples of 90 degrees must match exactly (bar PIL's 90/270 on non-square images) (and equal np.rot90 on square images); other
angles may differ only where nearest-neighbour rounding of a point on a pixel edge differs:
the fraction of differing pixels must stay
below MAX_FRACTION, and every differing pixel must take its value from a 3x3 neighbour of
the reference's source pixel where neither side is fill (checked through index images). Prints the fractions;
exits non-zero on failure.
"""
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

# Observed with Pillow 13.0.0 and scipy 1.17.1: 0 differing pixels in every case (dpersona
# reproduces PIL's 16.16 fixed-point evaluation and scipy's half-up rounding). The bound
# leaves room for a library release that breaks a pixel-edge tie differently, no more:
# 0.1% is 16 of 16384 pixels.
MAX_FRACTION = 0.001


def reference(lib, img, angle):
    if lib == "pil":
        return np.asarray(Image.fromarray(img).rotate(angle, resample=Image.NEAREST))
    if lib == "scipy":
        return ndimage.rotate(img, angle, reshape=False, order=0, mode="constant", cval=0)
    raise SystemExit(f"unknown lib {lib}")


def main():
    d = Path(sys.argv[1])
    spec = json.loads((d / "cases.json").read_text())
    images = {}
    for im in spec["images"]:
        images[im["file"]] = np.fromfile(d / im["file"], dtype=np.uint8).reshape(im["h"], im["w"])
    failures = []
    worst = 0.0
    for case in spec["cases"]:
        img = images[case["image"]]
        h, w = img.shape
        ours = np.fromfile(d / case["file"], dtype=np.uint8).reshape(h, w)
        ref = reference(case["lib"], img, case["angle"])
        diff = ours != ref
        frac = float(diff.mean())
        label = f"{case['lib']} {case['angle']:+.3f} deg on {h}x{w}"
        # Right angles are exact transposes, except PIL's 90/270 on non-square images,
        # which go through the affine path like any other angle.
        angle = float(case["angle"])
        exact = angle % 180 == 0 or (angle % 90 == 0 and (h == w or case["lib"] == "scipy"))
        if exact:
            if frac != 0:
                failures.append(f"{label}: {diff.sum()} pixels differ at a multiple of 90 degrees")
            k = int(round(float(case["angle"]) / 90)) % 4
            if h == w and not np.array_equal(ours, np.rot90(img, k)):
                failures.append(f"{label}: differs from np.rot90(img, {k})")
        else:
            worst = max(worst, frac)
            if frac >= MAX_FRACTION:
                failures.append(f"{label}: {frac:.4%} of pixels differ (bound {MAX_FRACTION:.1%})")
        if diff.any():
            # Index image: which source pixel did each library pick? Positions are
            # encoded in two uint8 planes (row, col), both rotated the same way.
            rows = np.repeat(np.arange(h, dtype=np.uint8)[:, None], w, axis=1)
            cols = np.repeat(np.arange(w, dtype=np.uint8)[None, :], h, axis=0)
            rr, rc = reference(case["lib"], rows, case["angle"]), reference(case["lib"], cols, case["angle"])
            for y, x in zip(*np.nonzero(diff)):
                vals = img[max(rr[y, x] - 1, 0): rr[y, x] + 2, max(rc[y, x] - 1, 0): rc[y, x] + 2]
                if ours[y, x] != 0 and ref[y, x] != 0 and ours[y, x] not in vals:
                    failures.append(f"{label}: pixel ({y},{x}) = {ours[y, x]} is not a neighbour of the reference source")
                    break
        print(f"{label}: {diff.sum()} of {h * w} pixels differ ({frac:.4%})")
    print(f"worst non-right-angle mismatch fraction: {worst:.4%} (bound {MAX_FRACTION:.1%})")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
