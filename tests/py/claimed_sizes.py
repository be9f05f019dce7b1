"""Files whose headers claim far more data than they hold, written by the independent
writers (h5py, pydicom), for ingest's checks of claimed sizes (ingest/tests/fuzz_regressions.rs).

Usage: claimed_sizes.py OUT
  OUT/h5_unwritten_contiguous.h5  `t1` of 100 x 100 x 100 float64 (8 MB) never written:
                                  h5py stores no data (1.4 KB file); a read is fill values
  OUT/h5_unwritten_chunked.h5     `label_a1` of 200 x 200 x 200 uint8, chunked + gzip, no
                                  chunk written (8 MB claimed, over 1032 x the file)
  OUT/h5_zeros_gzip9.h5           a legitimate extreme: `label_a1` of 64 x 256 x 256 zeros,
                                  gzip level 9 + shuffle, every chunk written (must be read)
  OUT/jpeg_1000_frames.dcm        JPEG Baseline, 512 x 512 x 16 bits, NumberOfFrames 1000,
                                  one 100-byte fragment (claims 524 MB decoded)
  OUT/jpeg_big_and_empty.dcm      NumberOfFrames 400 and 400 fragments: one of 40 KB,
                                  399 of 2 bytes (claims 210 MB decoded from 40 KB)
Prints each file's size and claim.
"""
import os
import sys

import h5py
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import CTImageStorage, JPEGBaseline8Bit, generate_uid


def h5(out):
    p = os.path.join(out, "h5_unwritten_contiguous.h5")
    with h5py.File(p, "w") as f:
        f.create_dataset("t1", shape=(100, 100, 100), dtype="f8")
    print(p, os.path.getsize(p), "claims", 100**3 * 8)
    p = os.path.join(out, "h5_unwritten_chunked.h5")
    with h5py.File(p, "w") as f:
        f.create_dataset(
            "label_a1", shape=(200, 200, 200), dtype="u1", chunks=(20, 50, 50),
            compression="gzip",
        )
    print(p, os.path.getsize(p), "claims", 200**3)
    p = os.path.join(out, "h5_zeros_gzip9.h5")
    with h5py.File(p, "w") as f:
        f.create_dataset(
            "label_a1", data=np.zeros((64, 256, 256), np.uint8), chunks=(64, 256, 256),
            compression="gzip", compression_opts=9, shuffle=True,
        )
    print(p, os.path.getsize(p), "claims", 64 * 256 * 256)


def dicom(path, frames, fragments):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "LIDC-IDRI-0001"
    ds.ImagePositionPatient = [0, 0, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.Rows, ds.Columns = 512, 512
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames
    ds.PixelData = encapsulate(fragments)
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    print(path, os.path.getsize(path), "claims", 512 * 512 * 2 * frames)


def main():
    out = sys.argv[1]
    h5(out)
    # An SOI marker and junk: the decoder fails on the first frame, after the allocation.
    dicom(os.path.join(out, "jpeg_1000_frames.dcm"), 1000, [b"\xff\xd8" + b"\0" * 98])
    dicom(
        os.path.join(out, "jpeg_big_and_empty.dcm"), 400,
        [b"\xff\xd8" + b"\0" * 40958] + [b"\xff\xd9"] * 399,
    )


if __name__ == "__main__":
    main()
