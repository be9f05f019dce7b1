//! Small tables (manifest rows, rejects, metrics, logs) as serde records.
//!
//! Each table declares its Arrow fields explicitly (the schema is the contract, not whatever
//! serde would infer) and converts with `serde_arrow`, which saves a hand-written builder
//! per column. Slice shards, the one large and hot table, have their own columnar code in
//! [`crate::slice`].
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{FieldRef, Schema};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, SchemaError};
use crate::meta::SchemaId;
use crate::parquet_io::{open_checked, write_batches};

/// A table of serde records with an explicit Arrow schema.
pub trait Table: Serialize + DeserializeOwned {
    const SCHEMA: SchemaId;
    fn fields() -> Vec<FieldRef>;
}

/// Writes `rows` to `path` atomically with extra metadata.
pub fn write_table<T: Table>(path: &Path, rows: &[T], metadata: &[(&str, String)]) -> Result<u64> {
    let fields = T::fields();
    let batch = serde_arrow::to_record_batch(&fields, &rows).map_err(|e| {
        SchemaError::invalid(path, T::SCHEMA.name, format!("cannot encode rows: {e}"))
    })?;
    let schema = Arc::new(Schema::new(fields));
    write_batches(path, &T::SCHEMA, schema, &[batch], metadata)
}

/// Reads all rows of a `T` table, with the file's metadata.
pub fn read_table<T: Table>(
    path: &Path,
) -> Result<(Vec<T>, std::collections::HashMap<String, String>)> {
    let file = open_checked(path, &T::SCHEMA)?;
    let metadata = file.metadata.clone();
    let batches = file.read_all()?;
    let mut rows = Vec::new();
    for batch in &batches {
        let mut part: Vec<T> = serde_arrow::from_record_batch(batch).map_err(|e| {
            SchemaError::invalid(path, T::SCHEMA.name, format!("cannot decode rows: {e}"))
        })?;
        rows.append(&mut part);
    }
    Ok((rows, metadata))
}

/// Shorthand for a non-null field.
pub(crate) fn field(name: &str, dt: arrow::datatypes::DataType) -> FieldRef {
    Arc::new(arrow::datatypes::Field::new(name, dt, false))
}
