//! Binary STAPLE (Warfield, Zou & Wells 2004) as ITK's `STAPLEImageFilter` runs it
//! (baselines.md §2.4), so that SimpleITK's output is an independent reference.
//!
//! ITK's schedule, reproduced step by step:
//! 1. W = mean vote over raters (soft initial truth);
//! 2. prior γ = mean of W over all pixels × confidence weight, FIXED for the whole run;
//! 3. loop: M-step (p_r = ΣW·D / ΣW, q_r = Σ(1−W)(1−D) / Σ(1−W)), then E-step
//!    W = γ a / (γ a + (1−γ) b);
//! 4. stop after an iteration ≥ 2 where every (Δp_r)² and (Δq_r)² ≤ 1e-14, or at
//!    `max_iterations`.
//!
//! Deviations, all guards for inputs where ITK divides by zero or gets NaN:
//! - the E-step runs in log space with p, q clamped to [ε, 1−ε] only inside the logarithm
//!   (a rater with p = 1 would otherwise give log 0); the reported p, q are unclamped;
//! - nobody marked anything: all-zero label, no EM;
//! - every present rater drew the same mask (including "everything"): that mask, no EM;
//! - a zero M-step denominator (W all 0 or all 1 after an update) keeps the previous p or q;
//! - only present raters take part; missing raters get NaN sensitivity/specificity.
use serde::{Deserialize, Serialize};

/// STAPLE parameters (ITK's names and defaults, except the iteration cap: ITK has none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StapleParams {
    /// ITK `ConfidenceWeight`: scales the fixed foreground prior.
    pub confidence_weight: f64,
    /// ITK's convergence threshold on every squared change of p and q.
    pub min_sq_change: f64,
    /// Iteration cap (fepegar/staple's 1000); reaching it marks the result unconverged.
    pub max_iterations: u32,
    /// Clamp of p, q inside the log-space E-step.
    pub log_clamp: f64,
    /// Output: the soft posterior W, or W ≥ 0.5 (Pionono writes the hard map).
    pub output: StapleOutput,
    /// One EM per 2D slice (LIDC) or per 3D target volume (NPC).
    pub granularity: StapleGranularity,
}

impl Default for StapleParams {
    fn default() -> Self {
        Self {
            confidence_weight: 1.0,
            min_sq_change: 1e-14,
            max_iterations: 1000,
            log_clamp: 1e-12,
            output: StapleOutput::Hard,
            granularity: StapleGranularity::Slice,
        }
    }
}

/// What STAPLE hands to training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StapleOutput {
    /// [W ≥ 0.5] as 0/1.
    Hard,
    /// W itself, a soft target.
    Soft,
}

/// The set of pixels one EM run estimates p, q over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StapleGranularity {
    /// Each 2D slice on its own.
    Slice,
    /// All slices of one target (study + target id) together.
    Volume,
}

/// Result of one STAPLE run.
#[derive(Debug, Clone, PartialEq)]
pub struct StapleResult {
    /// `[N]` posterior P(T = 1 | D) per pixel (before `output` is applied).
    pub w: Vec<f64>,
    /// `[R]` sensitivity per rater (NaN for missing raters).
    pub sensitivity: Vec<f64>,
    /// `[R]` specificity per rater (NaN for missing raters).
    pub specificity: Vec<f64>,
    /// The fixed prior γ that was used.
    pub prior: f64,
    /// EM iterations run (ITK's `ElapsedIterations` counts the same loop, from 0).
    pub iterations: u32,
    pub converged: bool,
    /// Which guard decided the label without EM, if any.
    pub guard: Option<StapleGuard>,
}

/// Inputs STAPLE's EM is not run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StapleGuard {
    /// No present rater marked any pixel (or no rater is present).
    NothingMarked,
    /// All present raters drew the identical mask.
    Unanimous,
}

impl StapleResult {
    /// The training label per `output` as f32.
    pub fn label(&self, output: StapleOutput) -> Vec<f32> {
        match output {
            StapleOutput::Soft => self.w.iter().map(|&w| w as f32).collect(),
            StapleOutput::Hard => self.w.iter().map(|&w| ((w >= 0.5) as u8) as f32).collect(),
        }
    }
}

