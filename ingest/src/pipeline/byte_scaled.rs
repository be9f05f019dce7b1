//! Images whose values are all `k / 255` in float32 (k = 0..=255): uint8 crops divided by
//! 255, as `ingest lidc-pickle` stores the MedicalMatting pickle's images.
//!
//! Such a column has at most 256 distinct values, so its Parquet dictionary can be built
//! without hashing: `k` is recovered from each value by one multiply and checked by a table
//! lookup, bit for bit. parquet-rs's own dictionary encoder hashes every value into an
//! interner (~7 ns a value, 0.7 s of the 1.65 s CPU of a 4000-item pickle ingest); this
//! pass is about a nanosecond a value. Any value that is not exactly some `k / 255`
//! (another scaling, -0.0, NaN) makes [`codes`] give up, and the caller falls back to
//! parquet-rs's encoder.

/// `k / 255` in float32 for k = 0..=255: the value `uint8 as f32 / 255.0` gives, which is
/// numpy's `img.astype(np.float32) / np.float32(255)` (IEEE division, correctly rounded).
const VALUES: [f32; 256] = {
    let mut t = [0f32; 256];
    let mut k = 0;
    while k < 256 {
        t[k] = k as f32 / 255.0;
        k += 1;
    }
    t
};

/// A column's dictionary and its values' indices into it.
#[derive(Debug, PartialEq)]
pub struct Coded {
    /// The distinct values, ascending (as `k` ascends).
    pub dictionary: Vec<f32>,
    /// One index into `dictionary` per value, in order.
    pub indices: Vec<u8>,
}

/// The dictionary and indices of `values`, or None when a value is not some `k / 255`
/// bit for bit.
pub fn codes(values: &[f32]) -> Option<Coded> {
    let mut indices = Vec::with_capacity(values.len());
    let mut seen = [false; 256];
    // Checked a block at a time, so that a column of other values is given up after one
    // block, while the inner loop carries no early exit and stays branch-free.
    for block in values.chunks(4096) {
        let mut exact = true;
        for &v in block {
            // Saturating cast: negative values and NaN give 0, large ones 255; the lookup
            // below rejects them.
            let k = (v * 255.0 + 0.5) as u8;
            exact &= VALUES[k as usize].to_bits() == v.to_bits();
            seen[k as usize] = true;
            indices.push(k);
        }
        if !exact {
            return None;
        }
    }
    // Index of each present k among the present ones; the dictionary holds only the values
    // that occur, so a chunk with few values gets narrow indices.
    let mut slot = [0u8; 256];
    let mut dictionary = Vec::new();
    for (k, _) in seen.iter().enumerate().filter(|(_, s)| **s) {
        slot[k] = dictionary.len() as u8;
        dictionary.push(VALUES[k]);
    }
    if dictionary.len() < 256 {
        for i in &mut indices {
            *i = slot[*i as usize];
        }
    }
    Some(Coded {
        dictionary,
        indices,
    })
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
