//! The methods the training loop ([`crate::fit`]) trains: each one type implementing
//! [`Method`]. The loop knows no method by name; a method knows nothing of epochs,
//! schedules, checkpoints or logs. D-Persona's two stages are two methods
//! ([`dpersona::DPersonaStage`]), every baseline of the comparison is [`baseline::Baseline`].
//!
//! Modules:
//! - [`dpersona`]: Stage I (L_I on backbone, prior, posterior, Fcomb) and Stage II (L_II on
//!   the heads only) of D-Persona.
//! - [`baseline`]: any [`crate::baselines::BaselineModel`] (one stage, stored as `stage1/`).
pub mod baseline;
pub mod dpersona;

pub use baseline::{build_baseline, predict_set, Baseline, BASELINE_STAGE};
pub use dpersona::{build_model, DPersonaStage};

use std::path::Path;

use eval::unit_metrics::UnitScores;
use rand_chacha::ChaCha8Rng;
use tch::nn::VarStore;
use tch::Tensor;

use crate::baselines::LossTerms;
use crate::batch::{Batch, BatchTensors};
use crate::error::TrainError;
use crate::optim::Adam;
use crate::run_dir::RunDir;

/// One Adam optimiser of a method and the learning rate its schedule starts from. A method
/// has one, or more when variable groups train at their own rate (CM heads, Pionono's
/// latent parameters): the loop steps them all, in order, after one backward pass.
pub struct OptimGroup {
    pub adam: Adam,
    pub lr0: f64,
}

/// Where a training step stands, for the methods whose draws depend on it.
pub struct StepAt<'a> {
    pub epoch: u32,
    /// Optimiser steps taken in the stage before this one.
    pub step: u64,
    /// Seeded from (seed, stage, epoch, batch index): the step's own random stream.
    pub rng: &'a mut ChaCha8Rng,
}

/// A trainable method as the loop sees it.
pub trait Method {
    /// The stage this is (D-Persona: 1 or 2; a baseline: [`BASELINE_STAGE`]); names the
    /// checkpoint folder, the seeding stream and the log rows.
    fn stage(&self) -> u8;
    /// Epochs the stage trains at most.
    fn epochs(&self) -> u32;
    /// Shown in each epoch's log line before the loss terms (a baseline's name), if any.
    fn label(&self) -> Option<&'static str> {
        None
    }
    /// The variables (all of them: checkpoints save and load the whole store).
    fn vars(&self) -> &VarStore;
    fn vars_mut(&mut self) -> &mut VarStore;
    /// The optimisers over the variables this stage trains. The first one's state goes into
    /// the `last` checkpoint, the others' beside it (`last.optimizer.group<i>.safetensors`).
    fn optimizers(&self) -> Vec<OptimGroup>;
    /// Sets the starting weights of a fresh (not resumed) stage: Stage II loads Stage I's
    /// best checkpoint, Stage I optional ImageNet backbone weights.
    fn start_weights(
        &mut self,
        _run: &RunDir,
        _backbone_weights: Option<&Path>,
    ) -> Result<(), TrainError> {
        Ok(())
    }
    /// The loss terms of one training step (`total` is minimised), or `None` when the batch
    /// carries nothing this method can learn from (not a non-finite step: nothing is counted).
    fn train_step(&self, batch: &Batch, t: &BatchTensors, at: StepAt<'_>) -> Option<LossTerms>;
    /// The prediction set `[B, S, H, W]` (probabilities) that validation scores.
    fn predict_set(&self, x: &Tensor) -> Tensor;
    /// Name of the validation metric in logs and checkpoint sidecars.
    fn metric_name(&self) -> String;
    /// The validation metric read off one unit's scores (higher is better).
    fn pick(&self, scores: &UnitScores) -> Result<f64, TrainError>;
}
