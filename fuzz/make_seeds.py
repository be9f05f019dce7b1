"""Writes the small seed corpora of the fuzz targets (fuzz/seeds/<target>/), with tools
independent of dpersona: pydicom for DICOM, nibabel for NIfTI, Pillow for PNG, the LIDC XML
by hand in the LIDC layout. Deterministic; the output is committed (a few KB per target), so
this only needs rerunning when a seed is added.

Usage: python fuzz/make_seeds.py   (from the repository root, with the project's venv)
"""
import gzip
import io
import json
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, ExplicitVRBigEndian

ROOT = Path(__file__).resolve().parent / "seeds"


def put(target: str, name: str, data: bytes) -> None:
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


# ---- LIDC XML -------------------------------------------------------------------------
def roi(z: float, uid: str, pts, inclusion: str = "TRUE") -> str:
    edges = "".join(f"<edgeMap><xCoord>{c}</xCoord><yCoord>{r}</yCoord></edgeMap>" for r, c in pts)
    return (f"<roi><imageZposition>{z}</imageZposition><imageSOP_UID>{uid}</imageSOP_UID>"
            f"<inclusion>{inclusion}</inclusion>{edges}</roi>")


def lidc(sessions) -> str:
    body = "".join(
        "<readingSession><annotationVersion>3.12</annotationVersion>" + "".join(
            f"<unblindedReadNodule><noduleID>{nid}</noduleID>{''.join(rois)}</unblindedReadNodule>"
            for nid, rois in reads) + "</readingSession>"
        for reads in sessions)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<LidcReadMessage uid="1.1" '
            'xmlns="http://www.nih.gov" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<ResponseHeader><Version>1.8.1</Version><StudyInstanceUID>1.2.3</StudyInstanceUID>"
            "<SeriesInstanceUid>1.2.3.4</SeriesInstanceUid></ResponseHeader>" + body +
            "</LidcReadMessage>\n")


square = [(10, c) for c in range(10, 16)] + [(r, 15) for r in range(11, 16)] + \
         [(15, c) for c in range(14, 9, -1)] + [(r, 10) for r in range(14, 10, -1)]
hole = [(12, 12), (12, 13), (13, 13), (13, 12)]
put("lidc_xml", "two_readers.xml", lidc([
    [("N1", [roi(-100.0, "1.2.0", square), roi(-97.5, "1.2.1", square)])],
    [("N1", [roi(-100.0, "1.2.0", square), roi(-100.0, "1.2.0", hole, "FALSE")]),
     ("small", [roi(-97.5, "1.2.1", [(30, 30)])])],
]).encode())
put("lidc_xml", "no_reads.xml", lidc([[], []]).encode())
put("lidc_xml", "cxr.xml", b'<?xml version="1.0"?><IdriReadMessage xmlns="http://www.nih.gov">'
    b"<ResponseHeader/></IdriReadMessage>")


# ---- DICOM ----------------------------------------------------------------------------
def ct(z: float, k: int, ts, rows=8, cols=8, bits=16, signed=1) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = f"1.2.{k}"
    meta.TransferSyntaxUID = ts
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = f"1.2.{k}"
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = "1.2.3.4"
    ds.PatientID = "LIDC-FUZZ"
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [-10.0, -10.0, z]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 2.5
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = 12 if bits == 16 else bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = signed
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1024
    rng = np.random.default_rng(k)
    dtype = {16: np.int16 if signed else np.uint16, 8: np.uint8}[bits]
    px = rng.integers(0, 2000 if bits == 16 else 255, size=(rows, cols)).astype(dtype)
    if ts == RLELossless:
        ds.compress(RLELossless, px, encoding_plugin="pydicom")
    else:
        ds.PixelData = px.tobytes() if ts != ExplicitVRBigEndian else px.byteswap().tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


SEP = b"--DPERSONA-SLICE--"
put("dicom_series", "explicit_le_2_slices.bin",
    ct(-100.0, 0, ExplicitVRLittleEndian) + SEP + ct(-97.5, 1, ExplicitVRLittleEndian))
put("dicom_series", "implicit_le_1_slice.bin", ct(-100.0, 0, ImplicitVRLittleEndian))
put("dicom_series", "rle_1_slice.bin", ct(-100.0, 0, RLELossless))
put("dicom_series", "unsigned8_1_slice.bin", ct(-100.0, 2, ExplicitVRLittleEndian, bits=8, signed=0))


# ---- NIfTI ----------------------------------------------------------------------------
def nii(arr, affine, gz: bool, slope=None) -> bytes:
    img = nib.Nifti1Image(arr, affine)
    if slope is not None:
        img.header.set_slope_inter(*slope)
    raw = img.to_bytes()
    # The target's first byte picks the ending: even .nii, odd .nii.gz.
    return (b"\x01" + gzip.compress(raw, mtime=0)) if gz else (b"\x00" + raw)


aff = np.diag([0.8, 0.8, 2.0, 1.0])
rng = np.random.default_rng(0)
put("nifti_volume", "float32_4x5x3.nii", nii(rng.random((4, 5, 3), dtype=np.float32), aff, False))
put("nifti_volume", "int16_scl_3x3x2.nii.gz",
    nii(rng.integers(-5, 5, (3, 3, 2)).astype(np.int16), aff, True, slope=(2.0, -1.0)))
