//! Rasterising LIDC contours exactly as pylidc's `Annotation.boolean_mask` does by default.
//!
//! pylidc closes each contour, tests every integer pixel centre `(row, col)` with
//! matplotlib's `Path.contains_points` (an even-odd crossing test, see [`inside`]), ORs
//! inclusion contours into the slice and then sets the contour pixels themselves to false
//! (LIDC outlines are drawn just outside the nodule); exclusion contours (inclusion FALSE)
//! then clear their interior and their points. `include_contour = true` keeps the pixels of
//! inclusion contours (pylidc's `include_contour_points=True`).
use std::collections::BTreeMap;

use super::xml::{Read, Roi};

/// The slices a contour can land on: z order, as in the series.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceGeometry {
    pub rows: usize,
    pub columns: usize,
    /// z of each slice in mm, increasing.
    pub z_mm: Vec<f64>,
    /// SOP Instance UID of each slice.
    pub sop_uids: Vec<String>,
}

impl SliceGeometry {
    /// Slice of a roi: the slice with its SOP Instance UID, else the nearest z (pylidc's
    /// rule). `None` when the UID is unknown and no slice lies within half the median z step
    /// (at least 0.5 mm) of the roi's z.
    pub fn locate(&self, roi: &Roi) -> Option<usize> {
        if let Some(k) = self.sop_uids.iter().position(|u| *u == roi.sop_uid) {
            return Some(k);
        }
        let k = self.nearest(roi.z_mm)?;
        let mut steps: Vec<f64> = self.z_mm.windows(2).map(|w| w[1] - w[0]).collect();
        steps.sort_by(f64::total_cmp);
        let half = steps
            .get(steps.len() / 2)
            .map_or(0.5, |s| (s / 2.0).max(0.5));
        ((self.z_mm[k] - roi.z_mm).abs() <= half).then_some(k)
    }

    /// Index of the slice nearest to `z` (first one on ties, like numpy's argmin).
    pub fn nearest(&self, z: f64) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for (k, &zk) in self.z_mm.iter().enumerate() {
            let d = (zk - z).abs();
            if best.is_none_or(|(_, bd)| d < bd) {
                best = Some((k, d));
            }
        }
        best.map(|(k, _)| k)
    }
}

/// matplotlib's `point_in_path_impl` for one closed polygon (`_path.h`), with the polygon
/// given as `(x, y)` vertices and the test point `(tx, ty)`. pylidc passes `(row, col)` as
/// `(x, y)`. Points on an edge follow the same rule as matplotlib (the sign test below),
/// which matters because LIDC contour vertices and pixel centres are both integers.
pub fn inside(poly: &[(f64, f64)], tx: f64, ty: f64) -> bool {
    // matplotlib returns false for paths with fewer than 3 vertices (counting the closing one).
    if poly.len() < 2 {
        return false;
    }
    let mut flag = false;
    let n = poly.len();
    let (mut vtx0, mut vty0) = poly[n - 1];
    let mut yflag0 = vty0 >= ty;
    for &(vtx1, vty1) in poly {
        let yflag1 = vty1 >= ty;
        if yflag0 != yflag1
            && (((vty1 - ty) * (vtx0 - vtx1) >= (vtx1 - tx) * (vty0 - vty1)) == yflag1)
        {
            flag = !flag;
        }
        yflag0 = yflag1;
        vtx0 = vtx1;
        vty0 = vty1;
    }
    flag
}

/// Unique vertices of a contour as pylidc closes it (a repeated first point is dropped).
fn polygon(points: &[(i32, i32)]) -> Vec<(f64, f64)> {
    let mut p: Vec<(f64, f64)> = points.iter().map(|&(r, c)| (r as f64, c as f64)).collect();
    if p.len() > 1 && p.first() == p.last() {
        p.pop();
    }
    p
}

/// Sets `value` at the contour points that lie on the slice grid.
fn set_points(mask: &mut [u8], g: &SliceGeometry, points: &[(i32, i32)], value: u8) {
    for &(r, c) in points {
        if r >= 0 && c >= 0 && (r as usize) < g.rows && (c as usize) < g.columns {
            mask[r as usize * g.columns + c as usize] = value;
        }
    }
}

