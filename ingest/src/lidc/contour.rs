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

/// A 0/1 mask over a window of the slice grid (the bounding box of a slice's contour
/// points, clipped to the grid); every pixel outside the window is 0.
///
/// Rasterising into the box instead of a whole `rows x columns` slice keeps every later
/// per-pixel pass (union of readers, nodule centre, crop) to the few hundred pixels a
/// nodule covers rather than 512 x 512 per slice and reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxMask {
    pub row0: usize,
    pub col0: usize,
    pub height: usize,
    pub width: usize,
    /// `[height, width]` row-major.
    pub data: Vec<u8>,
}

impl BoxMask {
    /// An all-zero mask over rows `row0..row0 + height`, columns `col0..col0 + width`.
    pub fn zeros(row0: usize, col0: usize, height: usize, width: usize) -> Self {
        BoxMask {
            row0,
            col0,
            height,
            width,
            data: vec![0; height * width],
        }
    }

    /// Value at `(row, col)` of the slice grid (0 outside the box).
    #[inline]
    pub fn get(&self, row: usize, col: usize) -> u8 {
        if row >= self.row0
            && col >= self.col0
            && row < self.row0 + self.height
            && col < self.col0 + self.width
        {
            self.data[(row - self.row0) * self.width + (col - self.col0)]
        } else {
            0
        }
    }

    /// ORs `other` into this mask; `other`'s box must lie inside this one.
    pub fn or_from(&mut self, other: &BoxMask) {
        for r in 0..other.height {
            let dst = (other.row0 + r - self.row0) * self.width + (other.col0 - self.col0);
            let src = &other.data[r * other.width..(r + 1) * other.width];
            for (a, &b) in self.data[dst..dst + other.width].iter_mut().zip(src) {
                *a |= b;
            }
        }
    }

    /// The whole `[rows * columns]` slice.
    pub fn to_full(&self, rows: usize, columns: usize) -> Vec<u8> {
        let mut full = vec![0; rows * columns];
        for r in 0..self.height {
            let dst = (self.row0 + r) * columns + self.col0;
            full[dst..dst + self.width]
                .copy_from_slice(&self.data[r * self.width..(r + 1) * self.width]);
        }
        full
    }
}

/// Sets `value` at the contour points that lie on the slice grid.
fn set_points(mask: &mut BoxMask, points: &[(i32, i32)], value: u8) {
    for &(r, c) in points {
        if r >= 0 && c >= 0 {
            let (r, c) = (r as usize, c as usize);
            if r >= mask.row0
                && c >= mask.col0
                && r < mask.row0 + mask.height
                && c < mask.col0 + mask.width
            {
                mask.data[(r - mask.row0) * mask.width + (c - mask.col0)] = value;
            }
        }
    }
}

/// Fills the interior of one contour (pixel centres strictly inside per matplotlib).
fn fill(mask: &mut BoxMask, roi: &Roi, value: u8) {
    let poly = polygon(&roi.points);
    let (r0, r1) = roi
        .points
        .iter()
        .fold((i32::MAX, i32::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (c0, c1) = roi
        .points
        .iter()
        .fold((i32::MAX, i32::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    // The box holds every on-grid point of the slice's contours, so clipping to it is
    // clipping to the grid.
    let (br1, bc1) = (
        (mask.row0 + mask.height) as i32 - 1,
        (mask.col0 + mask.width) as i32 - 1,
    );
    for r in r0.max(mask.row0 as i32)..=r1.min(br1) {
        for c in c0.max(mask.col0 as i32)..=c1.min(bc1) {
            if inside(&poly, r as f64, c as f64) {
                let p = (r as usize - mask.row0) * mask.width + (c as usize - mask.col0);
                mask.data[p] = value;
            }
        }
    }
}

/// One read rasterised: slice index -> `[rows * columns]` 0/1 mask (only slices it touches).
pub type ReadMask = BTreeMap<usize, Vec<u8>>;

/// One read rasterised into boxes: slice index -> mask over the bounding box of the read's
/// contour points on that slice (only slices it touches).
pub type BoxedReadMask = BTreeMap<usize, BoxMask>;

/// Rasterises one read. `Err(roi)` when a roi matches no slice (see
/// [`SliceGeometry::locate`]); the caller names the XML file.
pub fn rasterise(read: &Read, g: &SliceGeometry, include_contour: bool) -> Result<ReadMask, Roi> {
    Ok(rasterise_boxed(read, g, include_contour)?
        .into_iter()
        .map(|(k, m)| (k, m.to_full(g.rows, g.columns)))
        .collect())
}

/// [`rasterise`] into the bounding box of each slice's contour points (same pixels).
pub fn rasterise_boxed(
    read: &Read,
    g: &SliceGeometry,
    include_contour: bool,
) -> Result<BoxedReadMask, Roi> {
    let mut located = Vec::with_capacity(read.rois.len());
    for roi in &read.rois {
        let k = g.locate(roi).ok_or_else(|| roi.clone())?;
        located.push((k, roi));
    }
    // Per slice, the bounding box of its rois' points clipped to the grid (may be empty
    // when every point lies off the grid).
    let mut bounds: BTreeMap<usize, (i32, i32, i32, i32)> = BTreeMap::new();
    for &(k, roi) in &located {
        let b = bounds
            .entry(k)
            .or_insert((i32::MAX, i32::MIN, i32::MAX, i32::MIN));
        for &(r, c) in &roi.points {
            *b = (b.0.min(r), b.1.max(r), b.2.min(c), b.3.max(c));
        }
    }
    let mut slices: BoxedReadMask = bounds
        .into_iter()
        .map(|(k, (r0, r1, c0, c1))| {
            let (r0, r1) = (i64::from(r0.max(0)), i64::from(r1.min(g.rows as i32 - 1)));
            let (c0, c1) = (
                i64::from(c0.max(0)),
                i64::from(c1.min(g.columns as i32 - 1)),
            );
            let m = if r1 < r0 || c1 < c0 {
                BoxMask::zeros(0, 0, 0, 0)
            } else {
                BoxMask::zeros(
                    r0 as usize,
                    c0 as usize,
                    (r1 - r0 + 1) as usize,
                    (c1 - c0 + 1) as usize,
                )
            };
            (k, m)
        })
        .collect();
    for &(k, roi) in located.iter().filter(|(_, r)| r.inclusion) {
        let m = slices.get_mut(&k).expect("every located slice has a box");
        fill(m, roi, 1);
        if !include_contour {
            set_points(m, &roi.points, 0);
        }
    }
    for &(k, roi) in located.iter().filter(|(_, r)| !r.inclusion) {
        let m = slices.get_mut(&k).expect("every located slice has a box");
        fill(m, roi, 0);
        set_points(m, &roi.points, 0);
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