put("nifti_volume", "uint8_4d_2x2x2x2.nii.gz", nii(np.arange(16, dtype=np.uint8).reshape(2, 2, 2, 2), aff, True))
q = nib.Nifti1Image(np.zeros((2, 3, 1), np.float64), None)
q.set_qform(np.array([[0, -1, 0, 5], [1, 0, 0, -3], [0, 0, 1.5, 2], [0, 0, 0, 1]]), code=1)
put("nifti_volume", "qform_only_2x3x1.nii", b"\x00" + q.to_bytes())


# ---- predictions folder -----------------------------------------------------------------
def pack(files) -> bytes:
    out = b""
    for name, body in files:
        n = name.encode()
        out += bytes([len(n)]) + n + struct.pack("<I", len(body)) + body
    return out


def png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def header(unit: str, files: str) -> bytes:
    return json.dumps({"format": "dpersona-predictions", "version": 2, "run": "fuzz",
                       "method": "prob_unet", "stage": 1, "n_samples": 2, "unit": unit,
                       "files": files}).encode()


g8 = (rng.random((6, 5)) * 255).astype(np.uint8)
mask = np.where(g8 > 127, 255, 0).astype(np.uint8)
put("predictions_folder", "png_slices.bin", pack([
    ("predictions.json", header("slice", "png")),
    ("S1/T0/slice_0003/pred_01.png", png(g8)),
    ("S1/T0/slice_0003/pred_02.png", png((g8 // 2).astype(np.uint8))),
    ("S1/T0/slice_0003/rater_1.png", png(mask)),
    ("S1/T0/slice_0003/rater_3.png", png(mask)),
    ("S1/T0/slice_0003/image.png", png(g8)),
    ("S1/T0/slice_0004/pred_01.png", png((rng.random((6, 5)) * 65535).astype(np.uint16))),
]))
vol = rng.random((5, 6, 2), dtype=np.float32)
put("predictions_folder", "nifti_volumes.bin", pack([
    ("predictions.json", header("volume", "nifti")),
    ("S1/T0/pred_01.nii.gz", gzip.compress(nib.Nifti1Image(vol, aff).to_bytes(), mtime=0)),
    ("S1/T0/pred_02.nii", nib.Nifti1Image(vol, aff).to_bytes()),
    ("S1/T0/rater_2.nii.gz", gzip.compress(nib.Nifti1Image((vol > 0.5).astype(np.uint8), aff).to_bytes(), mtime=0)),
    ("S1/T0/image.nii", nib.Nifti1Image(vol * 100, aff).to_bytes()),
]))

# ---- LIDC pickle (restricted unpickler) ---------------------------------------------------
import pickle  # noqa: E402

items = {f"LIDC-IDRI-0001_slice{k}": {"image": (rng.random((8, 8)) * 255).astype(np.uint8),
                                      "masks": [(rng.random((8, 8)) > 0.5).astype(np.uint8) for _ in range(4)],
                                      "pixel_spacing": 0.7} for k in range(2)}
for proto in (2, 4, 5):
    put("lidc_pickle", f"items_proto{proto}.pkl", pickle.dumps(items, protocol=proto))
put("lidc_pickle", "float_fortran.pkl",
    pickle.dumps({"a": np.asfortranarray(rng.random((3, 4)).astype(">f4"))}, protocol=2))

# ---- MMIS HDF5 (h5py) -----------------------------------------------------------------
import h5py  # noqa: E402


def mmis(storage, shape=(2, 4, 4), libver=None, f_dtype="f4") -> bytes:
    """One MMIS Task 1 case: t1, t1c, t2, label_a1..a4, voxel_spacing; tiny shapes."""
    buf = io.BytesIO()
    with h5py.File(buf, "w", libver=libver) as f:
        for i, k in enumerate(["t1", "t1c", "t2"]):
            f.create_dataset(k, data=(rng.random(shape) * 100).astype(f_dtype), **storage)
        for i in range(4):
            f.create_dataset(f"label_a{i + 1}", data=(rng.random(shape) > 0.5).astype("u1"), **storage)
        f.create_dataset("voxel_spacing", data=np.asarray([3.0, 0.5, 0.5], dtype="f8"))
    return buf.getvalue()


put("mmis_h5", "contiguous.h5", mmis({}))
put("mmis_h5", "chunked_gzip_shuffle.h5",
    mmis(dict(chunks=(1, 2, 4), compression="gzip", shuffle=True), libver="latest"))
put("mmis_h5", "slice2d_latest.h5", mmis({}, shape=(4, 4), libver="latest", f_dtype="<f8"))
put("mmis_h5", "chunked_fletcher_be.h5",
    mmis(dict(chunks=(2, 2, 2), compression="gzip", compression_opts=1, shuffle=True, fletcher32=True),
         f_dtype=">i2", libver="latest"))

total = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
print(f"seeds: {sum(1 for p in ROOT.rglob('*') if p.is_file())} files, {total} bytes under {ROOT}")
