//! Schema identity stored in each file's Parquet key-value metadata.
use std::collections::HashMap;
use std::path::Path;

use crate::error::{Result, SchemaError};

/// Metadata key holding the schema name (`slices`, `manifest`, ...).
pub const KEY_SCHEMA: &str = "dpersona.schema";
/// Metadata key holding the schema version (a decimal integer).
pub const KEY_VERSION: &str = "dpersona.schema_version";
/// Metadata key holding the version of dpersona that wrote the file.
pub const KEY_WRITER: &str = "dpersona.writer";

/// A file format: its name and the newest version this build writes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaId {
    pub name: &'static str,
    pub version: u32,
}

impl SchemaId {
    pub const fn new(name: &'static str, version: u32) -> Self {
        SchemaId { name, version }
    }

    /// The key-value pairs that identify a file of this schema.
    pub fn key_values(&self) -> Vec<(String, String)> {
        vec![
            (KEY_SCHEMA.to_string(), self.name.to_string()),
            (KEY_VERSION.to_string(), self.version.to_string()),
            (
                KEY_WRITER.to_string(),
                format!("dpersona {}", env!("CARGO_PKG_VERSION")),
            ),
        ]
    }

    /// Checks that `kv` (a file's metadata) is this schema at a version we can read.
    pub fn validate(&self, path: &Path, kv: &HashMap<String, String>) -> Result<u32> {
        let name = kv.get(KEY_SCHEMA).ok_or_else(|| SchemaError::NotDpersona {
            path: path.to_path_buf(),
            key: KEY_SCHEMA,
        })?;
        if name != self.name {
            return Err(SchemaError::WrongSchema {
                path: path.to_path_buf(),
                found: name.clone(),
                expected: self.name,
            });
        }
        let raw = kv
            .get(KEY_VERSION)
            .ok_or_else(|| SchemaError::NotDpersona {
                path: path.to_path_buf(),
                key: KEY_VERSION,
            })?;
        let found: u32 = raw.trim().parse().map_err(|_| {
            SchemaError::invalid(
                path,
                self.name,
                format!("schema version `{raw}` is not an integer"),
            )
        })?;
        if found > self.version {
            return Err(SchemaError::NewerVersion {
                path: path.to_path_buf(),
                name: self.name,
                found,
                supported: self.version,
            });
        }
        Ok(found)
    }
}
