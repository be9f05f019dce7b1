"""Reference LIDC converter for bench/bench_ingest.sh: the job `dpersona ingest lidc` does,
written the way a Python user would (pydicom + numpy + matplotlib + pyarrow, one process).

Usage: ingest_reference.py RAW OUT [--crop 128] [--window-lo -1350] [--window-hi 150]
Prints the number of slice rows written. It does the work dpersona does: reads every file
of a series, matches rois to slices by SOP UID (else nearest z), clusters reads into nodules
with pylidc's rule (scipy, as pylidc itself does it), crops, windows, derives intersection,
union and areas, SHA-256 hashes the source files of every row, bit-packs the masks as
dpersona's shards do (np.packbits), and writes zstd Parquet in 32-row groups. Not bit-identical: contour pixels are kept as matplotlib's Path test decides
(dpersona excludes them as pylidc does), which changes mask areas, not which slices exist.
"""
import argparse
import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pydicom
from matplotlib.path import Path as MplPath
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import cdist

NS = "{http://www.nih.gov}"
N_READERS = 4
ROW_GROUP = 32
SHARD_ROWS = 2048


def read_series(files):
    ds = [pydicom.dcmread(f) for f in files]
    for d, f in zip(ds, files):
        d.source_path = str(f)
    ds.sort(key=lambda d: (float(d.ImagePositionPatient[2]), int(d.InstanceNumber)))
    hu = np.stack([d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds])
    z = np.array([float(d.ImagePositionPatient[2]) for d in ds])
    sops = {str(d.SOPInstanceUID): i for i, d in enumerate(ds)}
    return ds, hu, z, sops


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def parse_reads(xml_path, z, sops, shape):
    """Per reading session, a list of reads: ({slice index: mask [H, W]}, contour points
    [N, 3] as (row, col, slice index))."""
    root = ET.parse(xml_path).getroot()
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    sessions = []
    for session in root.iter(NS + "readingSession"):
        reads = []
        for nodule in session.iter(NS + "unblindedReadNodule"):
            masks, points = {}, []
            for roi in nodule.iter(NS + "roi"):
                pts = [(int(e.find(NS + "xCoord").text), int(e.find(NS + "yCoord").text)) for e in roi.iter(NS + "edgeMap")]
                sop = roi.find(NS + "imageSOP_UID").text.strip()
                k = sops.get(sop)
                if k is None:
                    k = int(np.argmin(np.abs(z - float(roi.find(NS + "imageZposition").text))))
                points.extend((y, x, k) for x, y in pts)
                if len(pts) < 2:
                    continue
                inside = MplPath(np.array(pts + [pts[0]], float)).contains_points(grid, radius=1e-9).reshape(h, w)
                m = masks.setdefault(k, np.zeros((h, w), np.uint8))
                if roi.find(NS + "inclusion").text.strip().upper() == "TRUE":
                    m |= inside.astype(np.uint8)
                else:
                    m &= ~inside
            if masks:
                reads.append((masks, np.array(points, float)))
        sessions.append(reads)
    return sessions


def cluster_reads(points, tol, factor=0.9, min_tol=0.1):
    """pylidc's Scan.cluster_annotations (metric 'min'): reads are adjacent when the smallest
    distance between their contour points, in (row, col, slice index) units, is <= tol
    (the slice thickness); connected components, shrinking tol while a group has > 4 reads."""
    n = len(points)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            d[i, j] = d[j, i] = cdist(points[i], points[j]).min()
    _, cids = connected_components(d <= tol, directed=False)
    while np.bincount(cids).max() > N_READERS:
        tol *= factor
        if tol < min_tol:
            break
        _, cids = connected_components(d <= tol, directed=False)
    return [np.flatnonzero(cids == c) for c in np.unique(cids)]


