//! Studies ingest could not use, and why. Written as `rejects.parquet` beside the manifest.
use arrow::datatypes::{DataType, FieldRef};
use serde::{Deserialize, Serialize};

use crate::meta::SchemaId;
use crate::records::{field, Table};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectRecord {
    pub study_id: String,
    /// The file that was wrong (or the study folder when no single file is to blame).
    pub file: String,
    /// What is wrong, in words a person can act on.
    pub reason: String,
}

impl Table for RejectRecord {
    const SCHEMA: SchemaId = SchemaId::new("rejects", 1);
    fn fields() -> Vec<FieldRef> {
        vec![
            field("study_id", DataType::Utf8),
            field("file", DataType::Utf8),
            field("reason", DataType::Utf8),
        ]
    }
}
