//! The model's outputs, made on the training grid, back on the input scan's grid: the
//! inverse of ingest's [`SliceGrid`] (nearest for masks, linear for probabilities).
//!
//! Resampled slices go back with scipy's `ndimage.zoom` arithmetic (`grid_mode=False`:
//! corners onto corners, output index `o` reads input position `o * ((n_in - 1) /
//! (n_out - 1))`) and `mode='nearest'`, which clamps a position that rounding put a hair
//! past the last sample (scipy's default `mode='constant'` turns such a row into zeros,
//! e.g. 32 → 160, whose last position is 31.000000000000004). Linear weights and the order
//! of the sum are scipy's order-1 spline (x taps outer, y taps inner), so a probability
//! map comes back bit for bit as `zoom(p, (nx / S, ny / S, 1), order=1, mode='nearest')`.
//! Cropped slices go back into their window; outside it the output is 0. ROI crops (LIDC-
//! style runs) go back into their windows on their slices ([`Back`]).
use ingest::nifti::SliceGrid;

use super::preprocess::{Placement, PreparedCase};

/// Input position of each output sample along one axis (scipy `zoom`, `grid_mode=False`).
fn positions(n_in: usize, n_out: usize) -> Vec<f64> {
    let ratio = if n_out > 1 {
        (n_in as f64 - 1.0) / (n_out as f64 - 1.0)
    } else {
        0.0
    };
    (0..n_out).map(|o| o as f64 * ratio).collect()
}

/// Nearest input sample of each output sample: `floor(x + 0.5)`, clamped to the axis.
fn nearest_taps(n_in: usize, n_out: usize) -> Vec<usize> {
    positions(n_in, n_out)
        .into_iter()
        .map(|x| ((x + 0.5).floor().max(0.0) as usize).min(n_in - 1))
        .collect()
}

/// The two input samples of each output sample and their weights (order-1 spline),
/// clamped to the axis.
fn linear_taps(n_in: usize, n_out: usize) -> Vec<([usize; 2], [f64; 2])> {
    positions(n_in, n_out)
        .into_iter()
        .map(|x| {
            let i0 = (x.floor().max(0.0) as usize).min(n_in - 1);
            let t = x - i0 as f64;
            let i1 = (i0 + 1).min(n_in - 1);
            ([i0, i1], [1.0 - t, t])
        })
        .collect()
}

/// One model-grid plane `[S * S]` (row-major) back on the input plane `[rows * cols]`,
/// nearest neighbour (masks).
pub fn back_nearest<T: Copy + Default>(grid: &SliceGrid, plane: &[T]) -> Vec<T> {
    let (rows, cols, s) = (grid.rows, grid.cols, grid.size);
    if !grid.resample {
        return uncrop(grid, plane);
    }
    let ri = nearest_taps(s, rows);
    let ci = nearest_taps(s, cols);
    let mut out = Vec::with_capacity(rows * cols);
    for &r in &ri {
        for &c in &ci {
            out.push(plane[r * s + c]);
        }
    }
    out
}

/// One model-grid plane `[S * S]` back on the input plane `[rows * cols]`, linear
/// (probabilities).
pub fn back_linear(grid: &SliceGrid, plane: &[f32]) -> Vec<f32> {
    let (rows, cols, s) = (grid.rows, grid.cols, grid.size);
    if !grid.resample {
        return uncrop(grid, plane);
    }
    let rt = linear_taps(s, rows);
    let ct = linear_taps(s, cols);
    let mut out = Vec::with_capacity(rows * cols);
    for (rs, rw) in &rt {
        for (cs, cw) in &ct {
            // scipy sums x (= column) taps outer, y (= row) taps inner, each term
            // (value * w_x) * w_y, in double precision.
            let mut t = 0.0f64;
            for (&c, &wc) in cs.iter().zip(cw) {
                for (&r, &wr) in rs.iter().zip(rw) {
                    t += plane[r * s + c] as f64 * wc * wr;
                }
            }
            out.push(t as f32);
        }
    }
    out
}

/// A cropped plane back into its window of the input plane; 0 outside it.
fn uncrop<T: Copy + Default>(grid: &SliceGrid, plane: &[T]) -> Vec<T> {
    let (rows, cols, s) = (grid.rows, grid.cols, grid.size);
    let mut out = vec![T::default(); rows * cols];
    for r in 0..s {
        let sr = grid.row0 + r as i64;
        if sr < 0 || sr >= rows as i64 {
            continue;
        }
        for c in 0..s {
            let sc = grid.col0 + c as i64;
            if sc >= 0 && sc < cols as i64 {
                out[sr as usize * cols + sc as usize] = plane[r * s + c];
            }
        }
    }
    out
}

/// Maps one case's model-grid outputs `[D * S * S]` back onto the input's z planes.
pub struct Back<'a> {
    placement: &'a Placement,
    size: usize,
    /// Slices: the model slice of each file plane.
    index_of: Vec<usize>,
}

impl<'a> Back<'a> {
    pub fn new(case: &'a PreparedCase) -> Self {
        let index_of = match &case.placement {
            Placement::Slices { plane_of, .. } => {
                let mut index_of = vec![0; plane_of.len()];
                for (j, &k) in plane_of.iter().enumerate() {
                    index_of[k] = j;
                }
                index_of
            }
            Placement::Crops { .. } => Vec::new(),
        };
        Back {
            placement: &case.placement,
            size: case.size,
            index_of,
        }
    }

