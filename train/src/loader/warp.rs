//! Geometric transforms of an `H x W` pixel grid as gather maps ("warps").
//!
//! A [`Warp`] stores, for every output pixel, the input pixel it copies (or [`FILL`] for
//! "outside the input: write zero"). Building the map once per sample and applying it to
//! the image channels and to every rater mask guarantees that they stay aligned, and
//! composing flips / rot90 / rotations into one map reads each plane only once.
//!
//! Two rotation conventions are implemented because the paper's two pipelines use two
//! libraries (method.md §1.2 and §1.4); both rotate counter-clockwise for a positive angle
//! as the image is displayed (row 0 at the top), and both agree with `np.rot90` at 90°.

/// Marks an output pixel that falls outside the input and is filled with zero.
pub const FILL: u32 = u32::MAX;

/// Gather map of an `h x w` grid: `out[p] = in[src[p]]` (zero where `src[p] == FILL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warp {
    pub h: usize,
    pub w: usize,
    /// `[H * W]` row-major source index per output pixel.
    pub src: Vec<u32>,
}

impl Warp {
    /// The identity map.
    pub fn identity(h: usize, w: usize) -> Self {
        Self::from_fn(h, w, |r, c| Some((r, c)))
    }

    /// Builds a map from `(out_row, out_col) -> Some((in_row, in_col))` or `None` (fill).
    fn from_fn(h: usize, w: usize, f: impl Fn(usize, usize) -> Option<(usize, usize)>) -> Self {
        let mut src = Vec::with_capacity(h * w);
        for r in 0..h {
            for c in 0..w {
                src.push(match f(r, c) {
                    Some((ir, ic)) => (ir * w + ic) as u32,
                    None => FILL,
                });
            }
        }
        Self { h, w, src }
    }

    /// Mirror left-right (`np.flip(a, axis=1)`, PIL `FLIP_LEFT_RIGHT`).
    pub fn flip_horizontal(h: usize, w: usize) -> Self {
        Self::from_fn(h, w, |r, c| Some((r, w - 1 - c)))
    }

    /// Mirror top-bottom (`np.flip(a, axis=0)`, PIL `FLIP_TOP_BOTTOM`).
    pub fn flip_vertical(h: usize, w: usize) -> Self {
        Self::from_fn(h, w, |r, c| Some((h - 1 - r, c)))
    }

    /// `np.rot90(a, k)` for a square grid: `k` quarter turns counter-clockwise.
    ///
    /// # Panics
    /// If the grid is not square (`rot90` would change the shape).
    pub fn rot90(n: usize, k: u32) -> Self {
        match k % 4 {
            0 => Self::identity(n, n),
            // np.rot90: out[r][c] = in[c][n-1-r]
            1 => Self::from_fn(n, n, |r, c| Some((c, n - 1 - r))),
            2 => Self::from_fn(n, n, |r, c| Some((n - 1 - r, n - 1 - c))),
            _ => Self::from_fn(n, n, |r, c| Some((n - 1 - c, r))),
        }
    }

    /// PIL `Image.rotate(angle_deg, resample=NEAREST, expand=False)` with zero fill.
    ///
    /// PIL maps output pixel centre `(x + 0.5, y + 0.5)` (x = column) through the inverse
    /// rotation about `(w / 2, h / 2)` and takes the input pixel that contains the point
    /// (floor; negative coordinates are outside). Matrix entries are rounded to 15
    /// decimals and multiples of 90° on square images are exact transposes, as in PIL.
    /// Like PIL's C code (`affine_fixed` in libImaging/Geometry.c), the map is evaluated in
    /// 16.16 fixed point whenever the transformed corners fit (always for crops up to a
    /// few thousand pixels), which reproduces PIL's choice at pixel-edge ties; otherwise
    /// in f64 (PIL's float path).
    pub fn rotate_pil(h: usize, w: usize, angle_deg: f64) -> Self {
        let angle = angle_deg.rem_euclid(360.0);
        if angle == 0.0 {
            return Self::identity(h, w);
        }
        if angle == 180.0 {
            return Self::from_fn(h, w, |r, c| Some((h - 1 - r, w - 1 - c)));
        }
        if (angle == 90.0 || angle == 270.0) && h == w {
            return Self::rot90(h, if angle == 90.0 { 1 } else { 3 });
        }
        let round15 = |v: f64| (v * 1e15).round() / 1e15;
        let t = -angle.to_radians();
        let (a, b, d, e) = (
            round15(t.cos()),
            round15(t.sin()),
            round15(-t.sin()),
            round15(t.cos()),
        );
        let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
        let c0 = a * -cx + b * -cy + cx;
        let f0 = d * -cx + e * -cy + cy;
        let inside = |ix: i64, iy: i64| {
            (ix >= 0 && iy >= 0 && (ix as usize) < w && (iy as usize) < h)
                .then_some((iy as usize, ix as usize))
        };
        // PIL's check_fixed: every corner of the output maps inside +-32768.
        let fits = |x: f64, y: f64| {
            (x * a + y * b + c0).abs() < 32768.0 && (x * d + y * e + f0).abs() < 32768.0
        };
        let (wf, hf) = (w as f64, h as f64);
        if fits(0.0, 0.0) && fits(wf, hf) && fits(0.0, hf) && fits(wf, 0.0) {
            // FIX(v) = FLOOR(v * 65536 + 0.5), FLOOR truncating toward zero for v >= 0.
            let fix = |v: f64| {
                let v = v * 65536.0 + 0.5;
                (if v < 0.0 { v.floor() } else { v.trunc() }) as i64
            };
            let (a0, a1, a3, a4) = (fix(a), fix(b), fix(d), fix(e));
            let a2 = fix(c0 + a * 0.5 + b * 0.5);
            let a5 = fix(f0 + d * 0.5 + e * 0.5);
            // `>> 16` on the signed sums is PIL's floor to the input pixel.
            return Self::from_fn(h, w, |r, c| {
                let (x, y) = (c as i64, r as i64);
                inside((a2 + x * a0 + y * a1) >> 16, (a5 + x * a3 + y * a4) >> 16)
            });
        }
        Self::from_fn(h, w, |r, c| {
            let (x, y) = (c as f64 + 0.5, r as f64 + 0.5);
            let xin = a * x + b * y + c0;
            let yin = d * x + e * y + f0;
            // PIL's COORD: negative -> -1 (outside), else truncate.
            let coord = |v: f64| if v < 0.0 { -1 } else { v as i64 };
            inside(coord(xin), coord(yin))
        })
    }

