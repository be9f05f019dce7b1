//! A synthetic chest-like phantom with ambiguous lesions and four raters of documented,
//! learnable styles.
//!
//! Why: tests and demos need multi-rater data whose rater differences are *real* (a model
//! can learn them, a metric can see them) and whose images are ambiguous (the true boundary
//! is not recoverable from the pixels), without shipping patient data.
//!
//! Each lesion `t` has a smooth "visibility" field `m_t(p) = contrast_t * s((radius_t -
//! d_t(p)) / BLUR_MM)` in `[0, 1]`, where `s` is the logistic function and `d_t` the
//! ellipsoidal distance in mm from the lesion centre. The image blends lung towards lesion
//! intensity by `m_t`, adds vessel-like cylinders (some touching a lesion) and Gaussian noise.
//! Raters threshold the *noise-free* field at different levels (see [`RATER_STYLES`]).
//!
//! Layout: every 3D array is `[D * H * W]` row-major over (z, row, col).
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Styles of the synthetic raters, in rater order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaterStyle {
    pub name: &'static str,
    pub description: &'static str,
}

/// The four rater styles, in rater order. Rater `k` of a phantom uses `RATER_STYLES[k]`.
pub const RATER_STYLES: [RaterStyle; 4] = [
    RaterStyle {
        name: "conservative",
        description:
            "traces only the bright core (visibility >= CORE_LEVEL); draws nothing on \
                      faint (contrast < FAINT_CONTRAST) or small (radius < SMALL_RADIUS_MM) lesions",
    },
    RaterStyle {
        name: "generous",
        description: "low threshold (visibility >= LOW_LEVEL) dilated by one pixel in-plane: \
                      the largest outline",
    },
    RaterStyle {
        name: "shifted",
        description: "the mid-level outline (visibility >= MID_LEVEL) displaced by SHIFT_PX \
                      [rows, cols] in-plane",
    },
    RaterStyle {
        name: "adjacent",
        description: "the mid-level outline plus the neighbouring vessel touching the lesion \
                      (on the slices where the lesion is drawn)",
    },
];

/// Visibility level of the conservative rater's core outline.
pub const CORE_LEVEL: f64 = 0.6;
/// Visibility level of the shifted and adjacent raters' outline.
pub const MID_LEVEL: f64 = 0.35;
/// Visibility level of the generous rater's outline (before its one-pixel dilation).
pub const LOW_LEVEL: f64 = 0.15;
/// Lesions with a lower peak contrast are "faint": the conservative rater skips them.
pub const FAINT_CONTRAST: f64 = 0.6;
/// Lesions with a smaller radius are "small": the conservative rater skips them.
pub const SMALL_RADIUS_MM: f64 = 3.0;
/// In-plane displacement of the shifted rater's outline, `[rows, cols]` (+ = down, right).
pub const SHIFT_PX: [i32; 2] = [1, 2];
/// Width (mm) of the logistic edge of lesions: what makes boundaries ambiguous.
pub const BLUR_MM: f64 = 1.0;
/// Standard deviation of the additive Gaussian image noise, in HU.
pub const NOISE_HU: f64 = 25.0;

/// Intensities of the tissue classes, in HU.
const AIR_HU: f32 = -1000.0;
const LUNG_HU: f32 = -850.0;
const SOFT_TISSUE_HU: f32 = 40.0;
const LESION_HU: f32 = 30.0;
const VESSEL_HU: f32 = 45.0;
/// Range of lesion radii (mm) and peak contrasts.
const RADIUS_MM: (f64, f64) = (2.0, 6.5);
const CONTRAST: (f64, f64) = (0.45, 1.0);
/// Range of vessel radii (mm).
const VESSEL_RADIUS_MM: (f64, f64) = (1.0, 2.0);
/// Range of radii (mm) of vessels touching a lesion: thick enough to reach well beyond
/// the lesion's blurred margin, so that including them is a visible style.
const TOUCHING_VESSEL_RADIUS_MM: (f64, f64) = (1.5, 3.0);
/// Probability that a lesion has a vessel touching it.
const P_TOUCHING_VESSEL: f64 = 0.6;
/// Edge-to-edge distance (mm) lesions keep from each other where the grid allows it.
const LESION_GAP_MM: f64 = 6.0;
/// Free-standing vessels (distractors) per volume.
const N_FREE_VESSELS: usize = 3;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomParams {
    pub depth: usize,
    pub height: usize,
    pub width: usize,
    /// Voxel size in mm: [z, row, col].
    pub spacing_mm: [f64; 3],
    /// Number of lesions (targets) in the volume (1..=3).
    pub n_targets: usize,
    /// Number of raters (<= 4, styles taken in RATER_STYLES order).
    pub n_raters: usize,
    /// Probability that a rater did not read this study at all (missing rater).
    pub p_missing_rater: f64,
}

