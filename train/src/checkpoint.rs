//! Checkpoints: model weights (safetensors, every `VarStore` tensor including BatchNorm
//! running statistics), the Adam state (safetensors) and a JSON sidecar that says what they
//! are.
//!
//! Crash safety: the weight files carry the epoch in their name (`last-e0007.safetensors`)
//! and are complete before the sidecar (`last.json`) that points at them is atomically
//! replaced; only then are older files removed. A `kill -9` at any moment leaves a sidecar
//! that points at complete files.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;

use crate::optim::Adam;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Schema(#[from] schemas::SchemaError),
    #[error("{path}: {source}")]
    Torch {
        path: PathBuf,
        #[source]
        source: tch::TchError,
    },
    #[error(transparent)]
    Optim(#[from] crate::optim::OptimError),
    #[error("{path}: bad checkpoint sidecar: {reason}")]
    Sidecar { path: PathBuf, reason: String },
}

/// Which of a stage's two checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The last completed epoch (what `--resume` continues from).
    Last,
    /// The epoch with the best validation metric (ties: the later epoch).
    Best,
}

impl Slot {
    pub fn name(self) -> &'static str {
        match self {
            Slot::Last => "last",
            Slot::Best => "best",
        }
    }
}

/// The JSON sidecar of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub stage: u8,
    /// Last completed epoch (0-based).
    pub epoch: u32,
    /// Optimiser steps taken in this stage so far.
    pub step: u64,
    /// Weight file, relative to the sidecar's folder.
    pub weights: String,
    pub weights_sha256: String,
    /// Adam state file (relative), for `last` checkpoints.
    pub optimizer: Option<String>,
    /// Validation metric name and its value at `epoch`.
    pub metric_name: String,
    pub metric: f64,
    /// Best validation metric so far and its epoch.
    pub best_metric: f64,
    pub best_epoch: u32,
    /// The last epoch whose metric rose strictly above every earlier one (early stopping
    /// counts its patience from here, since a tie moves `best_epoch` but is no progress).
    /// Absent in sidecars written before early stopping existed: read as `best_epoch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rose_epoch: Option<u32>,
    /// The last epoch whose validation predictions were all empty (absent: none so far,
    /// or a sidecar written before this was kept). `validation.patience_from =
    /// "after-empty"` counts patience from no earlier than here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_epoch: Option<u32>,
    /// fp16 runs: the loss scaler's state at this epoch's end (restored on resume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaler: Option<crate::precision::LossScaler>,
    /// Steps skipped for non-finite losses so far in this stage.
    pub skipped_nonfinite: u64,
    /// Run seed; every draw derives from (seed, stage, epoch, step).
    pub seed: u64,
    /// SHA-256 of the run's resolved config.toml.
    pub config_hash: String,
    /// Preprocessing fingerprint of the manifest trained on.
    pub manifest_fingerprint: String,
}

fn sidecar_path(dir: &Path, slot: Slot) -> PathBuf {
    dir.join(format!("{}.json", slot.name()))
}

/// Writes a temporary file with the `.safetensors` extension (tch picks the format from
/// it), then renames it into place.
fn write_safetensors_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), CheckpointError>,
) -> Result<String, CheckpointError> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp.safetensors", std::process::id()));
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let sha = schemas::hashing::sha256_file(&tmp)?;
    schemas::atomic::commit_temp(&tmp, path)?;
    Ok(sha)
}

/// Saves `vs` (and `adam` if given) as `slot` of the stage folder `dir`; `info.weights`,
/// `info.weights_sha256` and `info.optimizer` are filled in. Returns the weight file.
pub fn save(
    dir: &Path,
    slot: Slot,
    mut info: CheckpointInfo,
    vs: &VarStore,
    adam: Option<&Adam>,
) -> Result<PathBuf, CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|source| schemas::SchemaError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let stem = format!("{}-e{:04}", slot.name(), info.epoch);
    let weights = dir.join(format!("{stem}.safetensors"));
    info.weights_sha256 = write_safetensors_atomic(&weights, |tmp| {
        // What `VarStore::save` writes, from contiguous tensors: safetensors holds plain
        // row-major arrays, and channels-last kernels (`optim.channels_last`) are not that
        // in memory (`contiguous` returns an NCHW tensor as it is, without a copy).
        let named: Vec<(String, tch::Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(name, t)| (name, t.contiguous()))
            .collect();
        tch::Tensor::write_safetensors(&named, tmp).map_err(|source| CheckpointError::Torch {
            path: tmp.to_path_buf(),
            source,
        })
    })?;
    info.weights = format!("{stem}.safetensors");
    info.optimizer = match adam {
        Some(adam) => {
            let file = format!("{stem}.adam.safetensors");
            write_safetensors_atomic(&dir.join(&file), |tmp| Ok(adam.save(tmp)?))?;
            Some(file)
        }
        None => None,
    };
    let json = serde_json::to_string_pretty(&info).expect("checkpoint info serialises");
    schemas::atomic::write_file_atomic(&sidecar_path(dir, slot), json.as_bytes())?;
    remove_stale(dir, slot, &stem);
    Ok(weights)
}

/// Deletes this slot's files of other epochs and temporary files left by a killed writer.
fn remove_stale(dir: &Path, slot: Slot, keep_stem: &str) {
    let prefix = format!("{}-e", slot.name());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = (name.starts_with(&prefix) && !name.starts_with(keep_stem))
            || (name.starts_with('.') && name.contains(".tmp"));
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The sidecar of `slot` in `dir`, if that checkpoint exists.
pub fn read_info(dir: &Path, slot: Slot) -> Result<Option<CheckpointInfo>, CheckpointError> {
    let path = sidecar_path(dir, slot);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| schemas::SchemaError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| CheckpointError::Sidecar {
            path,
            reason: e.to_string(),
        })
}

/// Loads the weights of a checkpoint into `vs` (every variable must be present: a wrong
/// file is an error, unlike the authors' `strict=False`, §6.1 item 17).
pub fn load_weights(
    dir: &Path,
    info: &CheckpointInfo,
    vs: &mut VarStore,
) -> Result<PathBuf, CheckpointError> {
    let path = dir.join(&info.weights);
    vs.load(&path).map_err(|source| CheckpointError::Torch {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Restores the Adam state of a `last` checkpoint.
pub fn load_optimizer(
    dir: &Path,
    info: &CheckpointInfo,
    adam: &mut Adam,
) -> Result<(), CheckpointError> {
    let file = info
        .optimizer
        .as_ref()
        .ok_or_else(|| CheckpointError::Sidecar {
            path: dir.join("last.json"),
            reason: "no optimizer state recorded".into(),
        })?;
    Ok(adam.load(&dir.join(file))?)
}
