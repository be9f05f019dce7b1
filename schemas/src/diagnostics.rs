//! Latent-space diagnostics of a trained D-Persona run, the output of `dpersona diagnose`:
//! tidy, one value per row, like the metric frames.
//!
//! Why a frame of its own: the metric frames say how good the masks are; these rows say
//! why (issue #12): whether the posterior still carries information (KL per latent
//! dimension), whether the prior's samples differ at all (the bank Stage II chooses from),
//! how well the best sample of the bank could match each rater (the ceiling of a head that
//! picks from it), and whether the Stage-II heads attend or average (attention entropy,
//! query channels stuck at zero by their final ReLU). `quantity` names the value, `index`
//! the latent dimension, rater or head it belongs to (null for per-slice values).
use arrow::datatypes::{DataType, FieldRef};
use serde::{Deserialize, Serialize};

use crate::meta::SchemaId;
use crate::records::{field, Table};

/// One diagnostic value for one slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticRecord {
    /// Run folder name.
    pub run: String,
    /// The checkpoint's stage (1 or 2).
    pub stage: u8,
    /// `train`, `val`, `test`, or `fold<K>` for a fold's test images.
    pub split: String,
    pub study_id: String,
    pub target_id: String,
    pub slice_index: i32,
    /// What the value measures (see `dpersona diagnose --help`).
    pub quantity: String,
    /// The latent dimension, rater or head the value belongs to; null for per-slice values.
    #[serde(default)]
    pub index: Option<u32>,
    pub value: f64,
    /// Prior draws in the bank the bank quantities were computed over.
    pub bank: u32,
    pub seed: u64,
    /// SHA-256 of the checkpoint's weights.
    pub checkpoint_sha256: String,
}

impl Table for DiagnosticRecord {
    const SCHEMA: SchemaId = SchemaId::new("diagnostics", 1);
    fn fields() -> Vec<FieldRef> {
        vec![
            field("run", DataType::Utf8),
            field("stage", DataType::UInt8),
            field("split", DataType::Utf8),
            field("study_id", DataType::Utf8),
            field("target_id", DataType::Utf8),
            field("slice_index", DataType::Int32),
            field("quantity", DataType::Utf8),
            std::sync::Arc::new(arrow::datatypes::Field::new(
                "index",
                DataType::UInt32,
                true,
            )),
            field("value", DataType::Float64),
            field("bank", DataType::UInt32),
            field("seed", DataType::UInt64),
            field("checkpoint_sha256", DataType::Utf8),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{read_table, write_table};

    #[test]
    fn rows_round_trip_with_and_without_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.parquet");
        let row = |index: Option<u32>| DiagnosticRecord {
            run: "r".into(),
            stage: 1,
            split: "test".into(),
            study_id: "S".into(),
            target_id: "1".into(),
            slice_index: 3,
            quantity: "kl".into(),
            index,
            value: 0.125,
            bank: 100,
            seed: 1337,
            checkpoint_sha256: "ab".into(),
        };
        let rows = vec![row(Some(2)), row(None)];
        write_table(&path, &rows, &[]).unwrap();
        let (back, meta) = read_table::<DiagnosticRecord>(&path).unwrap();
        assert_eq!(back, rows);
        assert_eq!(meta[crate::meta::KEY_SCHEMA], "diagnostics");
    }
}