/// Fills the interior of one contour (pixel centres strictly inside per matplotlib).
fn fill(mask: &mut [u8], g: &SliceGeometry, roi: &Roi, value: u8) {
    let poly = polygon(&roi.points);
    let (r0, r1) = roi
        .points
        .iter()
        .fold((i32::MAX, i32::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (c0, c1) = roi
        .points
        .iter()
        .fold((i32::MAX, i32::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    for r in r0.max(0)..=r1.min(g.rows as i32 - 1) {
        for c in c0.max(0)..=c1.min(g.columns as i32 - 1) {
            if inside(&poly, r as f64, c as f64) {
                mask[r as usize * g.columns + c as usize] = value;
            }
        }
    }
}

/// One read rasterised: slice index -> `[rows * columns]` 0/1 mask (only slices it touches).
pub type ReadMask = BTreeMap<usize, Vec<u8>>;

/// Rasterises one read. `Err(roi)` when a roi matches no slice (see
/// [`SliceGeometry::locate`]); the caller names the XML file.
pub fn rasterise(read: &Read, g: &SliceGeometry, include_contour: bool) -> Result<ReadMask, Roi> {
    let mut slices = ReadMask::new();
    let mut located = Vec::with_capacity(read.rois.len());
    for roi in &read.rois {
        let k = g.locate(roi).ok_or_else(|| roi.clone())?;
        located.push((k, roi));
    }
    for &(k, roi) in located.iter().filter(|(_, r)| r.inclusion) {
        let m = slices
            .entry(k)
            .or_insert_with(|| vec![0; g.rows * g.columns]);
        fill(m, g, roi, 1);
        if !include_contour {
            set_points(m, g, &roi.points, 0);
        }
    }
    for &(k, roi) in located.iter().filter(|(_, r)| !r.inclusion) {
        let m = slices
            .entry(k)
            .or_insert_with(|| vec![0; g.rows * g.columns]);
        fill(m, g, roi, 0);
        set_points(m, g, &roi.points, 0);
    }
    Ok(slices)
}

/// Contour points of a read as `(row, col, slice index)` (pylidc's `contours_matrix`),
/// the input of clustering. Rois that match no slice are skipped (rasterise reports them).
pub fn contour_points(read: &Read, g: &SliceGeometry) -> Vec<[f64; 3]> {
    read.rois
        .iter()
        .filter_map(|roi| g.locate(roi).map(|k| (k, roi)))
        .flat_map(|(k, roi)| {
            roi.points
                .iter()
                .map(move |&(r, c)| [r as f64, c as f64, k as f64])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_interior_excludes_outline() {
        // A 5x5 outline (rows/cols 1..=5): the 3x3 interior remains.
        let mut pts = vec![];
        for c in 1..=5 {
            pts.push((1, c));
        }
        for r in 2..=5 {
            pts.push((r, 5));
        }
        for c in (1..5).rev() {
            pts.push((5, c));
        }
        for r in (2..5).rev() {
            pts.push((r, 1));
        }
        let g = SliceGeometry {
            rows: 8,
            columns: 8,
            z_mm: vec![0.0],
            sop_uids: vec!["a".into()],
        };
        let read = Read {
            nodule_id: "x".into(),
            rois: vec![Roi {
                z_mm: 0.0,
                sop_uid: "a".into(),
                inclusion: true,
                points: pts,
            }],
        };
        let m = rasterise(&read, &g, false).unwrap();
        let s = &m[&0];
        let on: Vec<(usize, usize)> = (0..64)
            .filter(|&p| s[p] == 1)
            .map(|p| (p / 8, p % 8))
            .collect();
        let want: Vec<(usize, usize)> =
            (2..=4).flat_map(|r| (2..=4).map(move |c| (r, c))).collect();
        assert_eq!(on, want);
        // matplotlib's half-open edge rule puts the outline's bottom and right edges... on
        // one side only; with include_contour the outline pixels keep whatever it says, and
        // the interior is always kept.
        let with = rasterise(&read, &g, true).unwrap();
        assert!(want.iter().all(|&(r, c)| with[&0][r * 8 + c] == 1));
    }
}
