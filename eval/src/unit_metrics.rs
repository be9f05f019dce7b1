//! The multi-rater metrics of method.md §5, computed for one evaluation unit (a 2D slice,
//! or a 3D volume given as its slices concatenated), exactly as the authors' code defines
//! them, with every convention an explicit [`MetricOptions`] field.
//!
//! Inputs per unit: R rater slots (`None` = the rater did not read the study; only PRESENT
//! raters are scored and [`UnitScores::raters_present`] records which) as 0/1 bytes `[P]`,
//! and N predicted probability maps `[P]` (Stage-I samples, or one map per Stage-II head).
//!
//! Names (the authors' code calls the two Dice_max directions the other way round):
//! - `dice_max` = mean over raters of each rater's best sample (paper Fig. 3; the authors'
//!   `Dice_max_reverse`, the one their training validation logs);
//! - `dice_max_per_sample` = mean over samples of each sample's best rater (the authors'
//!   evaluation-script `Dice_max`).
use rayon::prelude::*;

use crate::bitmask::BitMask;
use crate::lsap::linear_sum_assignment;

/// The conventions every metric depends on. `Default` is the authors' evaluation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricOptions {
    /// Predictions are foreground where `p > threshold` (strict).
    pub threshold: f32,
    /// Dice(A,B) = (2|A∩B| + eps) / (|A| + |B| + eps): empty vs empty = 1.
    pub dice_eps: f64,
    /// IoU(A,B) = |A∩B| / (|A∪B| + eps), the GED distance being 1 − IoU.
    pub iou_eps: f64,
    /// GED distance of an empty-against-empty pair: 1 in the authors' code (the epsilon
    /// makes IoU 0), 0 in PHiSeg/MedicalMatting's convention.
    pub ged_empty_pair: f64,
    /// Thresholds of Dice_soft (strict `>` on both mean maps), averaged.
    pub soft_thresholds: Vec<f64>,
}

impl Default for MetricOptions {
    fn default() -> Self {
        MetricOptions {
            threshold: 0.5,
            dice_eps: 1e-8,
            iou_eps: 1e-8,
            ged_empty_pair: 1.0,
            soft_thresholds: vec![0.1, 0.3, 0.5, 0.7, 0.9],
        }
    }
}

/// Why a unit could not be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    #[error("no rater is present in this unit")]
    NoRaters,
    #[error("no prediction was given for this unit")]
    NoPredictions,
    #[error("{what} has {got} pixels, expected {expected} (the size of the first rater mask)")]
    SizeMismatch {
        what: String,
        expected: usize,
        got: usize,
    },
}

/// Every metric of one unit. Per-rater vectors have one entry per rater SLOT `[R]` (`None`
/// where the rater is missing or, for matched values with N < R, left unassigned).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitScores {
    /// `[R]`: which rater slots were scored.
    pub raters_present: Vec<bool>,
    /// N, the number of predictions compared against the raters.
    pub n_outputs: usize,
    /// Generalised energy distance with d = 1 − IoU over all ordered pairs incl. self pairs.
    pub ged: f64,
    /// Mean over `soft_thresholds` of Dice(mean label > t, mean probability > t).
    pub dice_soft: f64,
    /// Mean over present raters of max over predictions of Dice (rater's best sample).
    pub dice_max: f64,
    /// Mean over predictions of max over present raters of Dice (sample's best rater).
    pub dice_max_per_sample: f64,
    /// Mean Dice of the one-to-one assignment raters <-> predictions maximising total Dice
    /// (SciPy-compatible LSAP on 1 − Dice). With N < R only N raters are assigned and the
    /// mean runs over those N pairs, as `M[linear_sum_assignment(1-M)].mean()` does.
    pub dice_match: f64,
    /// `[R]`: index of the prediction assigned to each rater slot.
    pub matched_prediction: Vec<Option<usize>>,
    /// `[R]`: the authors' per-rater Dice ("Dice_each"): Dice with the assigned prediction.
    pub dice_rater_matched: Vec<Option<f64>>,
    /// `[R]`: Dice(prediction k, rater k), fixed correspondence; `None` unless N == R
    /// (personalised heads), where it is what "personalised" means.
    pub dice_rater_identity: Option<Vec<Option<f64>>>,
    /// Mean of `dice_rater_matched` over assigned raters (equals `dice_match`).
    pub dice_mean_matched: f64,
    /// Mean of `dice_rater_identity` over present raters (N == R only).
    pub dice_mean_identity: Option<f64>,
}

/// The Dice helper of method.md §5.2 on counts.
pub fn dice_from_counts(intersection: u64, a: u64, b: u64, eps: f64) -> f64 {
    ((2 * intersection) as f64 + eps) / ((a + b) as f64 + eps)
}

/// Dice of two packed masks.
pub fn dice(a: &BitMask, b: &BitMask, eps: f64) -> f64 {
    dice_from_counts(a.intersection(b), a.count(), b.count(), eps)
}

/// GED distance 1 − IoU, with the configured value for empty-against-empty pairs.
pub fn ged_distance(a: &BitMask, b: &BitMask, opts: &MetricOptions) -> f64 {
    let inter = a.intersection(b);
    distance_from_counts(inter, a.union_given(b, inter), opts)
}

