//! Random rater selection (RS; Jungo et al. 2018, baselines.md §2.3): every image of every
//! mini-batch is supervised by one rater drawn uniformly from the raters present for it.
//!
//! The draw is a pure function of `(seed, epoch, step)` so that a resumed run sees the same
//! raters as an uninterrupted one, independent of torch's generator.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded stream of rater draws.
pub struct RandomRater {
    rng: ChaCha8Rng,
}

impl RandomRater {
    /// A stream seeded by `seed` alone.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The stream for one optimisation step: independent ChaCha streams per (epoch, step),
    /// so draws do not depend on how many were made before (resume-safe).
    pub fn for_step(seed: u64, epoch: u32, step: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(((epoch as u64) << 40) ^ step);
        Self { rng }
    }

    /// One rater index drawn uniformly among `present`; `None` if nobody is present.
    pub fn draw(&mut self, present: &[bool]) -> Option<usize> {
        let n = present.iter().filter(|&&p| p).count();
        if n == 0 {
            return None;
        }
        let k = self.rng.random_range(0..n);
        present
            .iter()
            .enumerate()
            .filter(|(_, &p)| p)
            .map(|(r, _)| r)
            .nth(k)
    }

    /// One rater per row of a `[B, R]` presence matrix (row-major), as `i64` ready for a
    /// `[B]` tensor. A row with no rater present gets rater 0 (its masks are all zero, so
    /// it is an "empty" target either way).
    pub fn draw_batch(&mut self, present: &[bool], r: usize) -> Vec<i64> {
        assert!(
            r > 0 && present.len().is_multiple_of(r),
            "present must be [B, R]"
        );
        present
            .chunks(r)
            .map(|row| self.draw(row).unwrap_or(0) as i64)
            .collect()
    }
}
