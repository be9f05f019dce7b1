//! Images whose values are all `k / 255` in float32 (k = 0..=255): uint8 crops divided by
//! 255, as `ingest lidc-pickle` stores the MedicalMatting pickle's images.
//!
//! Such a column has at most 256 distinct values, so its Parquet dictionary can be built
//! without hashing: `k` is recovered from each value by one multiply and checked, bit for
//! bit, by dividing it back (both vectorised). parquet-rs's own dictionary encoder hashes
//! every value into an interner (~7 ns a value, 0.7 s of the 1.65 s CPU of a 4000-item
//! pickle ingest). Any value that is not exactly some `k / 255` (another scaling, -0.0,
//! NaN) makes [`Coder::push`] give up, and the caller falls back to parquet-rs's encoder.

/// `k / 255` in float32: the value `uint8 as f32 / 255.0` gives, which is numpy's
/// `img.astype(np.float32) / np.float32(255)` (IEEE division, correctly rounded).
fn value(k: u8) -> f32 {
    k as f32 / 255.0
}

/// A column's dictionary and its values' indices into it.
#[derive(Debug, PartialEq)]
pub struct Coded {
    /// The distinct values, ascending (as `k` ascends).
    pub dictionary: Vec<f32>,
    /// One index into `dictionary` per value, in order.
    pub indices: Vec<u8>,
}

/// Codes a column's values slice by slice (row by row), then gives its [`Coded`].
pub struct Coder {
    /// `k` per value until [`Coder::finish`] turns them into indices.
    indices: Vec<u8>,
    seen: [bool; 256],
    /// Every k has been seen: the seen-marking pass is skipped from then on (a noisy uint8
    /// crop shows all 256 values within its first few thousand).
    all_seen: bool,
}

impl Coder {
    /// A coder with room for `values` values.
    pub fn new(values: usize) -> Self {
        Coder {
            indices: Vec::with_capacity(values),
            seen: [false; 256],
            all_seen: false,
        }
    }

    /// Codes `values`; false (and the coder is then of no further use) when one of them is
    /// not some `k / 255` bit for bit.
    pub fn push(&mut self, values: &[f32]) -> bool {
        // A block at a time, so that a column of other values is given up after one block,
        // while the loops carry no early exit: the first two compile to SIMD code.
        for block in values.chunks(4096) {
            let start = self.indices.len();
            // Adding 2^23 rounds v * 255 to an integer held in the low mantissa bits: a
            // float add and a mask, which compile to SIMD code (a float-to-int cast must
            // saturate and does not). Out-of-range values and NaN give some k that the
            // check below rejects.
            self.indices.extend(
                block
                    .iter()
                    .map(|&v| ((v * 255.0 + 8_388_608.0).to_bits() & 0xff) as u8),
            );
            let ks = &self.indices[start..];
            let exact = block.iter().zip(ks).fold(true, |ok, (&v, &k)| {
                ok & (value(k).to_bits() == v.to_bits())
            });
            if !exact {
                return false;
            }
            if !self.all_seen {
                for &k in ks {
                    self.seen[k as usize] = true;
                }
                self.all_seen = self.seen.iter().all(|&s| s);
            }
        }
        true
    }

    /// The dictionary of the values pushed and their indices into it. The dictionary holds
    /// only the values that occur, ascending, so a chunk with few values gets narrow
    /// indices.
    pub fn finish(mut self) -> Coded {
        let mut slot = [0u8; 256];
        let mut dictionary = Vec::new();
        for k in 0..=255u8 {
            if self.seen[k as usize] {
                slot[k as usize] = dictionary.len() as u8;
                dictionary.push(value(k));
            }
        }
        if dictionary.len() < 256 {
            for i in &mut self.indices {
                *i = slot[*i as usize];
            }
        }
        Coded {
            dictionary,
            indices: self.indices,
        }
    }
}

/// The dictionary and indices of `values`, or None when a value is not some `k / 255`
/// bit for bit.
pub fn codes(values: &[f32]) -> Option<Coded> {
    let mut c = Coder::new(values.len());
    c.push(values).then(|| c.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint8_over_255_is_coded_exactly() {
        let bytes: Vec<u8> = (0..=255u8).rev().chain([7, 7, 0, 255]).collect();
        let values: Vec<f32> = bytes.iter().map(|&b| b as f32 / 255.0).collect();
        let c = codes(&values).expect("k / 255 values");
        assert_eq!(c.dictionary.len(), 256);
        for (i, v) in c.indices.iter().zip(&values) {
            assert_eq!(c.dictionary[*i as usize].to_bits(), v.to_bits());
        }
    }

    #[test]
    fn only_present_values_enter_the_dictionary() {
        let values = [3.0 / 255.0, 1.0, 3.0 / 255.0, 0.0];
        let c = codes(&values).unwrap();
        assert_eq!(c.dictionary, vec![0.0, 3.0 / 255.0, 1.0]);
        assert_eq!(c.indices, vec![1, 2, 1, 0]);
    }

    #[test]
    fn other_values_are_refused() {
        for bad in [
            -0.0,
            f32::NAN,
            f32::INFINITY,
            -1.0 / 255.0,
            2.0,
            0.5,
            f32::from_bits((7.0f32 / 255.0).to_bits() + 1),
        ] {
            let mut values = vec![0.0; 5000];
            values[4500] = bad;
            assert_eq!(codes(&values), None, "{bad:?} taken as k / 255");
        }
    }
}