    /// `scipy.ndimage.rotate(a, angle_deg, reshape=False, order=0, mode='constant', cval=0)`.
    ///
    /// scipy maps output index `o` to `R o + offset` with `R = [[cos, sin], [-sin, cos]]`
    /// over (row, col), rotating about `((h - 1) / 2, (w - 1) / 2)`; cos/sin are exact at
    /// multiples of 90° (`special.cosdg`). Order 0 rounds half up (`floor(v + 0.5)`), and
    /// mode `constant` fills every point outside `[0, n - 1]` before rounding.
    pub fn rotate_scipy(h: usize, w: usize, angle_deg: f64) -> Self {
        let (s, c) = sin_cos_deg(angle_deg);
        let (mr, mc) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
        let off_r = mr - (c * mr + s * mc);
        let off_c = mc - (-s * mr + c * mc);
        Self::from_fn(h, w, |r, col| {
            let (r, col) = (r as f64, col as f64);
            let ir = c * r + s * col + off_r;
            let ic = -s * r + c * col + off_c;
            if ir < 0.0 || ic < 0.0 || ir > h as f64 - 1.0 || ic > w as f64 - 1.0 {
                return None;
            }
            Some(((ir + 0.5).floor() as usize, (ic + 0.5).floor() as usize))
        })
    }

    /// The map of "apply `self`, then `next`".
    pub fn then(&self, next: &Warp) -> Warp {
        assert_eq!(
            (self.h, self.w),
            (next.h, next.w),
            "warps of different grids"
        );
        let src = next
            .src
            .iter()
            .map(|&p| {
                if p == FILL {
                    FILL
                } else {
                    self.src[p as usize]
                }
            })
            .collect();
        Warp {
            h: self.h,
            w: self.w,
            src,
        }
    }

    /// True when every output pixel copies itself.
    pub fn is_identity(&self) -> bool {
        self.src.iter().enumerate().all(|(i, &s)| s as usize == i)
    }

    /// Applies the map to one `[H, W]` plane.
    pub fn apply<T: Copy + Default>(&self, input: &[T], out: &mut [T]) {
        debug_assert_eq!(input.len(), self.src.len());
        debug_assert_eq!(out.len(), self.src.len());
        for (o, &s) in out.iter_mut().zip(&self.src) {
            *o = if s == FILL {
                T::default()
            } else {
                input[s as usize]
            };
        }
    }

    /// Applies the map to every `[H, W]` plane of a `[P, H, W]` buffer.
    pub fn apply_planes<T: Copy + Default>(&self, input: &[T], out: &mut [T]) {
        let hw = self.src.len();
        assert_eq!(input.len(), out.len());
        assert_eq!(
            input.len() % hw.max(1),
            0,
            "buffer is not a stack of {}x{} planes",
            self.h,
            self.w
        );
        for (i, o) in input.chunks_exact(hw).zip(out.chunks_exact_mut(hw)) {
            self.apply(i, o);
        }
    }
}

/// `(sin, cos)` of an angle in degrees, exact at multiples of 90° like scipy's `sindg/cosdg`.
fn sin_cos_deg(angle_deg: f64) -> (f64, f64) {
    let a = angle_deg.rem_euclid(360.0);
    match a {
        0.0 => (0.0, 1.0),
        90.0 => (1.0, 0.0),
        180.0 => (0.0, -1.0),
        270.0 => (-1.0, 0.0),
        _ => a.to_radians().sin_cos(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(w: &Warp, img: &[u32]) -> Vec<u32> {
        let mut out = vec![0; img.len()];
        w.apply(img, &mut out);
        out
    }

    #[test]
    fn rot90_matches_numpy_layout() {
        // np.rot90([[1, 2], [3, 4]]) == [[2, 4], [1, 3]]
        assert_eq!(apply(&Warp::rot90(2, 1), &[1, 2, 3, 4]), vec![2, 4, 1, 3]);
        assert_eq!(apply(&Warp::rot90(2, 2), &[1, 2, 3, 4]), vec![4, 3, 2, 1]);
        assert_eq!(apply(&Warp::rot90(2, 3), &[1, 2, 3, 4]), vec![3, 1, 4, 2]);
    }

    #[test]
    fn composition_order() {
        // hflip then rot90 differs from rot90 then hflip; check against direct computation.
        let img: Vec<u32> = (1..=9).collect();
        let (h, r) = (Warp::flip_horizontal(3, 3), Warp::rot90(3, 1));
        assert_eq!(apply(&h.then(&r), &img), apply(&r, &apply(&h, &img)));
        assert_eq!(apply(&r.then(&h), &img), apply(&h, &apply(&r, &img)));
        assert_ne!(apply(&h.then(&r), &img), apply(&r.then(&h), &img));
    }
}
