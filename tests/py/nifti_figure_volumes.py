"""A NIfTI predictions folder written by nibabel for the report figures (eval::figures on
volume folders), with the pixels every figure panel must show, computed here with numpy.

Usage:
  nifti_figure_volumes.py OUT
      writes OUT/preds (predictions.json with files nifti, unit volume, and three target
      volumes of NIfTI shape (x, y, z) = (W, H, D), W != H) and OUT/expected.json.

The masks are asymmetric shapes off-centre (an L, bars) that lie in one plane each, so a
transposed or mirrored plane, or the wrong plane, shows different pixels. expected.json
holds the rows the figures must draw, best first: ST_A/1 (the L, largest area, plane 2),
ST_B/2 (two planes tie on area, the lowest, 1, must be drawn; rater 1 is missing) and
ST_C/1 (one pixel; dropped when 2 rows are drawn). OUT/bad_shape is the same folder with
ST_A's rater 1 one plane short (shape (W, H, 3)), for the error test. Per row, [H][W] arrays indexed
[row][column]: the display grey of the image plane (min-max scaled to 0..255), each rater's
contour (foreground with a 4-neighbour in the background or outside; null = missing rater)
and foreground, each prediction's contour and foreground (p > 0.5), and the grey of the
mean probability.
"""
import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

W, H = 16, 12  # x = columns, y = rows; non-square so a transposed plane cannot fit


def contour(fg):
    """Foreground pixels with a 4-neighbour in the background or outside the plane."""
    p = np.pad(fg.astype(bool), 1)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return (fg.astype(bool) & ~inner).astype(np.uint8)


def save(arr_dhw, path, dtype):
    """[D, H, W] (z, row, column) -> NIfTI (x, y, z) = (W, H, D)."""
    img = nib.Nifti1Image(np.ascontiguousarray(arr_dhw.transpose(2, 1, 0)).astype(dtype),
                          np.diag([0.7, 0.8, 2.5, 1.0]))
    img.set_data_dtype(dtype)
    nib.save(img, str(path))


def volume(depth, raters, preds, seed):
    """raters: {k: {z: [(rows, cols)]}} with k 1-based; preds: [{z: [(rows, cols, p)]}]."""
    rng = np.random.default_rng(seed)
    masks = {}
    for k, planes in raters.items():
        m = np.zeros((depth, H, W), np.uint8)
        for z, boxes in planes.items():
            for rows, cols in boxes:
                m[z, rows, cols] = 1
        masks[k] = m
    probs = []
    for planes in preds:
        p = rng.uniform(0.0, 0.4, (depth, H, W)).astype(np.float32)
        for z, boxes in planes.items():
            for rows, cols, v in boxes:
                p[z, rows, cols] = v
        probs.append(p)
    zz, yy, xx = np.meshgrid(np.arange(depth), np.arange(H), np.arange(W), indexing="ij")
    image = (3.0 * xx + 0.5 * yy ** 2 + 40.0 * zz - 20.0).astype(np.float32)
    return masks, probs, image


def main(out):
    out = Path(out)
    preds_dir = out / "preds"
    preds_dir.mkdir(parents=True, exist_ok=True)
    header = dict(format="dpersona-predictions", version=2, run="nibabel-figures",
                  method="other_tool", stage=1, n_samples=2, unit="volume", files="nifti")
    (preds_dir / "predictions.json").write_text(json.dumps(header))
    s = slice
    specs = [
        # ST_A: rater 1 an L (vertical bar at column 11, foot to the right along row 10),
        # rater 2 a bar on the left, both in plane 2; a 1-pixel dot of rater 1 in plane 1.
        ("ST_A", "1", 4, 2,
         {1: {2: [(s(5, 11), s(11, 12)), (s(10, 11), s(11, 15))], 1: [(s(6, 7), s(3, 4))]},
          2: {2: [(s(6, 9), s(2, 5))]}},
         [{2: [(s(7, 9), s(6, 10), 0.9)], 0: [(s(2, 11), s(1, 3), 0.8)]},
          {2: [(s(5, 7), s(13, 15), 0.7), (s(9, 11), s(2, 4), 0.65)]}]),
        # ST_B: only rater 2; planes 1 and 3 tie on area (6 pixels), plane 1 must be drawn.
        ("ST_B", "2", 4, 1,
         {2: {1: [(s(5, 7), s(9, 12))], 3: [(s(7, 10), s(2, 4))]}},
         [{1: [(s(8, 10), s(10, 14), 0.95)], 3: [(s(5, 8), s(6, 8), 0.9)]},
          {1: [(s(6, 8), s(3, 7), 0.75)]}]),
        # ST_C: one pixel; the third row.
        ("ST_C", "1", 5, 3,
         {1: {3: [(s(8, 9), s(8, 9))]}, 2: {}},
         [{3: [(s(8, 10), s(8, 10), 0.8)]}, {}]),
    ]
    rows = []
    for i, (study, target, depth, z, rater_spec, pred_spec) in enumerate(specs):
        masks, probs, image = volume(depth, rater_spec, pred_spec, 11 + i)
        folder = preds_dir / study / target
        folder.mkdir(parents=True, exist_ok=True)
        for k, m in masks.items():
            save(m, folder / f"rater_{k}.nii.gz", np.uint8)
        for j, p in enumerate(probs):
            save(p, folder / f"pred_{j + 1:02d}.nii.gz", np.float32)
        save(image, folder / "image.nii.gz", np.float32)
        # The plane the figure must draw, found independently: most rater area, lowest z.
        area = sum(m.sum(axis=(1, 2)) for m in masks.values())
        assert int(np.argmax(area)) == z, f"{study}: spec plane {z}, areas {area}"
        r = max(masks)
        plane = image[z]
        grey = np.round((plane - plane.min()) / (plane.max() - plane.min()) * 255.0)
        mean = np.mean([p[z] for p in probs], axis=0)
        rows.append(dict(
            study=study, target=target, z=z, area=int(area[z]), width=W, height=H,
            image_grey=grey.astype(int).tolist(),
            rater_contour=[contour(masks[k][z]).tolist() if k in masks else None
                           for k in range(1, r + 1)],
            rater_fg=[masks[k][z].tolist() if k in masks else None for k in range(1, r + 1)],
            pred_contour=[contour(p[z] > 0.5).tolist() for p in probs],
            pred_fg=[(p[z] > 0.5).astype(np.uint8).tolist() for p in probs],
            mean_grey=np.round(np.clip(mean, 0, 1) * 255.0).astype(int).tolist(),
        ))
    # Bad input: ST_A's rater 1 one plane short of its predictions.
    bad = out / "bad_shape"
    shutil.copytree(preds_dir, bad)
    short = np.zeros((3, H, W), np.uint8)
    short[1, 5:9, 5:9] = 1
    save(short, bad / "ST_A" / "1" / "rater_1.nii.gz", np.uint8)
    rows.sort(key=lambda r: -r["area"])
    (out / "expected.json").write_text(json.dumps(dict(rows=rows)))
    print(f"wrote {len(rows)} volumes; rows by area: "
          + ", ".join(f"{r['study']}/{r['target']} z{r['z']} ({r['area']} px)" for r in rows))


if __name__ == "__main__":
    main(sys.argv[1])
