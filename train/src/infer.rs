//! Inference: probability maps from a trained D-Persona, and their scoring with the eval
//! crate's metric code (used by per-epoch validation and by `dpersona eval`).
//!
//! The model runs in eval mode (BN running statistics, no dropout) without gradients
//! (method.md §5.1); every draw comes from torch's global generator, which the caller seeds.
use tch::{Device, Kind, Tensor};

use eval::unit_metrics::{score_unit, MetricOptions, ScoreError, UnitScores};

use crate::batch::Batch;
use crate::models::DPersona;

/// What the model outputs per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// Stage I: N prior samples, each decoded by Fcomb → N maps.
    Samples(i64),
    /// Stage II: one personalised map per head from a bank of M prior draws → R maps.
    Personalised { bank: i64 },
}

/// Probabilities `[B, N, H, W]` (CPU, f32) for images x `[B, C, H, W]`.
pub fn predict(model: &DPersona, x: &Tensor, outputs: Outputs) -> Tensor {
    tch::no_grad(|| {
        let feats = model.features(x, false);
        let prior = model.prior(x);
        let logits = match outputs {
            Outputs::Samples(n) => model.decode_many(&feats, &prior.sample_n(n)),
            Outputs::Personalised { bank } => {
                model.personalised(&feats, &prior.sample_n(bank), false)
            }
        };
        logits
            .sigmoid()
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
    })
}

/// Host copies of one batch's predictions and labels, row by row.
pub struct BatchPredictions {
    /// `[B, N, H·W]` probabilities, row-major.
    pub probs: Vec<f32>,
    pub n: usize,
    /// `[B, R, H·W]` 0/1 labels.
    pub labels: Vec<u8>,
    /// `[B, R]`.
    pub present: Vec<bool>,
    pub r: usize,
    pub hw: usize,
}

impl BatchPredictions {
    pub fn new(batch: &Batch, probs: &Tensor) -> Self {
        let n = probs.size()[1] as usize;
        let probs: Vec<f32> = Vec::try_from(probs.flatten(0, -1)).expect("probabilities are f32");
        Self {
            probs,
            n,
            labels: batch.masks.iter().map(|&v| u8::from(v > 0.5)).collect(),
            present: batch.present.clone(),
            r: batch.r,
            hw: batch.h * batch.w,
        }
    }

    /// Row b's N maps `[H·W]`.
    pub fn probs_of(&self, b: usize) -> Vec<&[f32]> {
        let base = b * self.n * self.hw;
        (0..self.n)
            .map(|k| &self.probs[base + k * self.hw..base + (k + 1) * self.hw])
            .collect()
    }

    /// Row b's R rater slots (`None` = the rater did not read the study).
    pub fn raters_of(&self, b: usize) -> Vec<Option<&[u8]>> {
        let base = b * self.r * self.hw;
        (0..self.r)
            .map(|k| {
                self.present[b * self.r + k]
                    .then(|| &self.labels[base + k * self.hw..base + (k + 1) * self.hw])
            })
            .collect()
    }

    /// Scores row b as one 2D unit with the eval crate.
    pub fn score(&self, b: usize, opts: &MetricOptions) -> Result<UnitScores, ScoreError> {
        score_unit(&self.raters_of(b), &self.probs_of(b), opts)
    }
}
