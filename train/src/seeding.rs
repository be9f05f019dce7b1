//! Deterministic seeds for every random draw, derived from the run seed and the position
//! in training, so that a run resumed at any epoch draws exactly what an uninterrupted run
//! would have drawn.
//!
//! At every step the trainer reseeds torch's global generator (prior samples, dropout) and
//! a ChaCha RNG (rater index draws) from (seed, stage, epoch, step); validation uses its
//! own stream per (seed, stage, epoch). The loader derives its RNG from (seed, epoch).
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a seed is for (separate streams never share draws).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    Train = 1,
    Validation = 2,
    Inference = 3,
    Init = 4,
    /// Stage II's fixed bank (`stage2.fixed_bank`): one stream per image, not per step.
    Bank = 5,
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `seed` and `parts` mixed into one 64-bit seed, part by part.
fn fold_parts(seed: u64, parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(mix(seed), |acc, &part| mix(acc ^ mix(part)))
}

/// A 64-bit seed for (seed, stream, stage, epoch, step).
pub fn derive(seed: u64, stream: Stream, stage: u8, epoch: u64, step: u64) -> u64 {
    fold_parts(seed, &[stream as u64, stage as u64, epoch, step])
}

/// A ChaCha RNG for one image, the same at every epoch and step: (seed, stream) and the
/// image's study, target and slice (FNV-1a over the ids, folded through the mix).
pub fn image_rng(seed: u64, stream: Stream, row: &crate::batch::RowId) -> ChaCha8Rng {
    let fnv = |s: &str| {
        s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let parts = [
        stream as u64,
        fnv(&row.study_id),
        fnv(&row.target_id),
        row.slice_index as u64,
    ];
    ChaCha8Rng::seed_from_u64(fold_parts(seed, &parts))
}

/// Reseeds torch's global generator (CPU and CUDA) and returns a ChaCha RNG for the same
/// position. torch takes an i64; the top bit is dropped so the value is non-negative.
pub fn reseed(seed: u64, stream: Stream, stage: u8, epoch: u64, step: u64) -> ChaCha8Rng {
    let s = derive(seed, stream, stage, epoch, step);
    tch::manual_seed((s >> 1) as i64);
    ChaCha8Rng::seed_from_u64(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_give_distinct_reproducible_seeds() {
        let a = derive(1337, Stream::Train, 1, 3, 7);
        assert_eq!(a, derive(1337, Stream::Train, 1, 3, 7));
        let others = [
            derive(1338, Stream::Train, 1, 3, 7),
            derive(1337, Stream::Validation, 1, 3, 7),
            derive(1337, Stream::Train, 2, 3, 7),
            derive(1337, Stream::Train, 1, 4, 7),
            derive(1337, Stream::Train, 1, 3, 8),
            derive(1337, Stream::Train, 1, 7, 3),
        ];
        for o in others {
            assert_ne!(a, o);
        }
    }

    #[test]
    fn reseeding_torch_repeats_its_draws() {
        reseed(5, Stream::Train, 1, 0, 0);
        let a = tch::Tensor::randn([4], (tch::Kind::Float, tch::Device::Cpu));
        reseed(5, Stream::Train, 1, 0, 0);
        let b = tch::Tensor::randn([4], (tch::Kind::Float, tch::Device::Cpu));
        assert!(a.equal(&b));
    }
}
