//! The error of every training step (set-up, loop, checkpoints, resume), shared by the
//! loop, the methods and the commands that build on them.
use std::path::PathBuf;

use crate::checkpoint;
use crate::loader::LoaderError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    RunDir(#[from] crate::run_dir::RunDirError),
    #[error(transparent)]
    Schema(#[from] schemas::SchemaError),
    #[error(transparent)]
    Weights(#[from] crate::models::WeightsError),
    #[error(
        "stage {stage} epoch {epoch} step {step}: loss term `{term}` = {value} was not finite for {count} steps in a row \
         (nan.max_consecutive = {max}); lower optim.lr or check the data"
    )]
    NonFinite {
        stage: u8,
        epoch: u32,
        step: u64,
        term: String,
        value: f64,
        count: u32,
        max: u32,
    },
    #[error("{run}: {reason}")]
    Resume { run: PathBuf, reason: String },
    #[error("validation: {0}")]
    Validation(String),
    #[error("{0}")]
    Setup(String),
}
