//! Errors of the format layer. Every variant names the file it is about.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable Parquet file: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: Arrow error: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error(
        "{path}: has no dpersona schema metadata (key `{key}`); it was not written by dpersona"
    )]
    NotDpersona { path: PathBuf, key: &'static str },
    #[error("{path}: is a `{found}` file, expected a `{expected}` file")]
    WrongSchema {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
    #[error(
        "{path}: `{name}` schema version {found} is newer than this dpersona reads (up to {supported}); upgrade dpersona"
    )]
    NewerVersion {
        path: PathBuf,
        name: &'static str,
        found: u32,
        supported: u32,
    },
    #[error("{path}: bad `{name}` file: {reason}")]
    Invalid {
        path: PathBuf,
        name: &'static str,
        reason: String,
    },
}

impl SchemaError {
    pub fn invalid(
        path: impl Into<PathBuf>,
        name: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        SchemaError::Invalid {
            path: path.into(),
            name,
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = SchemaError> = std::result::Result<T, E>;
