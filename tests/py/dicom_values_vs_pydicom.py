"""Checks dpersona's DICOM pixel values against pydicom (+ pylibjpeg decoders).

Usage: dicom_values_vs_pydicom.py MANIFEST.json

MANIFEST lists {"path", "values" (raw little-endian float64 file written by dpersona),
"shape": [frames, rows, columns, samples]} for files dpersona decoded, and
{"path", "error"} for files it refused. For decoded files the values must equal pydicom's
pixel_array after apply_modality_lut exactly; for refused files pydicom must decode them
(so the refusal is a dpersona limitation that the error message names). Exits 1 on mismatch.
"""
import json
import sys

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut


def reference(path):
    ds = pydicom.dcmread(path)
    arr = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    spp = int(getattr(ds, "SamplesPerPixel", 1))
    return arr.reshape(frames, int(ds.Rows), int(ds.Columns), spp)


def main():
    entries = json.load(open(sys.argv[1]))
    bad = 0
    for e in entries:
        name = e["path"]
        if "error" in e:
            ref = reference(name)
            print(f"REFUSED (pydicom decodes {ref.shape}): {name}: {e['error']}")
            continue
        ours = np.fromfile(e["values"], dtype="<f8").reshape(e["shape"])
        ref = reference(name)
        if ours.shape != ref.shape or not np.array_equal(ours, ref):
            diff = np.abs(ours - ref).max() if ours.shape == ref.shape else "shape"
            print(f"MISMATCH {name}: ours {ours.shape} pydicom {ref.shape} max diff {diff}")
            bad += 1
        else:
            print(f"EQUAL {name} {ref.shape} range [{ref.min()}, {ref.max()}]")
    print(f"{len(entries)} files, {bad} mismatches")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