impl Default for PhantomParams {
    /// 16 slices of 160 x 160 at 2.5 x 0.7 x 0.7 mm: larger than a 128 crop in-plane, so
    /// cropping is exercised, and thick slices like clinical CT/MR.
    fn default() -> Self {
        PhantomParams {
            depth: 16,
            height: 160,
            width: 160,
            spacing_mm: [2.5, 0.7, 0.7],
            n_targets: 2,
            n_raters: 4,
            p_missing_rater: 0.0,
        }
    }
}

/// One lesion and its raters' masks.
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomTarget {
    /// "T1", "T2", ...
    pub id: String,
    /// [z, row, col] centre in voxel units.
    pub centre_voxel: [f64; 3],
    /// Per rater: None = the rater did not read the study; Some(mask) = a [D*H*W] 0/1 mask
    /// (may be all zero: the rater read the study and drew nothing for this target).
    pub rater_masks: Vec<Option<Vec<u8>>>,
}

/// A generated volume.
#[derive(Debug, Clone, PartialEq)]
pub struct PhantomVolume {
    pub depth: usize,
    pub height: usize,
    pub width: usize,
    pub spacing_mm: [f64; 3],
    /// [D*H*W] row-major (z, row, col), HU-like CT intensities: air ~ -1000, lung ~ -850,
    /// soft tissue ~ 40, lesions with blurred boundaries, neighbouring vessel-like structures,
    /// Gaussian noise. Ambiguous on purpose: the true boundary is not recoverable exactly.
    pub hu: Vec<f32>,
    pub targets: Vec<PhantomTarget>,
}

/// A cylinder parallel to the z axis.
#[derive(Debug, Clone, Copy)]
struct Vessel {
    row: f64,
    col: f64,
    radius_mm: f64,
}

#[derive(Debug, Clone, Copy)]
struct Lesion {
    centre: [f64; 3],
    radius_mm: f64,
    /// Semi-axis along z relative to the in-plane radius.
    z_scale: f64,
    contrast: f64,
    touching: Option<Vessel>,
}

