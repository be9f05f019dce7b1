//! Parquet's RLE / bit-packing hybrid encoding, for the image column chunks that
//! [`super::image_chunk`] writes itself (repetition and definition levels, dictionary
//! indices). parquet-rs has this encoder but keeps it private (its `encodings` module is
//! public only under the `experimental` feature, whose API may change in any release), and
//! the format is a page of the Parquet spec ("Run Length Encoding / Bit-Packing Hybrid"):
//!
//! ```text
//! run         := rle-run | bit-packed-run
//! rle-run     := varint(count << 1)            value in ceil(bit_width / 8) bytes, LE
//! bit-packed  := varint(groups << 1 | 1)       groups x 8 values, bit_width bits each, LSB first
//! ```
//!
//! The values come as runs (levels: a list's `0, 1, 1, ...`) or as slices (indices), so
//! long runs of the same level cost one call, not one per value. Values are at most 8 bits
//! wide: the levels of the slice schema are 0 or 1 and the dictionaries hold at most 256
//! entries.

/// Runs shorter than this go into bit-packed groups; from this length on a run is coded as
/// one RLE run (parquet-rs uses the same threshold). Below it, an RLE run (2+ bytes) is
/// rarely smaller than the run's share of the bit-packed bytes.
const MIN_RLE_RUN: usize = 8;

/// An encoder of values of `bit_width` bits (0 to 8) into the hybrid encoding.
pub struct HybridEncoder {
    bit_width: u8,
    out: Vec<u8>,
    /// Values waiting to be bit-packed; emitted in whole groups of 8 when a long run (or the
    /// end) comes, so that every bit-packed run but the last holds exactly its values.
    literals: Vec<u8>,
}

impl HybridEncoder {
    /// An encoder of values below `2^bit_width`, reserving room for about `values` values.
    pub fn new(bit_width: u8, values: usize) -> Self {
        Self::appending_to(
            bit_width,
            Vec::with_capacity(values * bit_width as usize / 8 + 16),
        )
    }

    /// An encoder whose output follows the bytes already in `out` (a page being built), so
    /// the encoded values are not copied once more.
    pub fn appending_to(bit_width: u8, out: Vec<u8>) -> Self {
        assert!(bit_width <= 8, "values of at most 8 bits");
        HybridEncoder {
            bit_width,
            out,
            literals: Vec::new(),
        }
    }

    /// Appends `count` copies of `value`.
    pub fn put_run(&mut self, value: u8, count: usize) {
        debug_assert!(u16::from(value) < 1u16 << self.bit_width || self.bit_width == 8);
        // A run can only be coded as RLE where the pending literals end on a group
        // boundary, so the first `pad` copies fill the last literal group.
        let pad = (8 - self.literals.len() % 8) % 8;
        if count < pad + MIN_RLE_RUN {
            self.literals.resize(self.literals.len() + count, value);
            return;
        }
        self.literals.resize(self.literals.len() + pad, value);
        self.flush_literals_and(&[]);
        self.rle_run(value, count - pad);
    }

    /// Appends `values`, coding as RLE runs those runs of equal values that cover a whole
    /// group of 8 (groups counted from where the pending literals would end), and the rest
    /// bit-packed.
    ///
    /// Only group-aligned runs are looked for because a bit-packed run holds whole groups:
    /// a run starting inside a group would have its head packed anyway. Testing a group is
    /// one 8-byte comparison, so random values (a noisy crop's indices) cost a fraction of
    /// a nanosecond each, not a comparison per value.
    pub fn put_values(&mut self, values: &[u8]) {
        let head = ((8 - self.literals.len() % 8) % 8).min(values.len());
        self.literals.extend_from_slice(&values[..head]);
        let values = &values[head..];
        let mut literal_start = 0;
        let mut i = 0;
        while i + 8 <= values.len() {
            let group = u64::from_le_bytes(values[i..i + 8].try_into().expect("8 bytes"));
            let v = values[i];
            if group != u64::from(v) * 0x0101_0101_0101_0101 {
                i += 8;
                continue;
            }
            let mut end = i + 8;
            while end < values.len() && values[end] == v {
                end += 1;
            }
            self.flush_literals_and(&values[literal_start..i]);
            self.rle_run(v, end - i);
            // The literals are empty again: groups now count from `end`.
            literal_start = end;
            i = end;
        }
        // Whole groups go out now, straight from `values`; only a partial group waits.
        let whole = literal_start + (values.len() - literal_start) / 8 * 8;
        if whole > literal_start {
            self.flush_literals_and(&values[literal_start..whole]);
        }
        self.literals.extend_from_slice(&values[whole..]);
    }