/// 1 − |A∩B| / (|A∪B| + eps), or `ged_empty_pair` when the union is empty.
pub fn distance_from_counts(intersection: u64, union: u64, opts: &MetricOptions) -> f64 {
    if union == 0 {
        return opts.ged_empty_pair;
    }
    1.0 - intersection as f64 / (union as f64 + opts.iou_eps)
}

/// Sum of d over ALL ordered pairs of `masks` (diagonal included), via the upper triangle.
fn within_set_distance_sum(masks: &[BitMask], opts: &MetricOptions) -> f64 {
    let n = masks.len();
    let rows: Vec<(f64, f64)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let diag = ged_distance(&masks[i], &masks[i], opts);
            let off: f64 = (i + 1..n)
                .map(|j| ged_distance(&masks[i], &masks[j], opts))
                .sum();
            (diag, off)
        })
        .collect();
    rows.iter().map(|(d, o)| d + 2.0 * o).sum()
}

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (s, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    s / n as f64
}

/// Scores one unit. `raters`: R slots of `[P]` 0/1 bytes (`None` = missing);
/// `probs`: N maps `[P]` of probabilities in [0, 1].
pub fn score_unit(
    raters: &[Option<&[u8]>],
    probs: &[&[f32]],
    opts: &MetricOptions,
) -> Result<UnitScores, ScoreError> {
    let present: Vec<usize> = (0..raters.len()).filter(|&k| raters[k].is_some()).collect();
    let Some(&first) = present.first() else {
        return Err(ScoreError::NoRaters);
    };
    if probs.is_empty() {
        return Err(ScoreError::NoPredictions);
    }
    let p = raters[first].unwrap().len();
    for &k in &present {
        let got = raters[k].unwrap().len();
        if got != p {
            return Err(ScoreError::SizeMismatch {
                what: format!("rater slot {}", k + 1),
                expected: p,
                got,
            });
        }
    }
    for (j, map) in probs.iter().enumerate() {
        if map.len() != p {
            return Err(ScoreError::SizeMismatch {
                what: format!("prediction {j}"),
                expected: p,
                got: map.len(),
            });
        }
    }
    let labels: Vec<BitMask> = present
        .iter()
        .map(|&k| BitMask::from_bytes(raters[k].unwrap()))
        .collect();
    // One pass over each probability map: its mask and its share of Dice_soft's mean map
    // (summed in f64, in sample order).
    let mut prob_sum = vec![0.0f64; p];
    let preds: Vec<BitMask> = probs
        .iter()
        .map(|m| BitMask::from_probs_accumulating(m, opts.threshold, &mut prob_sum))
        .collect();
    let (r, n) = (labels.len(), preds.len());

    // Cross intersections |Y_i ∩ S_j|, shared by GED and the Dice matrix. `[r, n]`.
    let cross_inter: Vec<u64> = labels
        .iter()
        .flat_map(|y| preds.iter().map(move |s| y.intersection(s)))
        .collect();

    // GED (method.md §5.3).
    let cross: f64 = (0..r * n)
        .map(|ij| {
            let (y, s) = (&labels[ij / n], &preds[ij % n]);
            distance_from_counts(cross_inter[ij], y.union_given(s, cross_inter[ij]), opts)
        })
        .sum();
    let ged = 2.0 * cross / (r * n) as f64
        - within_set_distance_sum(&labels, opts) / (r * r) as f64
        - within_set_distance_sum(&preds, opts) / (n * n) as f64;

    let dice_soft = soft_dice(&present, raters, prob_sum, n, opts);

    // Dice matrix M[i, j] = Dice(Y_i, S_j) over present raters (method.md §5.5). `[r, n]`.
    let m: Vec<f64> = (0..r * n)
        .map(|ij| {
            dice_from_counts(
                cross_inter[ij],
                labels[ij / n].count(),
                preds[ij % n].count(),
                opts.dice_eps,
            )
        })
        .collect();
    let dice_max = mean((0..r).map(|i| {
        m[i * n..(i + 1) * n]
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max)
    }));
    let dice_max_per_sample = mean((0..n).map(|j| {
        (0..r)
            .map(|i| m[i * n + j])
            .fold(f64::NEG_INFINITY, f64::max)
    }));

    let cost: Vec<f64> = m.iter().map(|d| 1.0 - d).collect();
    let pairs = linear_sum_assignment(&cost, r, n).expect("1 − Dice is finite");
    let mut matched_prediction = vec![None; raters.len()];
    let mut dice_rater_matched = vec![None; raters.len()];
    for &(i, j) in &pairs {
        matched_prediction[present[i]] = Some(j);
        dice_rater_matched[present[i]] = Some(m[i * n + j]);
    }
    let dice_match = mean(pairs.iter().map(|&(i, j)| m[i * n + j]));

    let dice_rater_identity = (n == raters.len()).then(|| {
        (0..raters.len())
            .map(|k| present.iter().position(|&s| s == k).map(|i| m[i * n + k]))
            .collect::<Vec<_>>()
    });
    let dice_mean_identity = dice_rater_identity
        .as_ref()
        .map(|v| mean(v.iter().flatten().cloned()));

    Ok(UnitScores {
        raters_present: raters.iter().map(Option::is_some).collect(),
        n_outputs: n,
        ged,
        dice_soft,
        dice_max,
        dice_max_per_sample,
        dice_match,
        matched_prediction,
        dice_mean_matched: dice_match,
        dice_rater_matched,
        dice_rater_identity,
        dice_mean_identity,
    })
}

