//! The statistics of the report: percentile bootstrap intervals of a mean over units, paired
//! differences, and the Wilcoxon signed-rank p-value.
//!
//! Why a bootstrap over units: the paper's "mean ± std over folds" says how much four
//! numbers differ, not how sure one mean is; units (slices, volumes) are the independent
//! draws of a test set, so resampling them gives the interval a reader needs to say whether
//! two methods differ. Why percentile (not BCa): it is what a reader can redo in three lines
//! of numpy, and with hundreds of units the two agree.
//!
//! Determinism: the resamples come from SplitMix64 seeded with [`DEFAULT_SEED`] (a fixed,
//! tiny generator of our own, so the numbers of a report never change with a `rand`
//! upgrade); [`bootstrap_indices`] yields exactly the indices the intervals used, so a test
//! can hand them to numpy.
//!
//! Why `libm::erfc` for the normal tail: scipy's `ndtr` is cephes' erfc; libm's is musl's,
//! accurate to an ulp, so the p-values agree with scipy to ~1e-15 instead of the 1e-7 of a
//! textbook rational approximation.

/// Resamples per interval.
pub const DEFAULT_RESAMPLES: usize = 2000;
/// Seed of the resampling generator (fixed, so a report is reproducible).
pub const DEFAULT_SEED: u64 = 0x5EED_D9E5_0AA1_2024;
/// Coverage of the intervals.
pub const LEVEL: f64 = 0.95;