    /// The encoded bytes; the last bit-packed group is padded with zeros (readers take only
    /// as many values as the page says it holds).
    pub fn finish(mut self) -> Vec<u8> {
        let partial = self.literals.len() % 8;
        if partial != 0 {
            self.literals.resize(self.literals.len() + 8 - partial, 0);
        }
        self.flush_literals_and(&[]);
        self.out
    }

    fn rle_run(&mut self, value: u8, count: usize) {
        put_varint(&mut self.out, (count as u64) << 1);
        if self.bit_width > 0 {
            self.out.push(value);
        }
    }

    /// Emits the pending literals followed by `more` (together a multiple of 8) as one
    /// bit-packed run.
    fn flush_literals_and(&mut self, more: &[u8]) {
        let n = self.literals.len() + more.len();
        if n == 0 {
            return;
        }
        debug_assert_eq!(self.literals.len() % 8, 0);
        debug_assert_eq!(n % 8, 0);
        put_varint(&mut self.out, (((n / 8) as u64) << 1) | 1);
        let width = self.bit_width as usize;
        for part in [&self.literals[..], more] {
            match width {
                0 => {}
                // One byte per value: the values are the packed bytes.
                8 => self.out.extend_from_slice(part),
                _ => {
                    for group in part.chunks_exact(8) {
                        let mut bits = 0u64;
                        for (k, &v) in group.iter().enumerate() {
                            bits |= u64::from(v) << (k * width);
                        }
                        self.out.extend_from_slice(&bits.to_le_bytes()[..width]);
                    }
                }
            }
        }
        self.literals.clear();
    }
}

/// ULEB128, the hybrid encoding's run headers.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bits needed to store values up to `max` (0 for 0), as Parquet sizes dictionary indices.
pub fn bit_width(max: u32) -> u8 {
    (32 - max.leading_zeros()) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runs an encoding holds, as (is_rle, count, bytes of values): the byte layout
    /// spelt out by hand from the spec.
    #[test]
    fn runs_are_laid_out_as_the_spec_says() {
        // 3 literals then a run of 20 ones, bit width 1: the run first fills the literal
        // group (5 ones), then 15 ones are one RLE run.
        let mut e = HybridEncoder::new(1, 23);
        e.put_values(&[1, 0, 1]);
        e.put_run(1, 20);
        assert_eq!(e.finish(), vec![0b11, 0b1111_1101, 15 << 1, 1]);

        // A short run stays literal; the tail group is zero-padded.
        let mut e = HybridEncoder::new(3, 3);
        e.put_values(&[7, 7, 2]);
        // 7 | 7 << 3 | 2 << 6 = 0b10_111_111 (one group: 3 bytes).
        assert_eq!(e.finish(), vec![0b11, 0xbf, 0, 0]);

        // Width 0 (a one-entry dictionary): headers only.
        let mut e = HybridEncoder::new(0, 10);
        e.put_values(&[0; 10]);
        assert_eq!(e.finish(), vec![10 << 1]);

        // Width 8: the bytes themselves; a 200-value run has a two-byte header.
        let mut e = HybridEncoder::new(8, 208);
        e.put_values(&[9, 8, 7, 6, 5, 4, 3, 2]);
        e.put_values(&[255; 200]);
        let mut want = vec![0b11, 9, 8, 7, 6, 5, 4, 3, 2];
        want.extend([0x90, 0x03, 255]); // 400 = 0x190: 0x90 0x03
        assert_eq!(e.finish(), want);
    }

    /// Values put in several calls: the pending literals are completed to a group before
    /// a run is looked for, and a call too short to complete one leaves them waiting.
    #[test]
    fn calls_continue_the_pending_group() {
        let mut e = HybridEncoder::new(2, 16);
        e.put_values(&[1, 2, 3]);
        e.put_values(&[1]);
        e.put_values(&[3; 12]);
        // One group 1,2,3,1,3,3,3,3 (2 bits each, first value lowest), then 8 threes.
        assert_eq!(e.finish(), vec![0b11, 0b01_11_10_01, 0xff, 8 << 1, 3]);
    }

    #[test]
    fn widths() {
        assert_eq!(
            [0, 1, 2, 3, 4, 255, 256].map(bit_width),
            [0, 1, 2, 2, 3, 8, 9]
        );
    }
}
