//! Rater channel order per slice (method.md §1.2 step 6).
//!
//! With `area_rank` the masks are re-ordered by ascending foreground area, computed AFTER
//! augmentation (a rotation can clip corner pixels and change the order). The paper uses
//! `torch.sort`, which is not stable; here ties are broken by manifest rater index (a
//! stable sort), so the result is reproducible. Tied masks of area 0 are identical, so
//! only non-empty masks of equal area are affected by the tie rule. A rater who did not
//! read the study has an all-zero mask and area 0, so it sorts with the empty masks, as in
//! the paper (whose data pads missing reads with empty masks); its `present` flag moves
//! with it.
use schemas::manifest::RaterOrder;

/// The rater permutation `perm` (output channel k = input rater `perm[k]`) for `masks`
/// `[R, H*W]` under `order`.
pub fn rater_permutation(order: RaterOrder, masks: &[u8], raters: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..raters).collect();
    if order == RaterOrder::AreaRank && raters > 0 {
        let hw = masks.len() / raters;
        let area: Vec<u64> = masks
            .chunks_exact(hw)
            .map(|m| m.iter().map(|&v| v as u64).sum())
            .collect();
        perm.sort_by_key(|&k| area[k]); // stable: equal areas keep manifest order
    }
    perm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascending_and_stable() {
        // areas: r0 = 2, r1 = 0, r2 = 1, r3 = 2
        let masks = [1, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1];
        assert_eq!(
            rater_permutation(RaterOrder::AreaRank, &masks, 4),
            vec![1, 2, 0, 3]
        );
        assert_eq!(
            rater_permutation(RaterOrder::Identity, &masks, 4),
            vec![0, 1, 2, 3]
        );
    }
}
