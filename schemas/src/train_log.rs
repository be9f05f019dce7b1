//! The machine-readable training log (`RUN/train_log.parquet`): tidy, one value per row,
//! so every method can log its own loss terms without a schema change.
use arrow::datatypes::{DataType, FieldRef};
use serde::{Deserialize, Serialize};

use crate::meta::SchemaId;
use crate::records::{field, Table};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainLogRecord {
    pub stage: u8,
    pub epoch: u32,
    /// Optimiser step within the stage (for `val` rows: the last step of the epoch).
    pub step: u64,
    /// `train` (a loss term of one step), `val` (a validation metric of one epoch) or
    /// `event` (for example `skipped_nonfinite`).
    pub kind: String,
    /// Loss term or metric name (`total`, `rec`, `kl`, `bound`, `l2`, `dice_match`, ...).
    pub name: String,
    pub value: f64,
    pub lr: f64,
    /// Seconds since the stage started.
    pub elapsed_s: f64,
}

impl Table for TrainLogRecord {
    const SCHEMA: SchemaId = SchemaId::new("train_log", 1);
    fn fields() -> Vec<FieldRef> {
        vec![
            field("stage", DataType::UInt8),
            field("epoch", DataType::UInt32),
            field("step", DataType::UInt64),
            field("kind", DataType::Utf8),
            field("name", DataType::Utf8),
            field("value", DataType::Float64),
            field("lr", DataType::Float64),
            field("elapsed_s", DataType::Float64),
        ]
    }
}
