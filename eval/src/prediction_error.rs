//! The error of the predictions folder and its volume files, in a module of its own so that
//! [`crate::predictions`] (the folder layout) and [`crate::prediction_volumes`] (the NIfTI
//! volume format) both use it while only the layout imports the format.
use std::path::{Path, PathBuf};

use crate::raster::RasterError;

#[derive(Debug, thiserror::Error)]
pub enum PredictionsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Raster(#[from] RasterError),
    #[error(transparent)]
    Schema(#[from] schemas::SchemaError),
}

/// An `Invalid` error naming `path`.
pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> PredictionsError {
    PredictionsError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}
