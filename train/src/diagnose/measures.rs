//! The per-slice measures of `dpersona diagnose`, on tensors: each takes a batch and
//! returns one value per slice (and per rater, head or latent dimension).
//!
//! Conventions follow the eval crate's so a number here reads like one in a metric frame:
//! a prediction is foreground where p > 0.5 (strict), Dice is (2|A∩B| + ε)/(|A| + |B| + ε)
//! with ε = 1e-8 (two empty masks score 1).
use tch::{Kind, Tensor};

/// The eval crate's Dice epsilon (`MetricOptions::dice_eps`).
pub const DICE_EPS: f64 = 1e-8;

/// Logits `[B, N, H, W]` → foreground masks `[B, N, H·W]` as f64 0/1.
pub fn binarise(logits: &Tensor) -> Tensor {
    let (b, n) = (logits.size()[0], logits.size()[1]);
    logits
        .sigmoid()
        .gt(0.5)
        .to_kind(Kind::Double)
        .view([b, n, -1])
}

/// Dice of every mask of `a` `[B, N, P]` against every mask of `b` `[B, M, P]` (0/1) →
/// `[B, N, M]`.
pub fn dice_matrix(a: &Tensor, b: &Tensor) -> Tensor {
    let inter = a.matmul(&b.transpose(1, 2));
    let area_a = a.sum_dim_intlist(-1, false, None).unsqueeze(2);
    let area_b = b.sum_dim_intlist(-1, false, None).unsqueeze(1);
    (inter * 2.0 + DICE_EPS) / (area_a + area_b + DICE_EPS)
}

/// Mean pairwise distance 1 − IoU between the N masks of each slice `[B, N, P]` over the
/// N(N−1) ordered pairs of distinct samples → `[B]`; two empty masks are identical
/// (distance 0: this measures how much the samples differ, not the GED's convention).
/// 0 means every sample is the same mask. N = 1 gives 0.
pub fn mean_pairwise_distance(masks: &Tensor) -> Tensor {
    let n = masks.size()[1];
    if n < 2 {
        return masks
            .zeros_like()
            .sum_dim_intlist([1i64, 2].as_slice(), false, None);
    }
    let inter = masks.matmul(&masks.transpose(1, 2));
    let area = masks.sum_dim_intlist(-1, false, None);
    let union = area.unsqueeze(2) + area.unsqueeze(1) - &inter;
    let iou = inter / union.clamp_min(1.0);
    let both_empty = union.eq(0.0).to_kind(Kind::Double);
    let distance: Tensor = (1.0 - iou) * (1.0 - both_empty);
    // The diagonal is 0 (a mask against itself), so the sum is over distinct pairs.
    distance.sum_dim_intlist([1i64, 2].as_slice(), false, None) / (n * (n - 1)) as f64
}

/// Distinct binary masks among the N of each slice (host `[B, N, P]` 0/1, row-major) → B
/// counts. Exact comparison of the bits: 1 means the whole bank decodes to one mask.
pub fn distinct_masks(masks: &Tensor) -> Vec<usize> {
    let (b, n, p) = masks.size3().expect("masks must be [B, N, P]");
    let flat: Vec<u8> = Vec::try_from(
        masks
            .to_kind(Kind::Uint8)
            .to_device(tch::Device::Cpu)
            .contiguous()
            .view([-1]),
    )
    .expect("masks convert to u8");
    let (n, p) = (n as usize, p as usize);
    (0..b as usize)
        .map(|i| {
            let mut rows: Vec<&[u8]> = (0..n)
                .map(|k| &flat[(i * n + k) * p..(i * n + k + 1) * p])
                .collect();
            rows.sort_unstable();
            rows.dedup();
            rows.len()
        })
        .collect()
}

/// Entropy of attention weights `[.., M]` (rows sum to 1) divided by ln M → `[..]`: 1 is
/// uniform attention (the head averages the bank), 0 picks one draw. M = 1 gives 0.
pub fn normalised_entropy(weights: &Tensor) -> Tensor {
    let m = *weights.size().last().expect("weights have a last axis");
    if m < 2 {
        return weights.sum_dim_intlist(-1, false, None) * 0.0;
    }
    let w = weights.to_kind(Kind::Double);
    // 0·ln 0 = 0.
    let plogp = &w * w.clamp_min(1e-300).log();
    -plogp.sum_dim_intlist(-1, false, None) / (m as f64).ln()
}

