//! Loader errors. Each names the manifest or shard it is about and what is wrong.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(transparent)]
    Schema(#[from] schemas::SchemaError),
    #[error(
        "{manifest}: selection {selection} matches no study (the manifest lists {studies} studies)"
    )]
    EmptySelection {
        manifest: PathBuf,
        selection: String,
        studies: usize,
    },
    #[error("{manifest}: fold {fold} does not exist (the manifest has {k_folds} folds)")]
    NoSuchFold {
        manifest: PathBuf,
        fold: u32,
        k_folds: u32,
    },
    #[error("{shard}: shard listed in {manifest} does not exist")]
    MissingShard { manifest: PathBuf, shard: PathBuf },
    #[error("{manifest}: study `{study}` is in shard `{shard}`, which the manifest header does not list")]
    UnlistedShard {
        manifest: PathBuf,
        study: String,
        shard: String,
    },
    #[error("{shard}: SHA-256 {found} does not match {expected} recorded in {manifest} (the file changed after ingest)")]
    ChecksumMismatch {
        manifest: PathBuf,
        shard: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{shard}: preprocessing fingerprint {found} differs from {expected} in {manifest} (shard from another ingest)")]
    FingerprintMismatch {
        manifest: PathBuf,
        shard: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{shard}: bad slice row {row}: {reason}")]
    BadRow {
        shard: PathBuf,
        row: usize,
        reason: String,
    },
    #[error("{shard}: {reason}")]
    BadShard { shard: PathBuf, reason: String },
    #[error("loader worker thread failed: {0}")]
    Worker(String),
    #[error("loader configuration: {0}")]
    Config(String),
}

pub type Result<T, E = LoaderError> = std::result::Result<T, E>;
