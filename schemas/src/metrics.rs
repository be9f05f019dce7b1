//! Metric frames, the output of `dpersona eval`: tidy, one value per row.
//!
//! Conventions that hold for a whole file (binarisation threshold, Dice epsilon, the GED
//! distance of an empty-against-empty pair, ...) are JSON under [`KEY_CONVENTIONS`];
//! what may vary between rows of a combined file (seed, checkpoint) is a column.
//!
//! Version 2 added `slice_index` and `z_mm` (null for volume units), so a row joins back to
//! the shard slice it scored: `results.join(shards, on=[study_id, target_id, slice_index])`.
//! Version-1 frames still read, with both columns null.
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
    /// Slice units: the shard row's `slice_index` (the slice the value scores). Null for
    /// volume units and in rows read from version-1 frames.
    #[serde(default)]
    pub slice_index: Option<i32>,
    /// Slice units: the shard row's `z_mm`. Null like `slice_index`.
    #[serde(default)]
    pub z_mm: Option<f64>,
    pub metric: String,
    pub value: f64,
    pub seed: u64,
    /// SHA-256 of the checkpoint the predictions came from (empty for external ones).
    pub checkpoint_sha256: String,
}

impl Table for MetricRecord {
    const SCHEMA: SchemaId = SchemaId::new("metrics", 2);
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
            nullable("slice_index", DataType::Int32),
            nullable("z_mm", DataType::Float64),
            field("metric", DataType::Utf8),
            field("value", DataType::Float64),
            field("seed", DataType::UInt64),
            field("checkpoint_sha256", DataType::Utf8),
        ]
    }
}

/// Mean and population std of one metric over the units of one evaluation (`fold` set),
/// or over the fold means (`fold` = None), with a 95% bootstrap interval over units.
///
/// Version 2 added `ci_lo`, `ci_hi`, `n_units`, `seeds` and `seed_std` (null in rows read
/// from version-1 files). Several seeds (distinct `seed` values of one group): `mean` is the
/// mean over seeds of each seed's mean over units, `seed_std` the population std of those
/// seed means; `std` and `count` stay over the pooled values.
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
    /// Values (per-fold rows) or folds (across-fold rows) averaged.
    pub count: u32,
    /// 95% percentile bootstrap interval of `mean`, resampling units (each unit's value
    /// averaged over seeds); across-fold rows resample within each fold, then average the
    /// fold means (eval::stats).
    #[serde(default)]
    pub ci_lo: Option<f64>,
    #[serde(default)]
    pub ci_hi: Option<f64>,
    /// Distinct units (fold, study, target, slice/unit index) behind the row.
    #[serde(default)]
    pub n_units: Option<u32>,
    /// Distinct seeds behind the row.
    #[serde(default)]
    pub seeds: Option<u32>,
    /// Population std of the per-seed means; null with one seed.
    #[serde(default)]
    pub seed_std: Option<f64>,
}

impl Table for SummaryRecord {
    const SCHEMA: SchemaId = SchemaId::new("metrics_summary", 2);
    fn fields() -> Vec<FieldRef> {
        vec![
            field("run", DataType::Utf8),
            field("method", DataType::Utf8),
            field("stage", DataType::UInt8),
            field("n_samples", DataType::UInt32),
            field("bank", DataType::UInt32),
            field("n_outputs", DataType::UInt32),
            nullable("fold", DataType::UInt32),
            field("metric", DataType::Utf8),
            field("mean", DataType::Float64),
            field("std", DataType::Float64),
            field("count", DataType::UInt32),
            nullable("ci_lo", DataType::Float64),
            nullable("ci_hi", DataType::Float64),
            nullable("n_units", DataType::UInt32),
            nullable("seeds", DataType::UInt32),
            nullable("seed_std", DataType::Float64),
        ]
    }
}

/// A field that may hold nulls.
fn nullable(name: &str, dt: DataType) -> FieldRef {
    std::sync::Arc::new(arrow::datatypes::Field::new(name, dt, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{read_table, write_table};

    fn row(slice_index: Option<i32>, z_mm: Option<f64>) -> MetricRecord {
        MetricRecord {
            run: "r".into(),
            method: "m".into(),
            stage: 1,
            n_samples: 4,
            bank: 0,
            n_outputs: 4,
            fold: 0,
            study_id: "S".into(),
            target_id: "1".into(),
            unit: if slice_index.is_some() {
                "slice"
            } else {
                "volume"
            }
            .into(),
            unit_index: 0,
            slice_index,
            z_mm,
            metric: "ged".into(),
            value: 0.25,
            seed: 1,
            checkpoint_sha256: String::new(),
        }
    }

    #[test]
    fn slice_columns_round_trip_set_and_null() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.parquet");
        let rows = vec![row(Some(-3), Some(-41.25)), row(None, None)];
        write_table(&path, &rows, &[]).unwrap();
        let (back, meta) = read_table::<MetricRecord>(&path).unwrap();
        assert_eq!(back, rows);
        assert_eq!(meta[crate::meta::KEY_VERSION], "2");
    }
}