/// The noise-free scene a volume is rendered from.
struct Scene {
    lesions: Vec<Lesion>,
    free_vessels: Vec<Vessel>,
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Grid geometry shared by the renderers.
#[derive(Clone, Copy)]
struct Grid {
    d: usize,
    h: usize,
    w: usize,
    sp: [f64; 3],
}

impl Grid {
    /// The voxel grid a phantom of `params` is drawn on.
    fn of(params: &PhantomParams) -> Grid {
        Grid {
            d: params.depth,
            h: params.height,
            w: params.width,
            sp: params.spacing_mm,
        }
    }
    fn len(&self) -> usize {
        self.d * self.h * self.w
    }
    fn idx(&self, z: usize, r: usize, c: usize) -> usize {
        (z * self.h + r) * self.w + c
    }
    /// Lung ellipses (left, right): centre (row, col) and semi-axes (rows, cols) in voxels.
    fn lungs(&self) -> [([f64; 2], [f64; 2]); 2] {
        let (h, w) = (self.h as f64, self.w as f64);
        [
            ([0.5 * h, 0.3 * w], [0.3 * h, 0.15 * w]),
            ([0.5 * h, 0.7 * w], [0.3 * h, 0.15 * w]),
        ]
    }
    fn in_ellipse(r: f64, c: f64, centre: [f64; 2], axes: [f64; 2]) -> f64 {
        ((r - centre[0]) / axes[0]).powi(2) + ((c - centre[1]) / axes[1]).powi(2)
    }
}

impl Lesion {
    /// Visibility `m(p)` in [0, 1] of this lesion at voxel (z, r, c).
    fn visibility(&self, g: &Grid, z: usize, r: usize, c: usize) -> f64 {
        let dz = (z as f64 - self.centre[0]) * g.sp[0] / self.z_scale;
        let dr = (r as f64 - self.centre[1]) * g.sp[1];
        let dc = (c as f64 - self.centre[2]) * g.sp[2];
        let d = (dz * dz + dr * dr + dc * dc).sqrt();
        self.contrast * logistic((self.radius_mm - d) / BLUR_MM)
    }
}

impl Vessel {
    /// Vessel membership in [0, 1] at in-plane voxel (r, c).
    fn membership(&self, g: &Grid, r: usize, c: usize) -> f64 {
        let dr = (r as f64 - self.row) * g.sp[1];
        let dc = (c as f64 - self.col) * g.sp[2];
        logistic((self.radius_mm - (dr * dr + dc * dc).sqrt()) / (0.5 * BLUR_MM))
    }
}

/// Places lesions inside the lungs (not overlapping each other) and vessels.
fn layout(g: &Grid, n_targets: usize, rng: &mut ChaCha8Rng) -> Scene {
    let lungs = g.lungs();
    let mut lesions: Vec<Lesion> = Vec::with_capacity(n_targets);
    let z_margin = 2.0_f64.min((g.d as f64 - 1.0) / 2.0);
    // Lesions are at least this far apart, edge to edge (mm), so masks do not touch.
    let mut gap_mm = LESION_GAP_MM;
    let mut attempts = 0usize;
    while lesions.len() < n_targets {
        let radius_mm = rng.random_range(RADIUS_MM.0..RADIUS_MM.1);
        let contrast = rng.random_range(CONTRAST.0..CONTRAST.1);
        let z_scale = rng.random_range(0.8..1.3);
        let (lc, la) = lungs[rng.random_range(0..2)];
        // Uniform inside the inner half of the lung ellipse, so the lesion stays in lung.
        let (row, col) = loop {
            let u: f64 = rng.random_range(-1.0..1.0);
            let v: f64 = rng.random_range(-1.0..1.0);
            if u * u + v * v <= 1.0 {
                break (lc[0] + 0.5 * la[0] * u, lc[1] + 0.5 * la[1] * v);
            }
        };
        let z = rng.random_range(z_margin..=(g.d as f64 - 1.0 - z_margin).max(z_margin));
        let touching = rng.random_bool(P_TOUCHING_VESSEL).then(|| {
            let radius = rng.random_range(TOUCHING_VESSEL_RADIUS_MM.0..TOUCHING_VESSEL_RADIUS_MM.1);
            let angle = rng.random_range(0.0..std::f64::consts::TAU);
            // Edges meet at the lesion's nominal radius; the blurred margins overlap, as a
            // vessel abutting a nodule does.
            let dist = radius_mm + radius;
            Vessel {
                row: row + dist * angle.sin() / g.sp[1],
                col: col + dist * angle.cos() / g.sp[2],
                radius_mm: radius,
            }
        });
        let cand = Lesion {
            centre: [z, row, col],
            radius_mm,
            z_scale,
            contrast,
            touching,
        };
        let clear = lesions.iter().all(|o| {
            let dr = (o.centre[1] - row) * g.sp[1];
            let dc = (o.centre[2] - col) * g.sp[2];
            let dz = (o.centre[0] - z) * g.sp[0];
            (dr * dr + dc * dc + dz * dz).sqrt() > o.radius_mm + radius_mm + gap_mm
        });
        if clear {
            lesions.push(cand);
        } else {
            // Small grids may not fit well-separated lesions: shrink the gap (down to
            // touching) rather than search forever.
            attempts += 1;
            if attempts.is_multiple_of(50) {
                gap_mm = (gap_mm * 0.5).max(0.0);
            }
        }
    }
    let free_vessels = (0..N_FREE_VESSELS)
        .map(|_| {
            let (lc, la) = lungs[rng.random_range(0..2)];
            let u: f64 = rng.random_range(-0.7..0.7);
            let v: f64 = rng.random_range(-0.7..0.7);
            Vessel {
                row: lc[0] + la[0] * u,
                col: lc[1] + la[1] * v,
                radius_mm: rng.random_range(VESSEL_RADIUS_MM.0..VESSEL_RADIUS_MM.1),
            }
        })
        .collect();
    Scene {
        lesions,
        free_vessels,
    }
}

/// Noise-free image of the scene.
fn render(g: &Grid, scene: &Scene) -> Vec<f32> {
    let lungs = g.lungs();
    let (h, w) = (g.h as f64, g.w as f64);
    let vessels: Vec<Vessel> = scene
        .free_vessels
        .iter()
        .copied()
        .chain(scene.lesions.iter().filter_map(|l| l.touching))
        .collect();
    let mut out = vec![0f32; g.len()];
    for z in 0..g.d {
        for r in 0..g.h {
            for c in 0..g.w {
                let (rf, cf) = (r as f64, c as f64);
                let body =
                    Grid::in_ellipse(rf, cf, [0.5 * h, 0.5 * w], [0.42 * h, 0.46 * w]) <= 1.0;
                let in_lung = lungs
                    .iter()
                    .any(|(lc, la)| Grid::in_ellipse(rf, cf, *lc, *la) <= 1.0);
                let mut v = if !body {
                    AIR_HU
                } else if in_lung {
                    LUNG_HU
                } else {
                    SOFT_TISSUE_HU
                };
                if in_lung {
                    for ves in &vessels {
                        let m = ves.membership(g, r, c) as f32;
                        v = v * (1.0 - m) + VESSEL_HU * m;
                    }
                }
                for l in &scene.lesions {
                    let m = l.visibility(g, z, r, c) as f32;
                    v = v * (1.0 - m) + LESION_HU * m;
                }
                out[g.idx(z, r, c)] = v;
            }
        }
    }
    out
}

/// `mask` shifted by `[dr, dc]` in-plane, zero-filled.
fn shift_inplane(g: &Grid, mask: &[u8], d: [i32; 2]) -> Vec<u8> {
    let mut out = vec![0u8; mask.len()];
    for z in 0..g.d {
        for r in 0..g.h {
            for c in 0..g.w {
                let (sr, sc) = (r as i64 - d[0] as i64, c as i64 - d[1] as i64);
                if sr >= 0 && sc >= 0 && (sr as usize) < g.h && (sc as usize) < g.w {
                    out[g.idx(z, r, c)] = mask[g.idx(z, sr as usize, sc as usize)];
                }
            }
        }
    }
    out
}

/// `mask` dilated by one pixel in-plane (3 x 3 square).
fn dilate_inplane(g: &Grid, mask: &[u8]) -> Vec<u8> {
    let mut out = mask.to_vec();
    for z in 0..g.d {
        for r in 0..g.h {
            for c in 0..g.w {
                if mask[g.idx(z, r, c)] == 0 {
                    continue;
                }
                for rr in r.saturating_sub(1)..(r + 2).min(g.h) {
                    for cc in c.saturating_sub(1)..(c + 2).min(g.w) {
                        out[g.idx(z, rr, cc)] = 1;
                    }
                }
            }
        }
    }
    out
}

/// The four style masks of one lesion, in RATER_STYLES order, each `[D*H*W]`.
fn style_masks(g: &Grid, l: &Lesion) -> [Vec<u8>; 4] {
    let n = g.len();
    let vis: Vec<f64> = {
        let mut v = vec![0.0; n];
        for z in 0..g.d {
            for r in 0..g.h {
                for c in 0..g.w {
                    v[g.idx(z, r, c)] = l.visibility(g, z, r, c);
                }
            }
        }
        v
    };
    let thresh = |level: f64| vis.iter().map(|&m| (m >= level) as u8).collect::<Vec<u8>>();
    let conservative = if l.contrast < FAINT_CONTRAST || l.radius_mm < SMALL_RADIUS_MM {
        vec![0u8; n]
    } else {
        thresh(CORE_LEVEL)
    };
    let generous = dilate_inplane(g, &thresh(LOW_LEVEL));
    let mid = thresh(MID_LEVEL);
    let shifted = shift_inplane(g, &mid, SHIFT_PX);
    let mut adjacent = mid.clone();
    if let Some(ves) = l.touching {
        // The part of the vessel near the lesion, on the slices where the lesion is drawn.
        let reach_mm = l.radius_mm + 2.0 * ves.radius_mm + 2.0;
        for z in 0..g.d {
            let plane = &mid[g.idx(z, 0, 0)..g.idx(z, 0, 0) + g.h * g.w];
            if plane.iter().all(|&v| v == 0) {
                continue;
            }
            for r in 0..g.h {
                for c in 0..g.w {
                    let dr = (r as f64 - l.centre[1]) * g.sp[1];
                    let dc = (c as f64 - l.centre[2]) * g.sp[2];
                    if ves.membership(g, r, c) >= 0.5 && (dr * dr + dc * dc).sqrt() <= reach_mm {
                        adjacent[g.idx(z, r, c)] = 1;
                    }
                }
            }
        }
    }
    [conservative, generous, shifted, adjacent]
}

/// Generates one volume. Deterministic for a given (params, seed).
///
/// Panics if `n_targets` is not in 1..=3, `n_raters` > 4, or the grid is empty: these are
/// programming errors of the caller, not data errors.
pub fn generate(params: &PhantomParams, seed: u64) -> PhantomVolume {
    assert!(
        (1..=3).contains(&params.n_targets),
        "PhantomParams.n_targets must be 1..=3, got {}",
        params.n_targets
    );
    assert!(
        params.n_raters <= RATER_STYLES.len(),
        "PhantomParams.n_raters must be <= {}, got {}",
        RATER_STYLES.len(),
        params.n_raters
    );
    assert!(
        params.depth > 0 && params.height >= 32 && params.width >= 32,
        "phantom grid too small: {}x{}x{} (need depth >= 1, height and width >= 32)",
        params.depth,
        params.height,
        params.width
    );
    let g = Grid::of(params);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let scene = layout(&g, params.n_targets, &mut rng);
    // A rater misses the whole study or reads all of it; at least one rater reads it (the
    // first one is kept when the draw would leave none).
    let mut present: Vec<bool> = (0..params.n_raters)
        .map(|_| !rng.random_bool(params.p_missing_rater.clamp(0.0, 1.0)))
        .collect();
    if !present.is_empty() && present.iter().all(|p| !p) {
        present[0] = true;
    }
    let mut hu = render(&g, &scene);
    let noise = Normal::new(0.0, NOISE_HU).expect("noise sigma is finite and positive");
    for v in hu.iter_mut() {
        *v += noise.sample(&mut rng) as f32;
    }
    let targets = scene
        .lesions
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let styles = style_masks(&g, l);
            let rater_masks = (0..params.n_raters)
                .map(|k| present[k].then(|| styles[k].clone()))
                .collect();
            PhantomTarget {
                id: format!("T{}", i + 1),
                centre_voxel: l.centre,
                rater_masks,
            }
        })
        .collect();
    PhantomVolume {
        depth: g.d,
        height: g.h,
        width: g.w,
        spacing_mm: g.sp,
        hu,
        targets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(m: &Option<Vec<u8>>) -> u64 {
        m.as_ref().unwrap().iter().map(|&v| v as u64).sum()
    }

    /// Mean (z, row, col) of a non-empty mask.
    fn centroid(g: &Grid, m: &[u8]) -> [f64; 3] {
        let mut s = [0.0; 3];
        let mut n = 0.0;
        for z in 0..g.d {
            for r in 0..g.h {
                for c in 0..g.w {
                    if m[g.idx(z, r, c)] != 0 {
                        s[0] += z as f64;
                        s[1] += r as f64;
                        s[2] += c as f64;
                        n += 1.0;
                    }
                }
            }
        }
        [s[0] / n, s[1] / n, s[2] / n]
    }

    fn small() -> PhantomParams {
        PhantomParams {
            depth: 10,
            height: 96,
            width: 96,
            n_targets: 3,
            ..PhantomParams::default()
        }
    }

    #[test]
    fn same_seed_same_volume_other_seed_differs() {
        let p = small();
        let a = generate(&p, 7);
        let b = generate(&p, 7);
        let c = generate(&p, 8);
        assert_eq!(a, b);
        assert_ne!(a.hu, c.hu);
        assert_eq!(a.hu.len(), 10 * 96 * 96);
        assert_eq!(a.targets.len(), 3);
        assert_eq!(
            a.targets.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["T1", "T2", "T3"]
        );
    }

    #[test]
    fn intensities_are_ct_like() {
        let v = generate(&PhantomParams::default(), 1);
        let corner = v.hu[0];
        assert!(
            (corner - AIR_HU).abs() < 6.0 * NOISE_HU as f32,
            "corner is air: {corner}"
        );
        // A lesion centre is far brighter than lung.
        for t in &v.targets {
            let [z, r, c] = t.centre_voxel.map(|x| x.round() as usize);
            let hu = v.hu[(z * v.height + r) * v.width + c];
            assert!(hu > LUNG_HU + 300.0, "lesion {} centre {hu} HU", t.id);
        }
    }

    #[test]
    fn generous_is_larger_than_mid_larger_than_conservative_on_average() {
        let p = small();
        let (mut cons, mut gen, mut mid) = (0u64, 0u64, 0u64);
        let mut empty_conservative = 0;
        for seed in 0..12 {
            let v = generate(&p, seed);
            for t in &v.targets {
                let c = area(&t.rater_masks[0]);
                cons += c;
                gen += area(&t.rater_masks[1]);
                // The shifted mask is the mid outline moved: same area unless cut at the border.
                mid += area(&t.rater_masks[2]);
                empty_conservative += (c == 0) as usize;
            }
        }
        assert!(gen as f64 > 1.3 * mid as f64, "generous {gen} vs mid {mid}");
        assert!(
            mid as f64 > 1.3 * cons as f64,
            "mid {mid} vs conservative {cons}"
        );
        assert!(
            empty_conservative > 0,
            "the conservative rater never skipped a lesion"
        );
    }

    #[test]
    fn conservative_skips_exactly_faint_or_small_lesions() {
        let p = small();
        let g = Grid::of(&p);
        for seed in 0..6 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let scene = layout(&g, p.n_targets, &mut rng);
            let v = generate(&p, seed);
            for (l, t) in scene.lesions.iter().zip(&v.targets) {
                let skipped = area(&t.rater_masks[0]) == 0;
                let faint_or_small = l.contrast < FAINT_CONTRAST || l.radius_mm < SMALL_RADIUS_MM;
                assert_eq!(skipped, faint_or_small, "seed {seed} {}: {l:?}", t.id);
                // The mid-level raters always see something.
                assert!(area(&t.rater_masks[2]) > 0);
            }
        }
    }

    #[test]
    fn shifted_centroid_moves_by_shift_px() {
        let p = small();
        let g = Grid::of(&p);
        let mut scene_rng = ChaCha8Rng::seed_from_u64(3);
        let scene = layout(&g, p.n_targets, &mut scene_rng);
        let v = generate(&p, 3);
        for (l, t) in scene.lesions.iter().zip(&v.targets) {
            // Without the vessel, the adjacent mask is the unshifted mid outline.
            let mid = style_masks(
                &g,
                &Lesion {
                    touching: None,
                    ..*l
                },
            )[3]
            .clone();
            let a = centroid(&g, &mid);
            let b = centroid(&g, t.rater_masks[2].as_ref().unwrap());
            assert!((b[0] - a[0]).abs() < 1e-9);
            assert!(
                (b[1] - a[1] - SHIFT_PX[0] as f64).abs() < 1e-6,
                "{a:?} -> {b:?}"
            );
            assert!(
                (b[2] - a[2] - SHIFT_PX[1] as f64).abs() < 1e-6,
                "{a:?} -> {b:?}"
            );
            // And the mid outline is centred on the lesion centre.
            assert!((a[1] - l.centre[1]).abs() < 0.6 && (a[2] - l.centre[2]).abs() < 0.6);
        }
    }

    #[test]
    fn adjacent_covers_the_touching_vessel_the_others_do_not() {
        let p = small();
        let g = Grid::of(&p);
        let mut checked = 0;
        let (mut total, mut total_v) = ([0u64; 4], 0u64);
        for seed in 0..8 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let scene = layout(&g, p.n_targets, &mut rng);
            let v = generate(&p, seed);
            for (l, t) in scene.lesions.iter().zip(&v.targets) {
                let masks: Vec<&Vec<u8>> =
                    t.rater_masks.iter().map(|m| m.as_ref().unwrap()).collect();
                let Some(ves) = l.touching else {
                    // No vessel: adjacent is exactly the mid outline (shifted back).
                    let back = shift_inplane(&g, masks[2], [-SHIFT_PX[0], -SHIFT_PX[1]]);
                    assert_eq!(
                        masks[3], &back,
                        "seed {seed} {}: adjacent without vessel is the mid outline",
                        t.id
                    );
                    continue;
                };
                // The vessel beyond the mid outline, near the lesion, on the slices the lesion
                // is drawn on: what the adjacent rater adds.
                let mut in_v = 0u64;
                let mut covered = [0u64; 4];
                for z in 0..g.d {
                    let drawn =
                        (0..g.h * g.w).any(|i| l.visibility(&g, z, i / g.w, i % g.w) >= MID_LEVEL);
                    if !drawn {
                        continue;
                    }
                    for r in 0..g.h {
                        for c in 0..g.w {
                            let dr = (r as f64 - l.centre[1]) * g.sp[1];
                            let dc = (c as f64 - l.centre[2]) * g.sp[2];
                            let near =
                                (dr * dr + dc * dc).sqrt() <= l.radius_mm + 2.0 * ves.radius_mm;
                            if near
                                && ves.membership(&g, r, c) >= 0.5
                                && l.visibility(&g, z, r, c) < MID_LEVEL
                            {
                                in_v += 1;
                                for k in 0..4 {
                                    covered[k] += masks[k][g.idx(z, r, c)] as u64;
                                }
                            }
                        }
                    }
                }
                assert!(
                    in_v > 10,
                    "seed {seed} {}: the touching vessel barely shows ({in_v} px)",
                    t.id
                );
                assert_eq!(
                    covered[3], in_v,
                    "seed {seed} {}: adjacent must cover the vessel",
                    t.id
                );
                for k in 0..4 {
                    total[k] += covered[k];
                }
                total_v += in_v;
                checked += 1;
            }
        }
        let share = total.map(|c| c as f64 / total_v as f64);
        eprintln!("share of the touching vessel covered per rater: {share:?} ({total_v} px)");
        assert!(share[0] < 0.05, "conservative covers the vessel: {share:?}");
        assert!(share[1] < 0.5, "generous covers the vessel: {share:?}");
        assert!(share[2] < 0.3, "shifted covers the vessel: {share:?}");
        assert!(checked >= 3, "too few touching vessels to test: {checked}");
    }

    #[test]
    fn missing_raters_are_none_for_every_target() {
        let p = PhantomParams {
            p_missing_rater: 0.5,
            ..small()
        };
        let mut some_missing = false;
        for seed in 0..10 {
            let v = generate(&p, seed);
            let present: Vec<bool> = v.targets[0]
                .rater_masks
                .iter()
                .map(Option::is_some)
                .collect();
            assert!(
                present.iter().any(|&p| p),
                "at least one rater reads the study"
            );
            for t in &v.targets {
                assert_eq!(
                    t.rater_masks
                        .iter()
                        .map(Option::is_some)
                        .collect::<Vec<_>>(),
                    present
                );
            }
            some_missing |= present.iter().any(|&p| !p);
        }
        assert!(some_missing);
        let none = generate(
            &PhantomParams {
                n_raters: 2,
                ..small()
            },
            0,
        );
        assert!(none
            .targets
            .iter()
            .all(|t| t.rater_masks.len() == 2 && t.rater_masks.iter().all(Option::is_some)));
    }
}
