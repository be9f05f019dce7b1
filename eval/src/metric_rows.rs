//! Tidy metric rows ([`schemas::metrics::MetricRecord`]) from [`UnitScores`]: one row per
//! unit and metric, named by the constants in [`names`].
use schemas::metrics::MetricRecord;

use crate::unit_metrics::UnitScores;

/// Metric names as they appear in the `metric` column.
pub mod names {
    pub const GED: &str = "ged";
    pub const DICE_SOFT: &str = "dice_soft";
    /// Mean over raters of each rater's best sample (paper Fig. 3).
    pub const DICE_MAX: &str = "dice_max";
    /// Mean over samples of each sample's best rater (the authors' script's `Dice_max`).
    pub const DICE_MAX_PER_SAMPLE: &str = "dice_max_per_sample";
    pub const DICE_MATCH: &str = "dice_match";
    pub const DICE_MEAN_MATCHED: &str = "dice_mean_matched";
    pub const DICE_MEAN_IDENTITY: &str = "dice_mean_identity";

    /// `dice_rater_{k}_matched`, k = 1-based rater slot (the report's A_k).
    pub fn dice_rater_matched(k: usize) -> String {
        format!("dice_rater_{k}_matched")
    }

    /// `dice_rater_{k}_identity`, k = 1-based rater slot.
    pub fn dice_rater_identity(k: usize) -> String {
        format!("dice_rater_{k}_identity")
    }
}

/// Whether a unit is one 2D slice or one 3D volume (the `unit` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitKind {
    Slice,
    Volume,
}

impl UnitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Slice => "slice",
            UnitKind::Volume => "volume",
        }
    }
}

/// What identifies one evaluation (the columns shared by all its rows, and the key
/// (run, method, stage, n_samples, bank, fold) whose rows a new write replaces).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EvalContext {
    pub run: String,
    pub method: String,
    pub stage: u8,
    /// Prior samples per unit (Stage I / sample-based), else 0.
    pub n_samples: u32,
    /// Stage-II bank size M, else 0.
    pub bank: u32,
    pub fold: u32,
    pub seed: u64,
    /// SHA-256 of the checkpoint (empty for external predictions).
    pub checkpoint_sha256: String,
}

/// Which unit a score belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitId {
    pub study_id: String,
    pub target_id: String,
    pub kind: UnitKind,
    /// Index of the unit within the evaluated split.
    pub unit_index: u32,
    /// Slice units: the shard row's `slice_index`, so a metric row joins back to the slice
    /// it scored; `None` for volume units.
    pub slice_index: Option<i32>,
    /// Slice units: the shard row's `z_mm`, when the caller knows it (`None` otherwise; see
    /// [`crate::slice_positions::fill_z_mm`]).
    pub z_mm: Option<f64>,
}

impl UnitScores {
    /// `(metric name, value)` pairs, in a fixed order: `ged`, `dice_soft`, `dice_max`,
    /// `dice_max_per_sample`, `dice_match`, `dice_rater_k_matched` (assigned slots),
    /// `dice_mean_matched`, then when N == R `dice_rater_k_identity` (present slots) and
    /// `dice_mean_identity`.
    pub fn named_values(&self) -> Vec<(String, f64)> {
        let mut out = vec![
            (names::GED.to_string(), self.ged),
            (names::DICE_SOFT.to_string(), self.dice_soft),
            (names::DICE_MAX.to_string(), self.dice_max),
            (
                names::DICE_MAX_PER_SAMPLE.to_string(),
                self.dice_max_per_sample,
            ),
            (names::DICE_MATCH.to_string(), self.dice_match),
        ];
        for (k, v) in self.dice_rater_matched.iter().enumerate() {
            if let Some(v) = v {
                out.push((names::dice_rater_matched(k + 1), *v));
            }
        }
        out.push((names::DICE_MEAN_MATCHED.to_string(), self.dice_mean_matched));
        if let (Some(per), Some(m)) = (&self.dice_rater_identity, self.dice_mean_identity) {
            for (k, v) in per.iter().enumerate() {
                if let Some(v) = v {
                    out.push((names::dice_rater_identity(k + 1), *v));
                }
            }
            out.push((names::DICE_MEAN_IDENTITY.to_string(), m));
        }
        out
    }

    /// The unit's rows of the metric frame.
    pub fn to_records(&self, ctx: &EvalContext, unit: &UnitId) -> Vec<MetricRecord> {
        self.named_values()
            .into_iter()
            .map(|(metric, value)| MetricRecord {
                run: ctx.run.clone(),
                method: ctx.method.clone(),
                stage: ctx.stage,
                n_samples: ctx.n_samples,
                bank: ctx.bank,
                n_outputs: self.n_outputs as u32,
                fold: ctx.fold,
                study_id: unit.study_id.clone(),
                target_id: unit.target_id.clone(),
                unit: unit.kind.as_str().to_string(),
                unit_index: unit.unit_index,
                slice_index: unit.slice_index,
                z_mm: unit.z_mm,
                metric,
                value,
                seed: ctx.seed,
                checkpoint_sha256: ctx.checkpoint_sha256.clone(),
            })
            .collect()
    }
}
