//! Bit-packed binary masks: one bit per pixel/voxel in `u64` words, so that intersections
//! and unions of two masks are exact popcounts over words (64 pixels per instruction) and
//! N x N pairwise statistics never need an N x N x pixels array (method.md §5.6).

/// A binary mask over `len` pixels (a 2D slice or a 3D volume flattened slice after slice).
///
/// Bits past `len` in the last word are always zero, so popcounts never see padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitMask {
    words: Vec<u64>,
    len: usize,
    count: u64,
}

fn words_for(len: usize) -> usize {
    len.div_ceil(64)
}

impl BitMask {
    /// Packs a mask given as bytes: any non-zero byte is foreground. `[P]` -> P bits.
    pub fn from_bytes(mask: &[u8]) -> Self {
        Self::from_values(mask, |&v| v != 0)
    }

    /// Binarises a probability map with a STRICT `p > threshold` (the authors' `P > 0.5`;
    /// a pixel at exactly the threshold is background). `[P]` -> P bits.
    pub fn from_probs(probs: &[f32], threshold: f32) -> Self {
        Self::from_values(probs, |&p| p > threshold)
    }

    /// Packs 64 values per word with a branch-free inner loop (the hot path of scoring:
    /// N maps per unit).
    pub fn from_values<T>(values: &[T], bit: impl Fn(&T) -> bool) -> Self {
        let words: Vec<u64> = values
            .chunks(64)
            .map(|chunk| {
                chunk
                    .iter()
                    .enumerate()
                    .fold(0u64, |acc, (i, v)| acc | ((bit(v) as u64) << i))
            })
            .collect();
        let count = words.iter().map(|w| w.count_ones() as u64).sum();
        BitMask {
            words,
            len: values.len(),
            count,
        }
    }

    /// Binarises a probability map (strict `p > threshold`, as [`Self::from_probs`]) AND adds
    /// every probability to `sum` (f64) in the same pass, so that scoring reads each map once
    /// (the mask for GED/Dice and the running sum for Dice_soft's mean map). `[P]` -> P bits;
    /// `sum` is `[P]`. Panics if the lengths differ (a caller bug).
    pub fn from_probs_accumulating(probs: &[f32], threshold: f32, sum: &mut [f64]) -> Self {
        assert_eq!(
            probs.len(),
            sum.len(),
            "probability map and sum differ in size"
        );
        let words: Vec<u64> = probs
            .chunks(64)
            .zip(sum.chunks_mut(64))
            .map(|(chunk, acc)| {
                let mut word = 0u64;
                for (i, (&p, a)) in chunk.iter().zip(acc.iter_mut()).enumerate() {
                    *a += p as f64;
                    word |= ((p > threshold) as u64) << i;
                }
                word
            })
            .collect();
        let count = words.iter().map(|w| w.count_ones() as u64).sum();
        BitMask {
            words,
            len: probs.len(),
            count,
        }
    }

    /// Builds a mask from a predicate over pixel indices `0..len`.
    pub fn from_fn(len: usize, mut bit: impl FnMut(usize) -> bool) -> Self {
        let mut words = vec![0u64; words_for(len)];
        for (w, word) in words.iter_mut().enumerate() {
            let base = w * 64;
            let end = (base + 64).min(len);
            let mut acc = 0u64;
            for i in base..end {
                acc |= (bit(i) as u64) << (i - base);
            }
            *word = acc;
        }
        let count = words.iter().map(|w| w.count_ones() as u64).sum();
        BitMask { words, len, count }
    }

    /// Number of pixels the mask covers (set or not).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Foreground pixels |A|.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether pixel `i` is foreground.
    pub fn get(&self, i: usize) -> bool {
        (self.words[i / 64] >> (i % 64)) & 1 == 1
    }

    /// |A ∩ B| by popcount. Panics if the masks cover different pixel counts (a caller bug:
    /// [`crate::unit_metrics::score_unit`] checks sizes and returns an error first).
    pub fn intersection(&self, other: &BitMask) -> u64 {
        assert_eq!(self.len, other.len, "masks of different sizes");
        self.words
            .iter()
            .zip(&other.words)
            .map(|(a, b)| (a & b).count_ones() as u64)
            .sum()
    }

    /// |A ∪ B| = |A| + |B| − |A ∩ B|.
    pub fn union_given(&self, other: &BitMask, intersection: u64) -> u64 {
        self.count + other.count - intersection
    }

    /// Unpacks to 0/1 bytes (for figures and files).
    pub fn to_bytes(&self) -> Vec<u8> {
        (0..self.len).map(|i| self.get(i) as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_match_bytewise_counts_across_word_boundaries() {
        let a: Vec<u8> = (0..131).map(|i| (i % 3 == 0) as u8).collect();
        let b: Vec<u8> = (0..131).map(|i| (i % 5 == 0) as u8).collect();
        let (ma, mb) = (BitMask::from_bytes(&a), BitMask::from_bytes(&b));
        let inter = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| **x == 1 && **y == 1)
            .count() as u64;
        assert_eq!(ma.count(), a.iter().map(|&v| v as u64).sum::<u64>());
        assert_eq!(ma.intersection(&mb), inter);
        assert_eq!(
            ma.union_given(&mb, inter),
            a.iter()
                .zip(&b)
                .filter(|(x, y)| **x == 1 || **y == 1)
                .count() as u64
        );
        assert_eq!(ma.to_bytes(), a);
    }

    #[test]
    fn accumulating_binarisation_equals_the_two_pass_one() {
        let probs: Vec<f32> = (0..200).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let mut sum = vec![0.25f64; 200];
        let m = BitMask::from_probs_accumulating(&probs, 0.5, &mut sum);
        assert_eq!(m, BitMask::from_probs(&probs, 0.5));
        for (s, &p) in sum.iter().zip(&probs) {
            assert_eq!(*s, 0.25 + p as f64);
        }
    }

    #[test]
    fn probability_threshold_is_strict() {
        let m = BitMask::from_probs(&[0.5, 0.500_001, 0.0, 1.0], 0.5);
        assert_eq!(m.to_bytes(), vec![0, 1, 0, 1]);
    }
}