/// Mean pairwise Dice between the masks of each slice `[B, N, P]` over its distinct pairs
/// whose entries of `keep` `[B, N]` (bool) are both true → (`[B]` means, `[B]` pair counts).
/// Slices with fewer than two kept masks have count 0 (their mean is meaningless).
pub fn mean_pairwise_dice(masks: &Tensor, keep: &Tensor) -> (Tensor, Tensor) {
    let n = masks.size()[1];
    let d = dice_matrix(masks, masks);
    let k = keep.to_kind(Kind::Double);
    let off_diagonal: Tensor = 1.0 - Tensor::eye(n, (Kind::Double, masks.device()));
    let pairs = k.unsqueeze(2) * k.unsqueeze(1) * off_diagonal.unsqueeze(0);
    let count = pairs.sum_dim_intlist([1i64, 2].as_slice(), false, None);
    let sum = (d * &pairs).sum_dim_intlist([1i64, 2].as_slice(), false, None);
    (sum / count.clamp_min(1.0), count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[1, N, 4]` 0/1 masks from rows of 4 pixels.
    fn masks(rows: &[[f64; 4]]) -> Tensor {
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).view([1, rows.len() as i64, 4])
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
    }

    #[test]
    fn dice_matrix_counts_overlap_and_scores_empty_pairs_one() {
        let a = masks(&[[1., 1., 0., 0.], [0., 0., 0., 0.]]);
        let b = masks(&[[1., 0., 0., 0.], [0., 0., 0., 0.], [0., 0., 1., 1.]]);
        let d = values(&dice_matrix(&a, &b));
        // {0,1} vs {0}: 2·1/3; vs empty: ε/(2+ε) ≈ 0; vs {2,3}: 0.
        assert!((d[0] - (2.0 + DICE_EPS) / (3.0 + DICE_EPS)).abs() < 1e-15);
        assert!(d[1] < 1e-8 && d[2] < 1e-8);
        // empty vs {0}: 0, empty vs empty: 1.
        assert!(d[3] < 1e-8);
        assert!((d[4] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn pairwise_distance_is_zero_for_copies_and_one_for_disjoint_masks() {
        let same = masks(&[[1., 1., 0., 0.], [1., 1., 0., 0.], [1., 1., 0., 0.]]);
        assert_eq!(values(&mean_pairwise_distance(&same)), vec![0.0]);
        let empty = masks(&[[0.; 4], [0.; 4]]);
        assert_eq!(values(&mean_pairwise_distance(&empty)), vec![0.0]);
        let disjoint = masks(&[[1., 0., 0., 0.], [0., 1., 0., 0.]]);
        assert_eq!(values(&mean_pairwise_distance(&disjoint)), vec![1.0]);
        // {0,1} and {1,2}: IoU 1/3, distance 2/3; with a copy of the first, 2 of the 6
        // ordered pairs are copies: (4 · 2/3) / 6 = 4/9.
        let three = masks(&[[1., 1., 0., 0.], [0., 1., 1., 0.], [1., 1., 0., 0.]]);
        assert!((values(&mean_pairwise_distance(&three))[0] - 4.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn distinct_masks_counts_exact_copies_once() {
        let m = masks(&[
            [1., 1., 0., 0.],
            [0., 1., 1., 0.],
            [1., 1., 0., 0.],
            [0.; 4],
        ]);
        assert_eq!(distinct_masks(&m), vec![3]);
    }

    #[test]
    fn entropy_is_one_for_uniform_and_zero_for_one_hot_weights() {
        let w = Tensor::from_slice(&[0.25f64, 0.25, 0.25, 0.25, 1.0, 0.0, 0.0, 0.0]).view([2, 4]);
        let h = values(&normalised_entropy(&w));
        assert!((h[0] - 1.0).abs() < 1e-12);
        assert!(h[1].abs() < 1e-12);
        // Two of four equally weighted: ln 2 / ln 4 = 1/2.
        let half = Tensor::from_slice(&[0.5f64, 0.5, 0.0, 0.0]).view([1, 4]);
        assert!((values(&normalised_entropy(&half))[0] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn pairwise_dice_skips_masks_not_kept() {
        let m = masks(&[[1., 1., 0., 0.], [1., 0., 0., 0.], [0., 0., 1., 1.]]);
        let keep = Tensor::from_slice(&[true, true, false]).view([1, 3]);
        let (mean, count) = mean_pairwise_dice(&m, &keep);
        assert_eq!(values(&count), vec![2.0]);
        assert!((values(&mean)[0] - (2.0 + DICE_EPS) / (3.0 + DICE_EPS)).abs() < 1e-15);
        let none = Tensor::from_slice(&[true, false, false]).view([1, 3]);
        assert_eq!(values(&mean_pairwise_dice(&m, &none).1), vec![0.0]);
    }
}
