"""NIfTI prediction volumes (eval::prediction_volumes) against nibabel, and a layout written
by nibabel scored against the numpy metric reference (metrics_reference.py).

Usage:
  prediction_volumes_nibabel.py check-written DIR
      DIR/preds is a predictions folder dpersona wrote; DIR/expected.json lists each volume
      (study, target, shape (D, H, W), N, R, present raters, spacing, origin) and
      DIR/expected.bin holds per volume the probabilities float32 [N, D, H, W], the rater
      masks uint8 [R, D, H, W] and the image float32 [D, H, W]. nibabel must read exactly
      those values, dtypes, shape (W, H, D), zooms and affine; exits non-zero otherwise.
  prediction_volumes_nibabel.py write-layout SHARD OUT
      reads the slice shard SHARD with pyarrow (independently of dpersona), writes a
      predictions folder OUT/preds with nibabel (random probabilities per target; one
      volume as .nii, one as uint8 0/1), and OUT/expected.json with the numpy metrics of
      every volume. Also writes OUT/bad_range (a 0/255 volume) and OUT/bad_depth (a volume
      one slice short) for the error tests.
"""
import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_reference import reference  # noqa: E402  (independent numpy definitions)


def check_written(d):
    d = Path(d)
    meta = json.loads((d / "expected.json").read_text())
    blob = (d / "expected.bin").read_bytes()
    off = 0
    checked = 0

    def take(dtype, count, shape):
        nonlocal off
        a = np.frombuffer(blob, dtype, count, off).reshape(shape)
        off += count * np.dtype(dtype).itemsize
        return a

    for v in meta:
        dd, h, w = v["shape"]
        n, r = v["n"], v["r"]
        vox = dd * h * w
        probs = take("<f4", n * vox, (n, dd, h, w))
        masks = take("u1", r * vox, (r, dd, h, w))
        image = take("<f4", vox, (dd, h, w))
        folder = d / "preds" / v["study"] / v["target"]
        sz, sr, sc = v["spacing"]
        want_affine = np.array([[sc, 0, 0, 0], [0, sr, 0, 0], [0, 0, sz, v["origin_z"]], [0, 0, 0, 1]])

        def load(name, dtype):
            img = nib.load(str(folder / name))
            assert img.shape == (w, h, dd), f"{name}: shape {img.shape}, want {(w, h, dd)}"
            assert img.get_data_dtype() == np.dtype(dtype), f"{name}: dtype {img.get_data_dtype()}"
            assert np.allclose(img.header.get_zooms(), (sc, sr, sz), rtol=0, atol=1e-6), \
                f"{name}: zooms {img.header.get_zooms()}"
            assert np.allclose(img.affine, want_affine, atol=1e-5), f"{name}: affine\n{img.affine}"
            assert np.allclose(img.get_qform(), want_affine, atol=1e-5), f"{name}: qform\n{img.get_qform()}"
            # nibabel's (x, y, z) -> our [D, H, W]
            return np.asarray(img.dataobj).transpose(2, 1, 0)

        for j in range(n):
            got = load(f"pred_{j + 1:02d}.nii.gz", np.float32)
            assert np.array_equal(got, probs[j]), f"{folder}/pred_{j + 1:02d}: values differ"
        for k in range(r):
            f = folder / f"rater_{k + 1}.nii.gz"
            if not v["present"][k]:
                assert not f.exists(), f"{f} written for a missing rater"
                continue
            got = load(f.name, np.uint8)
            assert np.array_equal(got, masks[k]), f"{f}: values differ"
        got = load("image.nii.gz", np.float32)
        assert np.array_equal(got, image), f"{folder}/image: values differ"
        checked += 1
    print(f"{checked} volumes read by nibabel equal the predictions")