def group_nodules(sessions, tol):
    """Per nodule, {slice: [mask or None] * 4}; a reader's reads in one nodule are OR-ed."""
    reads = [(s, masks, pts) for s, rs in enumerate(sessions) for masks, pts in rs]
    nodules = []
    for members in cluster_reads([pts for _, _, pts in reads], tol) if reads else []:
        slices = {}
        for i in members:
            s, masks, _ = reads[i]
            for k, m in masks.items():
                slot = slices.setdefault(k, [None] * N_READERS)
                slot[s] = m if slot[s] is None else (slot[s] | m)
        nodules.append(slices)
    return nodules


class ShardWriter:
    def __init__(self, out):
        self.out, self.rows, self.index, self.writer = out, 0, 0, None

    def write(self, table):
        if self.writer is None:
            self.path = self.out / f"shard-{self.index:05d}.parquet"
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table, row_group_size=ROW_GROUP)
        self.rows += table.num_rows
        if self.rows >= SHARD_ROWS:
            self.close()

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer, self.rows, self.index = None, 0, self.index + 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--window-lo", type=float, default=-1350.0)
    ap.add_argument("--window-hi", type=float, default=150.0)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    xml_by_series = {}
    for x in a.raw.rglob("*.xml"):
        uid = ET.parse(x).getroot().find(f"{NS}ResponseHeader/{NS}SeriesInstanceUid")
        if uid is not None:
            xml_by_series[uid.text.strip()] = x
    writer, total, c = ShardWriter(a.out), 0, a.crop
    for series_dir in sorted({p.parent for p in a.raw.rglob("*.dcm")}):
        files = sorted(series_dir.glob("*.dcm"))
        if str(pydicom.dcmread(files[0], stop_before_pixels=True).Modality) != "CT":
            continue  # chest X-ray series (their XML is an IdriReadMessage)
        ds, hu, z, sops = read_series(files)
        first = ds[0]
        uid = str(first.SeriesInstanceUID)
        xml_path = xml_by_series[uid]
        sessions = parse_reads(xml_path, z, sops, hu.shape[1:])
        xml_sha, file_sha = sha256_file(xml_path), {}
        rows = []
        for t, slices in enumerate(group_nodules(sessions, float(first.SliceThickness))):
            union_all = np.concatenate([np.column_stack(np.nonzero(m)) for sl in slices.values() for m in sl if m is not None])
            r0, c0 = (np.round(union_all.mean(axis=0)).astype(int) - c // 2)
            for k in sorted(slices):
                padded = np.pad(hu[k], c, constant_values=a.window_lo)
                img = padded[r0 + c : r0 + 2 * c, c0 + c : c0 + 2 * c]
                img = (np.clip(img, a.window_lo, a.window_hi) - a.window_lo) / (a.window_hi - a.window_lo)
                present = np.array([s < len(sessions) for s in range(N_READERS)])
                masks = np.zeros((N_READERS, c, c), np.uint8)
                for s, m in enumerate(slices[k]):
                    if m is not None:
                        masks[s] = np.pad(m, c)[r0 + c : r0 + 2 * c, c0 + c : c0 + 2 * c]
                p = masks[present]
                rows.append(
                    {
                        "study_id": uid,
                        "patient_id": str(first.PatientID),
                        "target_id": f"nodule-{t + 1}",
                        "slice_index": k,
                        "z_mm": float(z[k]),
                        "image": img.astype(np.float32).ravel(),
                        "masks": np.packbits(masks).tobytes(),
                        "raters_present": present,
                        "rater_area": masks.reshape(N_READERS, -1).sum(axis=1).astype(np.uint32),
                        "intersection": np.packbits(p.min(axis=0)).tobytes(),
                        "union": np.packbits(p.max(axis=0)).tobytes(),
                        "source_files": [ds[k].source_path, str(xml_path)],
                        "source_sha256": [file_sha.setdefault(k, sha256_file(ds[k].source_path)), xml_sha],
                    }
                )
        if rows:
            table = pa.table({key: [r[key] for r in rows] for key in rows[0]})
            writer.write(table)
            total += len(rows)
    writer.close()
    print(total)


if __name__ == "__main__":
    main()
