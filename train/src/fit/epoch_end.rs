//! What every training loop does when an epoch ends, written once for D-Persona's two
//! stages and the baselines: log the validation metric, keep the `best` checkpoint when the
//! metric did not get worse (`>=`, so a tie moves `best` to the later epoch, as the authors'
//! loop does), and fill the sidecar that both `best` and `last` carry.
use std::path::Path;

use schemas::train_log::TrainLogRecord;
use tch::nn::VarStore;

use crate::checkpoint::{self, CheckpointInfo, Slot};
use crate::config::PatienceFrom;
use crate::error::TrainError;

/// The best validation result of a stage so far, carried across epochs (and restored from
/// the `last` sidecar on resume).
pub struct BestSoFar {
    pub metric: f64,
    pub epoch: u32,
    /// The last epoch whose metric rose strictly above all earlier ones (`best.epoch` also
    /// moves on a tie): where early stopping's patience counts from.
    pub rose_epoch: u32,
    /// The last epoch whose validation predictions were all empty (`None`: none so far).
    pub empty_epoch: Option<u32>,
    /// The `best` sidecar on disk, `None` until the first epoch of the stage has ended.
    pub info: Option<CheckpointInfo>,
}

/// One epoch's end: where the stage stands and what validation measured.
pub struct EpochEnd<'a> {
    pub stage: u8,
    pub epoch: u32,
    /// Optimiser steps taken in the stage so far.
    pub step: u64,
    pub metric_name: &'a str,
    pub metric: f64,
    /// Every validation prediction of the epoch was empty.
    pub empty: bool,
    /// Steps skipped for non-finite losses so far in the stage.
    pub skipped: u64,
    pub seed: u64,
    pub config_hash: String,
    pub manifest_fingerprint: String,
    /// fp16 runs: the loss scaler's state.
    pub loss_scaler: Option<crate::precision::LossScaler>,
}

impl EpochEnd<'_> {
    /// The training-log row of the validation metric.
    pub fn val_row(&self, lr: f64, elapsed_s: f64) -> TrainLogRecord {
        log_row(
            self.stage,
            self.epoch,
            self.step,
            "val",
            self.metric_name,
            self.metric,
            lr,
            elapsed_s,
        )
    }

    /// The sidecar of a checkpoint written at this epoch's end (weights and optimiser
    /// fields are filled in by `checkpoint::save`).
    pub fn info(&self, best: &BestSoFar) -> CheckpointInfo {
        CheckpointInfo {
            stage: self.stage,
            epoch: self.epoch,
            step: self.step,
            weights: String::new(),
            weights_sha256: String::new(),
            optimizer: None,
            metric_name: self.metric_name.to_string(),
            metric: self.metric,
            best_metric: best.metric,
            best_epoch: best.epoch,
            rose_epoch: Some(best.rose_epoch),
            empty_epoch: best.empty_epoch,
            loss_scaler: self.loss_scaler.clone(),
            skipped_nonfinite: self.skipped,
            seed: self.seed,
            config_hash: self.config_hash.clone(),
            manifest_fingerprint: self.manifest_fingerprint.clone(),
        }
    }

    /// Saves the weights as `best` when this epoch's metric is at least the best so far
    /// (or no best exists yet), updating `best`; returns whether it did.
    pub fn keep_best(
        &self,
        dir: &Path,
        vs: &VarStore,
        best: &mut BestSoFar,
    ) -> Result<bool, TrainError> {
        let improved = self.metric >= best.metric || best.info.is_none();
        if self.empty {
            best.empty_epoch = Some(self.epoch);
        }
        if self.metric > best.metric || best.info.is_none() {
            best.rose_epoch = self.epoch;
        }
        if improved {
            best.metric = self.metric;
            best.epoch = self.epoch;
            checkpoint::save(dir, Slot::Best, self.info(best), vs, None)?;
            best.info = checkpoint::read_info(dir, Slot::Best)?;
        }
        Ok(improved)
    }
}

impl BestSoFar {
    /// The epoch early stopping's patience counts from under `mode`.
    pub fn patience_from(&self, mode: PatienceFrom) -> u32 {
        match mode {
            PatienceFrom::Start => self.rose_epoch,
            PatienceFrom::AfterEmpty => self
                .empty_epoch
                .map_or(self.rose_epoch, |e| e.max(self.rose_epoch)),
        }
    }
}

/// One row of the Parquet training log.
#[allow(clippy::too_many_arguments)]
pub fn log_row(
    stage: u8,
    epoch: u32,
    step: u64,
    kind: &str,
    name: &str,
    value: f64,
    lr: f64,
    elapsed_s: f64,
) -> TrainLogRecord {
    TrainLogRecord {
        stage,
        epoch,
        step,
        kind: kind.into(),
        name: name.into(),
        value,
        lr,
        elapsed_s,
    }
}
