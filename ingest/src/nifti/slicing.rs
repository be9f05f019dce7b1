//! Axial slices of `[x, y, z]` volumes as row-major 2D images, nearest-neighbour resampling
//! and zero-padded square crops.
//!
//! Convention (the one nibabel users see with `img.get_fdata()[:, :, k].T`): slice `k` is
//! the plane z = k, **row = y, column = x**; pixel (row, col) of slice k is voxel
//! (x = col, y = row, z = k). So a `[rows * cols]` slice has `rows = ny`, `cols = nx`.
use super::volume::Volume;

/// Slice `k` of a 3D volume as a `[ny * nx]` row-major image (row = y, col = x).
pub fn axial_slice(v: &Volume, k: usize) -> Vec<f64> {
    let [nx, ny, _] = v.shape3();
    let plane = &v.data[nx * ny * k..nx * ny * (k + 1)];
    // In the file's order x is fastest, so one z-plane already is a y-major (row-major) image.
    plane.to_vec()
}

/// Input index that output index `o` of a nearest-neighbour zoom from `n_in` to `n_out`
/// samples reads: scipy `ndimage.zoom(order=0)` maps the corners onto each other
/// (`o * (n_in - 1) / (n_out - 1)`) and rounds half up.
pub fn zoom_index(o: usize, n_in: usize, n_out: usize) -> usize {
    if n_out <= 1 || n_in <= 1 {
        return 0;
    }
    let x = o as f64 * (n_in - 1) as f64 / (n_out - 1) as f64;
    ((x + 0.5).floor() as usize).min(n_in - 1)
}

/// `[rows * cols]` → `[size * size]`, nearest neighbour (scipy `zoom(order=0)`).
pub fn resample_nearest<T: Copy>(img: &[T], rows: usize, cols: usize, size: usize) -> Vec<T> {
    let ri: Vec<usize> = (0..size).map(|o| zoom_index(o, rows, size)).collect();
    let ci: Vec<usize> = (0..size).map(|o| zoom_index(o, cols, size)).collect();
    let mut out = Vec::with_capacity(size * size);
    for &r in &ri {
        for &c in &ci {
            out.push(img[r * cols + c]);
        }
    }
    out
}

/// The `size x size` window of `[rows * cols]` whose top-left pixel is (row0, col0); pixels
/// outside the source are `fill`.
pub fn crop<T: Copy>(
    img: &[T],
    rows: usize,
    cols: usize,
    row0: i64,
    col0: i64,
    size: usize,
    fill: T,
) -> Vec<T> {
    let mut out = vec![fill; size * size];
    for r in 0..size {
        let sr = row0 + r as i64;
        if sr < 0 || sr >= rows as i64 {
            continue;
        }
        for c in 0..size {
            let sc = col0 + c as i64;
            if sc >= 0 && sc < cols as i64 {
                out[r * size + c] = img[sr as usize * cols + sc as usize];
            }
        }
    }
    out
}

/// Top-left corner along one axis of a `size` window centred on the grid:
/// `floor((n - size) / 2)` (negative when the grid is smaller: padded on both sides).
pub fn centre_origin(n: usize, size: usize) -> i64 {
    (n as i64 - size as i64).div_euclid(2)
}

/// Top-left corner along one axis of a `size` window centred on the box `[lo, hi]`
/// (inclusive), moved inside the grid when the grid is large enough, else centred.
pub fn box_origin(lo: usize, hi: usize, n: usize, size: usize) -> i64 {
    if n < size {
        return centre_origin(n, size);
    }
    let centre = (lo + hi) as i64; // twice the centre
    let origin = (centre - size as i64 + 1).div_euclid(2);
    origin.clamp(0, (n - size) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_pads_outside_the_source() {
        let img: Vec<u8> = (1..=9).collect(); // 3 x 3
        assert_eq!(crop(&img, 3, 3, -1, 1, 2, 0), vec![0, 0, 2, 3]);
        assert_eq!(crop(&img, 3, 3, 1, 0, 2, 0), vec![4, 5, 7, 8]);
    }

    #[test]
    fn origins() {
        assert_eq!(centre_origin(160, 128), 16);
        assert_eq!(centre_origin(100, 128), -14);
        assert_eq!(centre_origin(101, 128), -14);
        // Box 10..=20 in a 100 grid, window 8: centre 15 → rows 11..=18.
        assert_eq!(box_origin(10, 20, 100, 8), 11);
        // Near the border the window is pushed inside.
        assert_eq!(box_origin(0, 2, 100, 8), 0);
        assert_eq!(box_origin(97, 99, 100, 8), 92);
    }

    #[test]
    fn zoom_keeps_corners() {
        assert_eq!(zoom_index(0, 160, 128), 0);
        assert_eq!(zoom_index(127, 160, 128), 159);
        assert_eq!(zoom_index(4, 5, 5), 4);
        assert_eq!(zoom_index(1, 3, 5), 1); // 0.5 rounds half up
    }
}