/// Dice_soft (method.md §5.4): mean probability over the N samples (`prob_sum` `[P]`, the
/// f64 sum accumulated in sample order while binarising) and mean label over present
/// raters, each thresholded with strict `>` per t.
fn soft_dice(
    present: &[usize],
    raters: &[Option<&[u8]>],
    prob_sum: Vec<f64>,
    n: usize,
    opts: &MetricOptions,
) -> f64 {
    let p = prob_sum.len();
    let r = present.len() as f64;
    let mut pred_mean = prob_sum;
    pred_mean.iter_mut().for_each(|v| *v /= n as f64);
    let mut votes = vec![0u32; p];
    for &k in present {
        for (acc, &v) in votes.iter_mut().zip(raters[k].unwrap()) {
            *acc += (v != 0) as u32;
        }
    }
    let label_mean: Vec<f64> = votes.iter().map(|&v| v as f64 / r).collect();
    mean(opts.soft_thresholds.iter().map(|&t| {
        let y = BitMask::from_values(&label_mean, |&v| v > t);
        let s = BitMask::from_values(&pred_mean, |&v| v > t);
        dice(&y, &s, opts.dice_eps)
    }))
}

/// One unit's inputs, borrowed: `raters` R slots `[P]` (None = missing), `probs` N maps `[P]`.
#[derive(Debug, Clone)]
pub struct UnitInput<'a> {
    pub raters: Vec<Option<&'a [u8]>>,
    pub probs: Vec<&'a [f32]>,
}

/// Scores many units in parallel (rayon), results in input order.
pub fn score_units(
    units: &[UnitInput<'_>],
    opts: &MetricOptions,
) -> Vec<Result<UnitScores, ScoreError>> {
    units
        .par_iter()
        .map(|u| score_unit(&u.raters, &u.probs, opts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_sets_have_only_the_diagonal_terms() {
        // Two non-empty identical masks: every cross/within distance is ~0, so GED ~ 0 and
        // every Dice is 1.
        let y = [1u8, 1, 0, 0];
        let probs = [0.9f32, 0.8, 0.1, 0.0];
        let s = score_unit(
            &[Some(&y), Some(&y)],
            &[&probs, &probs],
            &MetricOptions::default(),
        )
        .unwrap();
        assert!(s.ged.abs() < 1e-7);
        assert!((s.dice_match - 1.0).abs() < 1e-12);
        assert_eq!(s.dice_rater_identity.unwrap(), vec![Some(1.0), Some(1.0)]);
    }

    #[test]
    fn empty_pairs_follow_the_option() {
        // Everything empty: cross = within = ged_empty_pair, so GED = 2c − c − c = 0 either
        // way, while Dice is 1 (empty vs empty).
        let y = [0u8; 8];
        let p = [0.0f32; 8];
        for c in [0.0, 1.0] {
            let opts = MetricOptions {
                ged_empty_pair: c,
                ..Default::default()
            };
            let s = score_unit(&[Some(&y)], &[&p], &opts).unwrap();
            assert_eq!(s.ged, 0.0);
            assert_eq!(s.dice_max, 1.0);
        }
        // One empty and one full rater against one empty sample: the options differ.
        let full = [1u8; 8];
        let g = |c: f64| {
            let opts = MetricOptions {
                ged_empty_pair: c,
                ..Default::default()
            };
            score_unit(&[Some(&y), Some(&full)], &[&p], &opts)
                .unwrap()
                .ged
        };
        // c=1: cross mean 1, within-raters (1+~0+1+1)/4, within-preds 1 -> 2 - 0.75 - 1.
        assert!((g(1.0) - 0.25).abs() < 1e-7);
        // c=0: cross mean (0+1)/2, within-raters (0+0+1+1)/4, preds 0 -> 1 - 0.5.
        assert!((g(0.0) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn missing_raters_are_skipped_and_sizes_checked() {
        let y = [1u8, 0];
        let p = [1.0f32, 0.0];
        let s = score_unit(&[None, Some(&y)], &[&p, &p], &MetricOptions::default()).unwrap();
        assert_eq!(s.raters_present, vec![false, true]);
        assert_eq!(s.dice_rater_matched[0], None);
        assert_eq!(s.dice_rater_identity.unwrap(), vec![None, Some(1.0)]);
        assert_eq!(
            score_unit(&[None, None], &[&p], &MetricOptions::default()),
            Err(ScoreError::NoRaters)
        );
        let short = [1.0f32];
        assert!(matches!(
            score_unit(&[Some(&y)], &[&short], &MetricOptions::default()),
            Err(ScoreError::SizeMismatch { .. })
        ));
    }
}
