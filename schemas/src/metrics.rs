//! Metric frames, the output of `dpersona eval`: tidy, one value per row.
//!
//! Conventions that hold for a whole file (binarisation threshold, Dice epsilon, the GED
//! distance of an empty-against-empty pair, ...) are JSON under [`KEY_CONVENTIONS`];
//! what may vary between rows of a combined file (seed, checkpoint) is a column.
use arrow::datatypes::{DataType, FieldRef};
use serde::{Deserialize, Serialize};

use crate::meta::SchemaId;
use crate::records::{field, Table};

/// Metadata key holding the evaluation conventions as JSON.
pub const KEY_CONVENTIONS: &str = "dpersona.conventions";

/// One metric value for one evaluation unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRecord {
    /// Run folder name (or the label given to external predictions).
    pub run: String,
    /// Method name (`dpersona`, `prob-unet`, `mv`, ...).
    pub method: String,
    /// Stage (1 or 2 for D-Persona; 1 for single-stage methods).
    pub stage: u8,
    /// Prior samples drawn per unit (Stage I and sample-based methods), else 0.
    pub n_samples: u32,
    /// Bank size M of Stage II, else 0.
    pub bank: u32,
    /// Number of predictions S the metrics compared against the raters.
    pub n_outputs: u32,
    pub fold: u32,
    pub study_id: String,
    pub target_id: String,
    /// `slice` or `volume`.
    pub unit: String,
    /// Index of the unit within the evaluated split.
    pub unit_index: u32,
    pub metric: String,
    pub value: f64,
    pub seed: u64,
    /// SHA-256 of the checkpoint the predictions came from (empty for external ones).
    pub checkpoint_sha256: String,
}

impl Table for MetricRecord {
    const SCHEMA: SchemaId = SchemaId::new("metrics", 1);
    fn fields() -> Vec<FieldRef> {
        vec![
            field("run", DataType::Utf8),
            field("method", DataType::Utf8),
            field("stage", DataType::UInt8),
            field("n_samples", DataType::UInt32),
            field("bank", DataType::UInt32),
            field("n_outputs", DataType::UInt32),
            field("fold", DataType::UInt32),
            field("study_id", DataType::Utf8),
            field("target_id", DataType::Utf8),
            field("unit", DataType::Utf8),
            field("unit_index", DataType::UInt32),
            field("metric", DataType::Utf8),
            field("value", DataType::Float64),
            field("seed", DataType::UInt64),
            field("checkpoint_sha256", DataType::Utf8),
        ]
    }
}

/// Mean and population std of one metric over the units of one evaluation (`fold` set),
/// or over the fold means (`fold` = None).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRecord {
    pub run: String,
    pub method: String,
    pub stage: u8,
    pub n_samples: u32,
    pub bank: u32,
    pub n_outputs: u32,
    pub fold: Option<u32>,
    pub metric: String,
    pub mean: f64,
    /// Population standard deviation (ddof = 0), as the paper reports over folds.
    pub std: f64,
    /// Units (per-fold rows) or folds (across-fold rows) averaged.
    pub count: u32,
}

impl Table for SummaryRecord {
    const SCHEMA: SchemaId = SchemaId::new("metrics_summary", 1);
    fn fields() -> Vec<FieldRef> {
        vec![
            field("run", DataType::Utf8),
            field("method", DataType::Utf8),
            field("stage", DataType::UInt8),
            field("n_samples", DataType::UInt32),
            field("bank", DataType::UInt32),
            field("n_outputs", DataType::UInt32),
            std::sync::Arc::new(arrow::datatypes::Field::new("fold", DataType::UInt32, true)),
            field("metric", DataType::Utf8),
            field("mean", DataType::Float64),
            field("std", DataType::Float64),
            field("count", DataType::UInt32),
        ]
    }
}