    /// Input plane `k` `[rows * cols]` of a probability map (linear).
    pub fn linear(&self, k: usize, map: &[f32]) -> Vec<f32> {
        let ss = self.size * self.size;
        match self.placement {
            Placement::Slices { grid, .. } => {
                let j = self.index_of[k];
                back_linear(grid, &map[j * ss..(j + 1) * ss])
            }
            Placement::Crops { .. } => self.paste(k, map),
        }
    }

    /// Input plane `k` `[rows * cols]` of a mask (nearest).
    pub fn nearest<T: Copy + Default + PartialOrd>(&self, k: usize, map: &[T]) -> Vec<T> {
        let ss = self.size * self.size;
        match self.placement {
            Placement::Slices { grid, .. } => {
                let j = self.index_of[k];
                back_nearest(grid, &map[j * ss..(j + 1) * ss])
            }
            Placement::Crops { .. } => self.paste(k, map),
        }
    }

    /// Every crop of plane `k` in its window; 0 elsewhere, the larger value where two
    /// ROIs' windows overlap.
    fn paste<T: Copy + Default + PartialOrd>(&self, k: usize, map: &[T]) -> Vec<T> {
        let Placement::Crops { rows, cols, at } = self.placement else {
            unreachable!("paste is for crops")
        };
        let (rows, cols, s) = (*rows, *cols, self.size);
        let mut out = vec![T::default(); rows * cols];
        for (j, &(plane, row0, col0)) in at.iter().enumerate() {
            if plane != k {
                continue;
            }
            let crop = &map[j * s * s..(j + 1) * s * s];
            for r in 0..s {
                let sr = row0 + r as i64;
                if sr < 0 || sr >= rows as i64 {
                    continue;
                }
                for c in 0..s {
                    let sc = col0 + c as i64;
                    if sc >= 0 && sc < cols as i64 {
                        let dst = &mut out[sr as usize * cols + sc as usize];
                        if crop[r * s + c] > *dst {
                            *dst = crop[r * s + c];
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: usize, cols: usize, size: usize, resample: bool, o: (i64, i64)) -> SliceGrid {
        SliceGrid {
            rows,
            cols,
            size,
            resample,
            row0: o.0,
            col0: o.1,
        }
    }

    /// Both directions of scipy's zoom arithmetic on planes of unequal sides, checked by
    /// scipy itself (tests/py/predict_outputs_nibabel.py zoom-check).
    #[test]
    fn back_resampling_equals_scipy_zoom() {
        let tmp = tempfile::tempdir().unwrap();
        let s = 32;
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let probs: Vec<f32> = (0..s * s)
            .map(|_| (next() % 10_000) as f32 / 9_999.0)
            .collect();
        let mask: Vec<u8> = (0..s * s).map(|_| (next() % 2) as u8).collect();
        for (rows, cols) in [(160, 157), (97, 161), (32, 32), (20, 45)] {
            let g = grid(rows, cols, s, true, (0, 0));
            let write = |name: &str, bytes: Vec<u8>| {
                let p = tmp.path().join(name);
                std::fs::write(&p, bytes).unwrap();
                p.display().to_string()
            };
            let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            let dims = [s, s, rows, cols].map(|v| v.to_string());
            let cases = [
                ("f32", le(&probs), le(&back_linear(&g, &probs))),
                ("u8", mask.clone(), back_nearest(&g, &mask)),
            ];
            for (kind, input, output) in cases {
                let i = write(&format!("in_{kind}"), input);
                let o = write(&format!("out_{kind}"), output);
                let mut args = vec!["zoom-check".to_string(), i, o, kind.to_string()];
                args.extend(dims.iter().cloned());
                println!("{}", testkit::run_py("predict_outputs_nibabel.py", &args));
            }
        }
    }

    #[test]
    fn same_size_is_the_identity() {
        let g = grid(4, 4, 4, true, (0, 0));
        let p: Vec<f32> = (0..16).map(|v| v as f32 / 16.0).collect();
        assert_eq!(back_linear(&g, &p), p);
        assert_eq!(back_nearest(&g, &p), p);
    }

    #[test]
    fn a_rounded_last_position_is_clamped_not_zeroed() {
        // 32 -> 160: the last position is 31.000000000000004 in double precision.
        assert!(positions(32, 160)[159] > 31.0);
        let g = grid(160, 160, 32, true, (0, 0));
        let p = vec![1.0f32; 32 * 32];
        assert!(back_linear(&g, &p).iter().all(|&v| v == 1.0));
    }

    #[test]
    fn crops_go_back_into_their_window() {
        let g = grid(3, 4, 2, false, (1, -1));
        let back = back_nearest(&g, &[1u8, 2, 3, 4]);
        // Window rows 1..=2, cols -1..=0: only column 0 is inside.
        assert_eq!(back, vec![0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0]);
    }

    #[test]
    fn nearest_of_a_crop_equals_ingest_forward_on_the_window() {
        // Forward (ingest) then back: every pixel inside the window comes back unchanged.
        let g = grid(5, 5, 3, false, (1, 1));
        let img: Vec<u8> = (0..25).collect();
        let fwd = g.apply(&img, 0);
        let back = back_nearest(&g, &fwd);
        for r in 1..4 {
            for c in 1..4 {
                assert_eq!(back[r * 5 + c], img[r * 5 + c]);
            }
        }
    }
}
