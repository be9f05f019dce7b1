//! Majority voting over the raters present for a slice (baselines.md §2.2).
//!
//! With R = 4 raters a 2-vs-2 tie is common on LIDC and the sources disagree on it, so the
//! tie rule is explicit: `strict` (V > R/2, ties go to background — Pionono's
//! `scipy.stats.mode` behaviour and our default), `inclusive` (V ≥ R/2, ties go to
//! foreground) and `soft` (V/R, TAB's "mean voting" target).
use serde::{Deserialize, Serialize};

/// Tie rule of majority voting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MvRule {
    /// Foreground where more than half of the present raters marked it.
    #[default]
    Strict,
    /// Foreground where at least half of the present raters marked it.
    Inclusive,
    /// The fraction of present raters who marked the pixel (a soft target).
    Soft,
}

/// Fuses `masks` (`[R, H·W]` row-major, 0/1) over the raters with `present[r]`, returning
/// `[H·W]`. With no rater present the label is all zero (nobody marked anything).
///
/// Panics if `masks.len() != present.len() * hw` (a programming error, not bad data).
pub fn majority_vote(masks: &[u8], present: &[bool], hw: usize, rule: MvRule) -> Vec<f32> {
    assert_eq!(masks.len(), present.len() * hw, "masks must be [R, H*W]");
    let raters: Vec<usize> = (0..present.len()).filter(|&r| present[r]).collect();
    let n = raters.len();
    if n == 0 {
        return vec![0.0; hw];
    }
    (0..hw)
        .map(|p| {
            let votes: usize = raters
                .iter()
                .map(|&r| (masks[r * hw + p] != 0) as usize)
                .sum();
            match rule {
                // Compare 2V with R to stay in integers: V > R/2  <=>  2V > R.
                MvRule::Strict => ((2 * votes > n) as u8) as f32,
                MvRule::Inclusive => ((2 * votes >= n) as u8) as f32,
                MvRule::Soft => votes as f32 / n as f32,
            }
        })
        .collect()
}
