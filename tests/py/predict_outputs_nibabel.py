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
  predict_outputs_nibabel.py check-lidc PRED CASE SERIES_DIR SHARD ROI_CSV
      PRED/CASE was predicted (--save-model-grid) from the DICOM series in SERIES_DIR with
      the voxel ROIs of ROI_CSV (one per slice); SHARD is the slice shard `dpersona ingest
      lidc` wrote for the same series. Checks with pydicom and pyarrow: the outputs' affine is
      the series' (ImagePositionPatient, ImageOrientationPatient, PixelSpacing; LPS to RAS)
      and their shape (columns, rows, slices); each ROI's model input equals the ingested
      crop of that slice and window; on the input grid each map holds the model-grid crop
      in its window on its slice and 0 everywhere else; PRED/CASE/seg.dcm (pydicom) is a
      Segmentation with one segment per rater, referencing the series, one frame per
      segment and ROI slice at that slice's position, pixels equal to the rater's mask, and
      not all empty.
  predict_outputs_nibabel.py zoom-check IN OUT KIND IN_ROWS IN_COLS OUT_ROWS OUT_COLS
      IN and OUT are raw little-endian planes (KIND u8 or f32) dpersona mapped back from the
      model grid; OUT must equal scipy.ndimage.zoom(IN, order 0 (u8) or 1 (f32),
      mode='nearest') exactly, the plane as a (cols, rows) array as in a NIfTI volume.
  predict_outputs_nibabel.py roi-from-shard SHARD OUT_CSV
      reads the first target of the shard's first study with pyarrow and writes OUT_CSV with
      a voxel ROI at the centre of each of its first two ingested crops (case = the series
      folder's name); prints the series folder.
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


def check_lidc(pred, case, series_dir, shard, roi_csv):
    import pydicom
    import pyarrow.parquet as pq

    folder = Path(pred) / case
    ds = [pydicom.dcmread(str(f)) for f in sorted(Path(series_dir).glob("*.dcm"))]
    ds.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    n, rows, cols = len(ds), int(ds[0].Rows), int(ds[0].Columns)
    iop = np.array([float(v) for v in ds[0].ImageOrientationPatient])
    ps = [float(v) for v in ds[0].PixelSpacing]
    p0 = np.array([float(v) for v in ds[0].ImagePositionPatient])
    pl = np.array([float(v) for v in ds[-1].ImagePositionPatient])
    lps = np.eye(4)
    lps[:3, 0] = iop[:3] * ps[1]
    lps[:3, 1] = iop[3:] * ps[0]
    lps[:3, 2] = (pl - p0) / (n - 1)
    lps[:3, 3] = p0
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    rois = []
    for line in Path(roi_csv).read_text().splitlines()[1:]:
        c, x, y, z = line.split(",")[:4]
        if c == case:
            rois.append((float(x), float(y), int(round(float(z)))))
    table = pq.read_table(shard).to_pylist()
    sname = Path(series_dir).name
    _, image = load(folder / "model_grid" / "image.nii.gz")
    size = image.shape[0]
    for j, (x, y, z) in enumerate(rois):
        row0, col0 = int(round(y)) - size // 2, int(round(x)) - size // 2
        hits = [r for r in table if Path(r["source_files"][0]).parent.name == sname and r["slice_index"] == z
                and r["crop_row0"] == row0 and r["crop_col0"] == col0]
        if not hits:
            fail(f"no ingested crop of slice {z} at ({row0}, {col0}) in {shard}")
        want = np.asarray(hits[0]["image"], np.float32).reshape(size, size)
        if not np.array_equal(image[:, :, j].T, want):
            fail(f"ROI {j}: model input differs from the ingested crop (max |d| "
                 f"{np.abs(image[:, :, j].T - want).max()})")
    files = sorted(folder.glob("*.nii.gz"))
    for f in files:
        img, data = load(f)
        if img.shape != (cols, rows, n):
            fail(f"{f}: shape {img.shape}, the series is {(cols, rows, n)}")
        if not np.array_equal(img.affine.astype(np.float32), ras.astype(np.float32)):
            fail(f"{f}: affine\n{img.affine}\n!= the series'\n{ras}")
        _, mg = load(folder / "model_grid" / f.name)
        expect = np.zeros_like(data)
        for j, (x, y, z) in enumerate(rois):
            row0, col0 = int(round(y)) - size // 2, int(round(x)) - size // 2
            crop = mg[:, :, j].T
            if f.name.startswith("rater_"):
                crop = (crop > 0.5).astype(np.uint8)
            plane = expect[:, :, z].T
            r0, c0 = max(row0, 0), max(col0, 0)
            r1, c1 = min(row0 + size, rows), min(col0 + size, cols)
            plane[r0:r1, c0:c1] = np.maximum(plane[r0:r1, c0:c1],
                                             crop[r0 - row0:r1 - row0, c0 - col0:c1 - col0])
        if not np.array_equal(data, expect):
            fail(f"{f}: differs from the model-grid crops placed in their windows "
                 f"({int((data != expect).sum())} voxels)")
    # The DICOM SEG: one segment per rater, one frame per (segment, ROI slice), each at its
    # source slice's position and referencing it, pixels equal to the rater's mask.
    seg = pydicom.dcmread(str(folder / "seg.dcm"))
    raters = sorted(f for f in files if f.name.startswith("rater_"))
    if seg.SOPClassUID != "1.2.840.10008.5.1.4.1.1.66.4" or seg.Modality != "SEG":
        fail(f"seg.dcm: SOP class {seg.SOPClassUID}, modality {seg.Modality}")
    ref = seg.ReferencedSeriesSequence[0]
    if ref.SeriesInstanceUID != ds[0].SeriesInstanceUID:
        fail(f"seg.dcm references series {ref.SeriesInstanceUID}, not {ds[0].SeriesInstanceUID}")
    if sorted(i.ReferencedSOPInstanceUID for i in ref.ReferencedInstanceSequence) != sorted(
            d.SOPInstanceUID for d in ds):
        fail("seg.dcm: the referenced instances are not the series' instances")
    if seg.StudyInstanceUID != ds[0].StudyInstanceUID or seg.FrameOfReferenceUID != ds[0].FrameOfReferenceUID:
        fail("seg.dcm: study or frame of reference differs from the source's")
    if len(seg.SegmentSequence) != len(raters):
        fail(f"seg.dcm: {len(seg.SegmentSequence)} segments for {len(raters)} raters")
    planes = sorted({z for (_, _, z) in rois})
    if int(seg.NumberOfFrames) != len(raters) * len(planes):
        fail(f"seg.dcm: {seg.NumberOfFrames} frames, expected {len(raters)} x {len(planes)}")
    pix = seg.pixel_array.reshape(int(seg.NumberOfFrames), rows, cols)
    ipps = [[float(v) for v in d.ImagePositionPatient] for d in ds]
    marked = 0
    for i, fg in enumerate(seg.PerFrameFunctionalGroupsSequence):
        segno = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        ipp = [float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient]
        if ipp not in ipps:
            fail(f"seg.dcm frame {i + 1}: position {ipp} is no source slice's")
        k = ipps.index(ipp)
        src = fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        if src != ds[k].SOPInstanceUID:
            fail(f"seg.dcm frame {i + 1}: references {src}, the slice at {ipp} is {ds[k].SOPInstanceUID}")
        _, mask = load(folder / f"rater_{segno}.nii.gz")
        if not np.array_equal(pix[i], mask[:, :, k].T):
            fail(f"seg.dcm frame {i + 1}: pixels differ from rater_{segno}.nii.gz plane {k}")
        marked += int(pix[i].sum())
    if marked == 0:
        fail("every mask is empty: the check would prove nothing (train longer)")
    print(f"ok: {len(files)} volumes {(cols, rows, n)} with the series' affine; {len(rois)} ROI crops "
          f"equal ingest's and sit in their windows; seg.dcm: {len(raters)} segments, "
          f"{seg.NumberOfFrames} frames at their slices, {marked} marked pixels")


def zoom_check(inp, out, kind, ir, ic, orow, ocol):
    dt = np.uint8 if kind == "u8" else np.dtype("<f4")
    a = np.fromfile(inp, dtype=dt).reshape(ir, ic).T
    b = np.fromfile(out, dtype=dt).reshape(orow, ocol).T
    want = ndimage.zoom(a, (ocol / ic, orow / ir), order=0 if kind == "u8" else 1,
                        mode="nearest", output=np.zeros(b.shape, dt))
    if not np.array_equal(b, want):
        fail(f"{kind} {ir}x{ic} -> {orow}x{ocol}: {int((b != want).sum())} pixels differ from scipy")
    print(f"ok: {kind} {ir}x{ic} -> {orow}x{ocol} equals scipy.ndimage.zoom")


def roi_from_shard(shard, out_csv):
    import pyarrow.parquet as pq

    rows = pq.read_table(shard).to_pylist()
    first = rows[0]
    crops = [r for r in rows if r["study_id"] == first["study_id"] and r["target_id"] == first["target_id"]]
    crops.sort(key=lambda r: r["slice_index"])
    series = Path(first["source_files"][0]).parent
    lines = ["case,x,y,z"]
    for r in crops[:2]:
        half = r["height"] // 2
        lines.append(f"{series.name},{r['crop_col0'] + half},{r['crop_row0'] + half},{r['slice_index']}")
    Path(out_csv).write_text("\n".join(lines) + "\n")
    print(series)


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
    elif cmd == "check-lidc":
        check_lidc(*sys.argv[2:7])
    elif cmd == "zoom-check":
        zoom_check(sys.argv[2], sys.argv[3], sys.argv[4], *map(int, sys.argv[5:9]))
    elif cmd == "roi-from-shard":
        roi_from_shard(sys.argv[2], sys.argv[3])
    elif cmd == "make-bad":
        make_bad(sys.argv[2], sys.argv[3:6])
    else:
        fail(f"unknown command {cmd}")
