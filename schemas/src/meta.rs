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

/// A file format: its name, the version this build writes (the newest it reads) and the
/// oldest version it still reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaId {
    pub name: &'static str,
    pub version: u32,
    /// Files older than this changed layout in a way this build does not read.
    pub oldest: u32,
}

impl SchemaId {
    /// A format every version of which, 1 to `version`, this build reads.
    pub const fn new(name: &'static str, version: u32) -> Self {
        SchemaId {
            name,
            version,
            oldest: 1,
        }
    }

    /// The same format, readable only from version `oldest` on (after a layout change).
    pub const fn reads_from(self, oldest: u32) -> Self {
        SchemaId { oldest, ..self }
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
        if found < self.oldest {
            return Err(SchemaError::OlderVersion {
                path: path.to_path_buf(),
                name: self.name,
                found,
                oldest: self.oldest,
            });
        }
        Ok(found)
    }
}
