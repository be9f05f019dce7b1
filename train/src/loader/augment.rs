//! The paper's training augmentations (method.md §1.2 for LIDC, §1.4 for NPC).
//!
//! Every geometric step is composed into one [`Warp`] that is applied to the image channels
//! and to every rater mask, so image and masks stay aligned by construction; intensity noise
//! (NPC) touches the image only. Random draws come from the per-sample RNG the loader
//! derives from (seed, epoch, position), in a fixed order, so a sample's augmentation does
//! not depend on which worker thread makes it.
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use schemas::manifest::SourceKind;

use super::warp::Warp;

/// Which augmentation pipeline to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AugmentKind {
    /// No augmentation (validation, test, inference).
    None,
    /// Flips, then a rotation by a uniform angle with PIL semantics (LIDC protocol).
    Lidc,
    /// rot90 + flip, small integer rotation with scipy semantics, image noise (NPC protocol).
    Npc,
}

impl AugmentKind {
    /// The paper's training augmentation for a dataset of `source` kind.
    pub fn for_source(source: SourceKind) -> Self {
        if source.is_volumetric() {
            AugmentKind::Npc
        } else {
            AugmentKind::Lidc
        }
    }
}

/// LIDC augmentation parameters (method.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LidcParams {
    /// Probability of a left-right flip.
    pub p_hflip: f64,
    /// Probability of a top-bottom flip (after the left-right one).
    pub p_vflip: f64,
    /// The angle is uniform in `[-max_angle_deg, max_angle_deg]` (always applied).
    pub max_angle_deg: f64,
}

impl Default for LidcParams {
    fn default() -> Self {
        Self {
            p_hflip: 0.5,
            p_vflip: 0.5,
            max_angle_deg: 180.0,
        }
    }
}

/// NPC augmentation parameters (method.md §1.4, `RandomGenerator_Multi_Rater`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NpcParams {
    /// Probability of `rot90(k)` (k uniform in 0..4) followed by a flip along a uniform axis.
    pub p_rot_flip: f64,
    /// Probability of a rotation by an integer angle in `[-max_angle_deg, max_angle_deg)`.
    pub p_rotate: f64,
    /// `np.random.randint(-20, 20)`: the upper end is exclusive.
    pub max_angle_deg: i32,
    /// Probability of adding noise to the image.
    pub p_noise: f64,
    /// Noise is `N(0, sigma^2)` ...
    pub noise_sigma: f64,
    /// ... clipped to `[-noise_clip, noise_clip]`.
    pub noise_clip: f64,
}

impl Default for NpcParams {
    fn default() -> Self {
        Self {
            p_rot_flip: 0.5,
            p_rotate: 0.5,
            max_angle_deg: 20,
            p_noise: 0.5,
            noise_sigma: 0.1,
            noise_clip: 0.2,
        }
    }
}

/// An augmentation pipeline with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augmenter {
    pub kind: AugmentKind,
    pub lidc: LidcParams,
    pub npc: NpcParams,
}

impl Augmenter {
    /// `kind` with the paper's parameters.
    pub fn paper(kind: AugmentKind) -> Self {
        Self {
            kind,
            lidc: LidcParams::default(),
            npc: NpcParams::default(),
        }
    }

    /// Draws this sample's geometric transform of an `h x w` grid and, for NPC, whether
    /// to add noise. Draw order: LIDC hflip coin, vflip coin, angle; NPC rot/flip coin,
    /// k, axis, rotate coin, angle, noise coin.
    pub fn draw<R: Rng>(&self, h: usize, w: usize, rng: &mut R) -> Draw {
        match self.kind {
            AugmentKind::None => Draw {
                warp: None,
                noise: false,
            },
            AugmentKind::Lidc => {
                let p = &self.lidc;
                let mut warp = Warp::identity(h, w);
                if rng.random_bool(p.p_hflip) {
                    warp = warp.then(&Warp::flip_horizontal(h, w));
                }
                if rng.random_bool(p.p_vflip) {
                    warp = warp.then(&Warp::flip_vertical(h, w));
                }
                let angle = rng.random_range(-p.max_angle_deg..=p.max_angle_deg);
                warp = warp.then(&Warp::rotate_pil(h, w, angle));
                Draw {
                    warp: Some(warp),
                    noise: false,
                }
            }
            AugmentKind::Npc => {
                let p = &self.npc;
                let mut warp = Warp::identity(h, w);
                if rng.random_bool(p.p_rot_flip) {
                    let k = rng.random_range(0..4u32);
                    let axis = rng.random_range(0..2u32);
                    // rot90 needs a square grid; crops are square (manifest crop_size).
                    warp = warp.then(&Warp::rot90(h, k));
                    warp = warp.then(&if axis == 0 {
                        Warp::flip_vertical(h, w)
                    } else {
                        Warp::flip_horizontal(h, w)
                    });
                }
                if rng.random_bool(p.p_rotate) {
                    let angle = rng.random_range(-p.max_angle_deg..p.max_angle_deg);
                    warp = warp.then(&Warp::rotate_scipy(h, w, angle as f64));
                }
                let noise = rng.random_bool(p.p_noise);
                Draw {
                    warp: (!warp.is_identity()).then_some(warp),
                    noise,
                }
            }
        }
    }

    /// Adds clipped Gaussian noise to `image` in place (row-major draw order).
    pub fn add_noise<R: Rng>(&self, image: &mut [f32], rng: &mut R) {
        let p = &self.npc;
        let normal = Normal::new(0.0, p.noise_sigma).expect("noise sigma is finite and >= 0");
        for v in image {
            let n: f64 = normal.sample(rng);
            *v += n.clamp(-p.noise_clip, p.noise_clip) as f32;
        }
    }
}

/// One sample's random choices.
#[derive(Debug, Clone)]
pub struct Draw {
    /// The geometric transform (`None`: leave the grid as it is).
    pub warp: Option<Warp>,
    /// Whether to add image noise.
    pub noise: bool,
}
