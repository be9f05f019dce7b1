//! Bit-packing of 0/1 masks for the slice shards, in numpy's `packbits` order.
//!
//! Why packed: a 128 x 128 slice with 4 raters holds 98,304 mask values (masks,
//! intersection and union). Stored one per list item, every value costs Parquet a
//! repetition and a definition level and a 4-byte INT32 (Parquet has no 8-bit physical
//! type), and zstd then has to squeeze 390 kB per row back down; `perf` put that at over
//! half of ingest's CPU time. Packed, a row's masks are one 12 kB binary value.
//!
//! Order: the first value is the most significant bit of the first byte (numpy's default
//! `bitorder="big"`), values run on across rater planes without padding, and only the last
//! byte is zero-padded. So a Polars or pyarrow user reads them back with
//! `np.unpackbits(np.frombuffer(b, np.uint8), count=R * H * W).reshape(R, H, W)`.

/// Bytes needed for `n` packed values.
pub const fn packed_len(n: usize) -> usize {
    n.div_ceil(8)
}

/// Appends `values` packed 8 per byte to `out`; any non-zero value is a 1.
pub fn pack_into(values: &[u8], out: &mut Vec<u8>) {
    // Written into a zeroed tail rather than pushed byte by byte: without push's capacity
    // check the loop compiles to straight-line code, about twice as fast on 128 x 128 masks.
    let start = out.len();
    out.resize(start + packed_len(values.len()), 0);
    let dst = &mut out[start..];
    let mut chunks = values.chunks_exact(8);
    for (slot, chunk) in dst.iter_mut().zip(&mut chunks) {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
        // Bit 0 of each byte := "the byte is non-zero" (the shifts stay inside each byte as
        // far as bit 0 is concerned), then the rest of each byte is cleared.
        let mut any = word | (word >> 1);
        any |= any >> 2;
        any |= any >> 4;
        let bits = any & 0x0101_0101_0101_0101;
        // Byte k's bit now sits at bit 8k; the multiplier moves it to bit 63 - k (its other
        // copies land at distinct lower bits, so nothing carries), and the top byte is then
        // value 0 in its high bit down to value 7 in its low bit.
        *slot = (bits.wrapping_mul(0x8040_2010_0804_0201) >> 56) as u8;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let byte = rest
            .iter()
            .enumerate()
            .fold(0u8, |acc, (k, &v)| acc | (((v != 0) as u8) << (7 - k)));
        *dst.last_mut().expect("a remainder needs a last byte") = byte;
    }
}

/// `values` packed (see [`pack_into`]).
pub fn pack(values: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    pack_into(values, &mut out);
    out
}

/// The 8 values (0/1 bytes, first value in the lowest byte) of every packed byte.
const UNPACKED: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut word = 0u64;
        let mut k = 0;
        while k < 8 {
            word |= (((b >> (7 - k)) & 1) as u64) << (8 * k);
            k += 1;
        }
        table[b] = word;
        b += 1;
    }
    table
};

/// Appends the first `n` values held in `packed` to `out` as 0/1 bytes.
///
/// Panics if `packed` is shorter than [`packed_len`]`(n)`: callers check lengths first and
/// report the file.
pub fn unpack_into(packed: &[u8], n: usize, out: &mut Vec<u8>) {
    assert!(
        packed.len() >= packed_len(n),
        "{} packed bytes cannot hold {n} values",
        packed.len()
    );
    out.reserve(n);
    let whole = n / 8;
    for &b in &packed[..whole] {
        out.extend_from_slice(&UNPACKED[b as usize].to_le_bytes());
    }
    let rest = n - whole * 8;
    if rest > 0 {
        out.extend_from_slice(&UNPACKED[packed[whole] as usize].to_le_bytes()[..rest]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bit order written out by hand, independently of the multiply trick.
    fn pack_naive(values: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; packed_len(values.len())];
        for (i, &v) in values.iter().enumerate() {
            if v != 0 {
                out[i / 8] |= 0x80 >> (i % 8);
            }
        }
        out
    }

    #[test]
    fn first_value_is_the_high_bit_like_numpy_packbits() {
        // np.packbits([1,0,0,0,0,0,0,1, 1,1]) == [129, 192]
        assert_eq!(pack(&[1, 0, 0, 0, 0, 0, 0, 1, 1, 1]), vec![129, 192]);
        let mut out = Vec::new();
        unpack_into(&[129, 192], 10, &mut out);
        assert_eq!(out, vec![1, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn pack_matches_the_naive_order_and_unpack_inverts_it() {
        // A deterministic pseudo-random 0/1 (and some 255) sequence of every length 0..200.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for n in 0..200 {
            let values: Vec<u8> = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    [0u8, 1, 255][(state % 3) as usize]
                })
                .collect();
            let packed = pack(&values);
            assert_eq!(packed, pack_naive(&values), "n = {n}");
            let mut back = Vec::new();
            unpack_into(&packed, n, &mut back);
            let binary: Vec<u8> = values.iter().map(|&v| (v != 0) as u8).collect();
            assert_eq!(back, binary, "n = {n}");
        }
    }

    #[test]
    #[should_panic(expected = "cannot hold")]
    fn unpack_refuses_too_few_bytes() {
        unpack_into(&[0xff], 9, &mut Vec::new());
    }
}