/// Runs STAPLE on `masks` (`[R, N]` row-major, 0/1; N pixels of a slice or a whole volume)
/// over the raters with `present[r]`.
///
/// Panics if `masks.len() != present.len() * n` (a programming error).
pub fn staple(masks: &[u8], present: &[bool], n: usize, params: &StapleParams) -> StapleResult {
    assert_eq!(masks.len(), present.len() * n, "masks must be [R, N]");
    let rows: Vec<usize> = (0..present.len()).filter(|&r| present[r]).collect();
    let nan = vec![f64::NAN; present.len()];
    let d = |r: usize, i: usize| masks[r * n + i] != 0;
    let guarded = |w: Vec<f64>, guard| {
        let mut sens = nan.clone();
        let mut spec = nan.clone();
        for &r in &rows {
            sens[r] = 1.0;
            spec[r] = 1.0;
        }
        StapleResult {
            w,
            sensitivity: sens,
            specificity: spec,
            prior: f64::NAN,
            iterations: 0,
            converged: true,
            guard: Some(guard),
        }
    };
    if rows.is_empty() || rows.iter().all(|&r| (0..n).all(|i| !d(r, i))) {
        return guarded(vec![0.0; n], StapleGuard::NothingMarked);
    }
    let first = rows[0];
    if rows.iter().all(|&r| (0..n).all(|i| d(r, i) == d(first, i))) {
        let w = (0..n).map(|i| d(first, i) as u8 as f64).collect();
        return guarded(w, StapleGuard::Unanimous);
    }

    let k = rows.len();
    // Initial W: the mean vote; the prior: its mean over pixels (ITK's g_t).
    let mut w: Vec<f64> = (0..n)
        .map(|i| rows.iter().filter(|&&r| d(r, i)).count() as f64 / k as f64)
        .collect();
    let prior = w.iter().sum::<f64>() / n as f64 * params.confidence_weight;

    let mut p = vec![1.0f64; k];
    let mut q = vec![1.0f64; k];
    let mut last_p = vec![-10.0f64; k];
    let mut last_q = vec![-10.0f64; k];
    let mut iterations = 0u32;
    let mut converged = false;
    let clamp = |v: f64| v.clamp(params.log_clamp, 1.0 - params.log_clamp);
    // A confidence weight > 1 could push the prior past 1; clamp it like p and q.
    let (log_g, log_1g) = (clamp(prior).ln(), (1.0 - clamp(prior)).ln());
    while iterations < params.max_iterations {
        // M-step.
        let (sum_w, sum_1w) = w
            .iter()
            .fold((0.0, 0.0), |(a, b), &wi| (a + wi, b + (1.0 - wi)));
        for (j, &r) in rows.iter().enumerate() {
            let (mut pn, mut qn) = (0.0, 0.0);
            for (i, &wi) in w.iter().enumerate() {
                if d(r, i) {
                    pn += wi;
                } else {
                    qn += 1.0 - wi;
                }
            }
            if sum_w > 0.0 {
                p[j] = pn / sum_w;
            }
            if sum_1w > 0.0 {
                q[j] = qn / sum_1w;
            }
        }
        // E-step in log space.
        let lp: Vec<(f64, f64)> = p
            .iter()
            .map(|&v| (clamp(v).ln(), (1.0 - clamp(v)).ln()))
            .collect();
        let lq: Vec<(f64, f64)> = q
            .iter()
            .map(|&v| (clamp(v).ln(), (1.0 - clamp(v)).ln()))
            .collect();
        for (i, wi) in w.iter_mut().enumerate() {
            let (mut la, mut lb) = (log_g, log_1g);
            for (j, &r) in rows.iter().enumerate() {
                if d(r, i) {
                    la += lp[j].0;
                    lb += lq[j].1;
                } else {
                    la += lp[j].1;
                    lb += lq[j].0;
                }
            }
            // a / (a + b) = 1 / (1 + exp(lb − la)), stable for either sign.
            *wi = 1.0 / (1.0 + (lb - la).exp());
        }
        let done = iterations != 0
            && (0..k).all(|j| {
                (p[j] - last_p[j]).powi(2) <= params.min_sq_change
                    && (q[j] - last_q[j]).powi(2) <= params.min_sq_change
            });
        last_p.copy_from_slice(&p);
        last_q.copy_from_slice(&q);
        if done {
            converged = true;
            break;
        }
        iterations += 1;
    }
    let mut sensitivity = nan.clone();
    let mut specificity = nan;
    for (j, &r) in rows.iter().enumerate() {
        sensitivity[r] = p[j];
        specificity[r] = q[j];
    }
    StapleResult {
        w,
        sensitivity,
        specificity,
        prior,
        iterations,
        converged,
        guard: None,
    }
}
