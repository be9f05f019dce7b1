//! Grouping the reads of different readers into nodules: pylidc's
//! `Scan.cluster_annotations` with its defaults (metric "min", factor 0.9, min_tol 0.1).
//!
//! Two reads are adjacent when the smallest Euclidean distance between their contour points,
//! in `(row, col, slice index)` units, is at most `tol`; nodules are the connected components.
//! `tol` starts at the scan's slice thickness (pylidc mixes mm and index units here; we keep
//! its rule so our nodules are its nodules) and shrinks by `factor` while any nodule holds
//! more than [`MAX_READS`] reads, stopping once it falls below `min_tol`.

/// LIDC has at most four readers, so a nodule holds at most four reads.
pub const MAX_READS: usize = 4;
/// pylidc's shrink factor for the tolerance.
pub const FACTOR: f64 = 0.9;
/// pylidc's smallest tolerance.
pub const MIN_TOL: f64 = 0.1;

/// Smallest distance between two point sets (`f64::INFINITY` when either is empty).
pub fn min_distance(a: &[[f64; 3]], b: &[[f64; 3]]) -> f64 {
    let mut best = f64::INFINITY;
    for p in a {
        for q in b {
            let d = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2);
            if d < best {
                best = d;
            }
        }
    }
    best.sqrt()
}

/// Connected components of `d <= tol`, as lists of read indices (each sorted, listed by
/// their smallest member).
fn components(d: &[Vec<f64>], tol: f64) -> Vec<Vec<usize>> {
    let n = d.len();
    let mut label = vec![usize::MAX; n];
    let mut groups = Vec::new();
    for start in 0..n {
        if label[start] != usize::MAX {
            continue;
        }
        let id = groups.len();
        let mut members = vec![start];
        label[start] = id;
        let mut i = 0;
        while i < members.len() {
            let a = members[i];
            for b in 0..n {
                if label[b] == usize::MAX && d[a][b] <= tol {
                    label[b] = id;
                    members.push(b);
                }
            }
            i += 1;
        }
        members.sort_unstable();
        groups.push(members);
    }
    groups
}

/// Axis-aligned bounding box of a point set (`None` when empty).
fn bounds(points: &[[f64; 3]]) -> Option<([f64; 3], [f64; 3])> {
    let first = *points.first()?;
    Some(points.iter().fold((first, first), |(lo, hi), p| {
        (
            [lo[0].min(p[0]), lo[1].min(p[1]), lo[2].min(p[2])],
            [hi[0].max(p[0]), hi[1].max(p[1]), hi[2].max(p[2])],
        )
    }))
}

/// A lower bound of [`min_distance`] between two point sets: the distance between their
/// bounding boxes.
fn box_distance(a: &([f64; 3], [f64; 3]), b: &([f64; 3], [f64; 3])) -> f64 {
    let mut d2 = 0.0;
    for axis in 0..3 {
        let gap = (b.0[axis] - a.1[axis]).max(a.0[axis] - b.1[axis]).max(0.0);
        d2 += gap * gap;
    }
    d2.sqrt()
}

/// Clusters reads given their contour points (`points[i]` = read i's `(row, col, k)` points).
/// Returns groups of read indices, each sorted, groups ordered by smallest member.
pub fn cluster(points: &[Vec<[f64; 3]>], slice_thickness: f64) -> Vec<Vec<usize>> {
    let n = points.len();
    if n == 0 {
        return Vec::new();
    }
    // Only `d <= tol` matters and `tol` never exceeds the slice thickness, so reads whose
    // bounding boxes lie farther apart than that (most pairs: different nodules) skip the
    // all-pairs point distance; their entry holds the box distance, also > every tol.
    let boxes: Vec<_> = points.iter().map(|p| bounds(p)).collect();
    let mut d = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            let v = match (&boxes[i], &boxes[j]) {
                (Some(a), Some(b)) if box_distance(a, b) > slice_thickness => box_distance(a, b),
                _ => min_distance(&points[i], &points[j]),
            };
            d[i][j] = v;
            d[j][i] = v;
        }
    }
    let mut tol = slice_thickness;
    let mut groups = components(&d, tol);
    while groups.iter().any(|g| g.len() > MAX_READS) {
        tol *= FACTOR;
        if tol < MIN_TOL {
            break;
        }
        groups = components(&d, tol);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_distance_bounds_the_point_distance() {
        let a = vec![[0.0, 0.0, 0.0], [3.0, 1.0, 0.0], [1.0, 4.0, 1.0]];
        let b = vec![[7.0, 9.0, 2.0], [6.0, 5.0, 4.0]];
        let (ba, bb) = (bounds(&a).unwrap(), bounds(&b).unwrap());
        // Boxes [0,3]x[0,4]x[0,1] and [6,7]x[5,9]x[2,4]: gaps 3, 1, 1.
        assert_eq!(box_distance(&ba, &bb), (11f64).sqrt());
        assert!(box_distance(&ba, &bb) <= min_distance(&a, &b));
        assert_eq!(box_distance(&ba, &ba), 0.0);
    }

    #[test]
    fn chain_splits_when_too_many() {
        // Five reads 1 apart along a line: one group at tol 1, split once tol < 1.
        let pts: Vec<Vec<[f64; 3]>> = (0..5).map(|i| vec![[i as f64, 0.0, 0.0]]).collect();
        assert_eq!(
            cluster(&pts, 1.0),
            vec![vec![0], vec![1], vec![2], vec![3], vec![4]]
        );
        let four: Vec<Vec<[f64; 3]>> = (0..4).map(|i| vec![[i as f64, 0.0, 0.0]]).collect();
        assert_eq!(cluster(&four, 1.0), vec![vec![0, 1, 2, 3]]);
    }
}