/// SplitMix64 (Steele, Lea & Flood 2014): 64 bits of state, passes BigCrush, one multiply
/// chain per draw.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index in `0..n` (multiply-shift; the bias is below 2^-40 for any test set).
    pub fn index(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// A mean and its percentile bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

/// The `q`-quantile (0..=1) of sorted values, numpy's default ("linear") definition.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let i = h.floor() as usize;
    let t = h - i as f64;
    if i + 1 >= sorted.len() {
        return sorted[sorted.len() - 1];
    }
    let (a, b) = (sorted[i], sorted[i + 1]);
    // numpy's _lerp: from the nearer end, so the result is monotone in t.
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// The resample indices [`bootstrap_stratified`] draws with `seed`: `resamples` rows, each
/// the concatenation over strata of `sizes[s]` indices into stratum `s`. For tests.
pub fn bootstrap_indices(sizes: &[usize], resamples: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = SplitMix64::new(seed);
    (0..resamples)
        .map(|_| {
            sizes
                .iter()
                .flat_map(|&n| (0..n).map(|_| rng.index(n)).collect::<Vec<_>>())
                .collect()
        })
        .collect()
}

/// Percentile bootstrap of the mean over strata of per-stratum means (the across-fold mean
/// of the paper: each fold's units are resampled within the fold, the fold means averaged).
/// One stratum is the plain bootstrap of a mean. None when a stratum is empty.
pub fn bootstrap_stratified(strata: &[Vec<f64>], resamples: usize, seed: u64) -> Option<Interval> {
    if strata.is_empty() || strata.iter().any(|s| s.is_empty()) || resamples == 0 {
        return None;
    }
    let point = strata.iter().map(|s| mean(s)).sum::<f64>() / strata.len() as f64;
    let mut rng = SplitMix64::new(seed);
    let mut stats: Vec<f64> = (0..resamples)
        .map(|_| {
            strata
                .iter()
                .map(|s| {
                    let n = s.len();
                    (0..n).map(|_| s[rng.index(n)]).sum::<f64>() / n as f64
                })
                .sum::<f64>()
                / strata.len() as f64
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let tail = (1.0 - LEVEL) / 2.0;
    Some(Interval {
        mean: point,
        lo: quantile_sorted(&stats, tail),
        hi: quantile_sorted(&stats, 1.0 - tail),
    })
}

/// Percentile bootstrap of the mean of `values` ([`DEFAULT_RESAMPLES`], [`DEFAULT_SEED`]).
pub fn bootstrap_mean(values: &[f64]) -> Option<Interval> {
    bootstrap_stratified(&[values.to_vec()], DEFAULT_RESAMPLES, DEFAULT_SEED)
}

/// Two-sided Wilcoxon signed-rank p-value of paired differences `d`, as
/// `scipy.stats.wilcoxon(d, zero_method='wilcox', correction=False, method='asymptotic')`
/// (`'approx'` in older scipy): zeros dropped, average ranks of |d|, the variance reduced by
/// Σ(t³ − t)/48 over tie groups, p = 2·Φ(−|z|). None when every difference is zero.
pub fn wilcoxon_p(d: &[f64]) -> Option<f64> {
    let mut nz: Vec<f64> = d.iter().copied().filter(|&x| x != 0.0).collect();
    let n = nz.len();
    if n == 0 {
        return None;
    }
    nz.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    let mut r_plus = 0.0;
    let mut tie_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && nz[j + 1].abs() == nz[i].abs() {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let rank = (i + j + 2) as f64 / 2.0;
        let t = (j - i + 1) as f64;
        tie_sum += t * t * t - t;
        r_plus += nz[i..=j].iter().filter(|&&x| x > 0.0).count() as f64 * rank;
        i = j + 1;
    }
    let nf = n as f64;
    let mn = nf * (nf + 1.0) * 0.25;
    let var = (nf * (nf + 1.0) * (2.0 * nf + 1.0) - tie_sum / 2.0) / 24.0;
    if var <= 0.0 {
        return None;
    }
    let z = (r_plus - mn) / var.sqrt();
    // 2·Φ(−|z|) = erfc(|z|/√2).
    Some(libm::erfc(z.abs() / std::f64::consts::SQRT_2))
}

/// Where a paired difference's interval lies relative to zero and the claimed side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The whole interval is on the claimed side of 0.
    Holds,
    /// The whole interval is on the other side.
    DoesNotHold,
    /// The interval touches or covers 0.
    Undecided,
}

impl Verdict {
    /// `claimed_positive`: the claim says the difference is > 0 (else < 0).
    pub fn of(iv: &Interval, claimed_positive: bool) -> Verdict {
        let (above, below) = (iv.lo > 0.0, iv.hi < 0.0);
        match (above, below, claimed_positive) {
            (true, _, true) | (_, true, false) => Verdict::Holds,
            (true, _, false) | (_, true, true) => Verdict::DoesNotHold,
            _ => Verdict::Undecided,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::Undecided => "undecided",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_is_numpys_linear() {
        // np.quantile([1, 2, 4, 8], [0, 0.25, 0.5, 0.975, 1]) = 1, 1.75, 3, 7.7, 8
        let s = [1.0, 2.0, 4.0, 8.0];
        let got: Vec<f64> = [0.0, 0.25, 0.5, 0.975, 1.0]
            .iter()
            .map(|&q| quantile_sorted(&s, q))
            .collect();
        let want = [1.0, 1.75, 3.0, 7.7, 8.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?}");
        }
    }

    #[test]
    fn verdict_follows_the_interval() {
        let iv = |lo, hi| Interval { mean: 0.0, lo, hi };
        assert_eq!(Verdict::of(&iv(0.1, 0.2), true), Verdict::Holds);
        assert_eq!(Verdict::of(&iv(0.1, 0.2), false), Verdict::DoesNotHold);
        assert_eq!(Verdict::of(&iv(-0.2, -0.1), false), Verdict::Holds);
        assert_eq!(Verdict::of(&iv(-0.2, -0.1), true), Verdict::DoesNotHold);
        assert_eq!(Verdict::of(&iv(-0.1, 0.1), true), Verdict::Undecided);
        assert_eq!(Verdict::of(&iv(0.0, 0.1), true), Verdict::Undecided);
    }

    #[test]
    fn constant_values_give_a_point_interval_and_no_wilcoxon() {
        let iv = bootstrap_mean(&[0.5; 7]).unwrap();
        assert_eq!((iv.mean, iv.lo, iv.hi), (0.5, 0.5, 0.5));
        assert_eq!(wilcoxon_p(&[0.0, 0.0]), None);
        assert!(bootstrap_mean(&[]).is_none());
    }
}