def volumes_from_shard(shard):
    """(study, target) -> (masks uint8 [R, D, H, W], present [R]) with slices in slice_index order."""
    t = pq.read_table(shard, columns=["study_id", "target_id", "slice_index", "height", "width",
                                      "masks", "raters_present"]).to_pylist()
    groups = {}
    for row in t:
        groups.setdefault((row["study_id"], row["target_id"]), []).append(row)
    out = {}
    for key, rows in sorted(groups.items()):
        rows.sort(key=lambda r: r["slice_index"])
        h, w = rows[0]["height"], rows[0]["width"]
        r = len(rows[0]["raters_present"])
        masks = np.stack(
            [np.unpackbits(np.frombuffer(x["masks"], np.uint8), count=r * h * w).reshape(r, h, w) for x in rows],
            axis=1,
        )
        present = [all(x["raters_present"][k] for x in rows) for k in range(r)]
        out[key] = (masks, present)
    return out


def save(arr_dhw, path, dtype):
    """[D, H, W] -> NIfTI (x, y, z) = (W, H, D)."""
    img = nib.Nifti1Image(np.ascontiguousarray(arr_dhw.transpose(2, 1, 0)).astype(dtype), np.eye(4))
    img.set_data_dtype(dtype)
    nib.save(img, str(path))


def write_layout(shard, out):
    out = Path(out)
    rng = np.random.default_rng(7)
    header = dict(format="dpersona-predictions", version=2, run="nibabel-tool", method="other_tool",
                  stage=1, n_samples=5, unit="volume", files="nifti")
    preds = out / "preds"
    preds.mkdir(parents=True, exist_ok=True)
    (preds / "predictions.json").write_text(json.dumps(header))
    expected = []
    vols = volumes_from_shard(shard)
    for i, ((study, target), (masks, present)) in enumerate(vols.items()):
        n = 5
        base = masks[np.array(present)].mean(axis=0) if any(present) else np.zeros(masks.shape[1:])
        probs = np.clip(base[None] * rng.uniform(0.5, 1.2, (n, 1, 1, 1)) + rng.normal(0, 0.3, (n,) + base.shape),
                        0, 1).astype(np.float32)
        folder = preds / study / target
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(n):
            if i == 1:  # binary uint8 0/1 masks, as a tool that saves decisions would
                probs[j] = (probs[j] > 0.5).astype(np.float32)
                save(probs[j], folder / f"pred_{j + 1:02d}.nii.gz", np.uint8)
            elif i == 2 and j == 0:  # uncompressed .nii is read too
                save(probs[j], folder / f"pred_{j + 1:02d}.nii", np.float32)
            else:
                save(probs[j], folder / f"pred_{j + 1:02d}.nii.gz", np.float32)
        flat_masks = masks.reshape(masks.shape[0], -1)
        flat_probs = probs.reshape(n, -1)
        if not any(present):
            continue
        ref = reference(flat_masks, present, flat_probs, 1.0)
        expected.append(dict(study=study, target=target, ged=ref["ged"], dice_soft=ref["dice_soft"],
                             dice_max=ref["dice_max"], dice_max_per_sample=ref["dice_max_per_sample"],
                             dice_match=ref["dice_match"]))
    (out / "expected.json").write_text(json.dumps(expected, indent=1))
    # Bad inputs: a 0/255 mask, and a volume one slice short.
    (study, target), (masks, _) = next(iter(vols.items()))
    for name in ("bad_range", "bad_depth"):
        bad = out / name
        shutil.copytree(preds, bad)
    f = out / "bad_range" / study / target / "pred_02.nii.gz"
    save((masks[0] * 255).astype(np.float32), f, np.uint8)
    f = out / "bad_depth" / study / target / "pred_03.nii.gz"
    save(np.zeros(masks.shape[1:], np.float32)[:-1], f, np.float32)
    print(f"wrote {len(vols)} volumes ({len(expected)} with raters) to {preds}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "check-written":
        check_written(sys.argv[2])
    elif cmd == "write-layout":
        write_layout(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
