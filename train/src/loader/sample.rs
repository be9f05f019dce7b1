//! One training sample: decode, augment, rank raters, derive union and intersection.
//!
//! Randomness is a pure function of (seed, epoch, position in the epoch's order): each
//! sample seeds its own ChaCha8 stream, so the result does not depend on the number of
//! worker threads or on which thread makes which sample.
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use schemas::manifest::RaterOrder;

use super::augment::Augmenter;
use super::dataset::RawSlice;
use super::rank::rater_permutation;
use crate::batch::RowId;

/// Domain tags keep the shuffle stream and the sample streams apart.
const DOMAIN_SHUFFLE: u64 = 0x5348_5546_464c_4531; // "SHUFFLE1"
const DOMAIN_SAMPLE: u64 = 0x5341_4d50_4c45_3031; // "SAMPLE01"

fn rng_for(seed: u64, epoch: u64, position: u64, domain: u64) -> ChaCha8Rng {
    // The 256-bit ChaCha key is the four words themselves: distinct tuples give distinct,
    // independent streams without relying on a hash being collision-free.
    let mut key = [0u8; 32];
    for (i, v) in [seed, epoch, position, domain].into_iter().enumerate() {
        key[i * 8..(i + 1) * 8].copy_from_slice(&v.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// The RNG of the sample at `position` of `epoch`'s order.
pub fn sample_rng(seed: u64, epoch: u64, position: u64) -> ChaCha8Rng {
    rng_for(seed, epoch, position, DOMAIN_SAMPLE)
}

/// The order in which an epoch visits the `n` dataset rows (a fresh permutation per epoch).
pub fn epoch_order(n: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        order.shuffle(&mut rng_for(seed, epoch, 0, DOMAIN_SHUFFLE));
    }
    order
}

/// An augmented slice, ready to be copied into a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `[C, H, W]`.
    pub image: Vec<f32>,
    /// `[R, H, W]` 0.0/1.0, in served rater order.
    pub masks: Vec<f32>,
    /// `[R]`, in served rater order.
    pub present: Vec<bool>,
    /// `[H, W]` 1.0 where every present rater marked the pixel (all 0 with no rater present).
    pub intersection: Vec<f32>,
    /// `[H, W]` 1.0 where any present rater marked the pixel.
    pub union: Vec<f32>,
    /// `[H*W]` the slice's extra target (fused label), warped like the masks.
    pub target: Option<Vec<f32>>,
    pub id: RowId,
}

/// Augments `raw` (an `h x w` slice with `raters` masks) and orders its raters.
pub fn make_sample<R: rand::Rng>(
    raw: &RawSlice<'_>,
    h: usize,
    w: usize,
    augmenter: &Augmenter,
    order: RaterOrder,
    rng: &mut R,
) -> Sample {
    let hw = h * w;
    let raters = raw.present.len();
    let draw = augmenter.draw(h, w, rng);
    let (mut image, masks) = match &draw.warp {
        None => (raw.image.to_vec(), raw.masks.to_vec()),
        Some(warp) => {
            let mut image = vec![0f32; raw.image.len()];
            let mut masks = vec![0u8; raw.masks.len()];
            warp.apply_planes(raw.image, &mut image);
            warp.apply_planes(raw.masks, &mut masks);
            (image, masks)
        }
    };
    if draw.noise {
        augmenter.add_noise(&mut image, rng);
    }
    // Same nearest-neighbour map as the masks, so label and masks stay aligned.
    let target = raw.target.map(|t| match &draw.warp {
        None => t.to_vec(),
        Some(warp) => {
            let mut out = vec![0f32; t.len()];
            warp.apply_planes(t, &mut out);
            out
        }
    });
    let perm = rater_permutation(order, &masks, raters);
    let mut out_masks = vec![0f32; raters * hw];
    let mut present = Vec::with_capacity(raters);
    for (k, &src) in perm.iter().enumerate() {
        present.push(raw.present[src]);
        for (o, &m) in out_masks[k * hw..(k + 1) * hw]
            .iter_mut()
            .zip(&masks[src * hw..(src + 1) * hw])
        {
            *o = m as f32;
        }
    }
    let (intersection, union) = consensus(&masks, raw.present, hw);
    Sample {
        image,
        masks: out_masks,
        present,
        intersection,
        union,
        target,
        id: raw.id.clone(),
    }
}

/// Intersection and union `[H*W]` over the present raters of `masks` `[R, H*W]`
/// (both all zero when no rater is present, as `SliceRecord::derive_consensus`).
pub fn consensus(masks: &[u8], present: &[bool], hw: usize) -> (Vec<f32>, Vec<f32>) {
    let mut inter = vec![0u8; hw];
    let mut uni = vec![0u8; hw];
    let mut first = true;
    for (k, _) in present.iter().enumerate().filter(|&(_, &p)| p) {
        let m = &masks[k * hw..(k + 1) * hw];
        if first {
            inter.copy_from_slice(m);
            uni.copy_from_slice(m);
            first = false;
        } else {
            for ((i, u), &v) in inter.iter_mut().zip(uni.iter_mut()).zip(m) {
                *i &= v;
                *u |= v;
            }
        }
    }
    let f = |v: Vec<u8>| v.into_iter().map(f32::from).collect();
    (f(inter), f(uni))
}
