//! The baselines of the D-Persona comparison (baselines.md), on the shared backbone.
//!
//! Every model takes a [`BaselineBatch`] and returns named [`LossTerms`] for the trainer,
//! and [`BaselineOutputs`] (probability maps, with the set size S) for evaluation.
//! [`BaselineModel`] wraps them behind one type so `dpersona train --method NAME` can hold
//! any of them.
//!
//! Modules:
//! - [`fusion`]: MV, STAPLE and RS targets, and the fused-label cache (no torch).
//! - [`outputs`]: the batch, loss-term and output types shared by the models.
//! - [`plain_unet`]: backbone + 1×1 head (unet-rater, mv, staple, rs).
//! - [`prob_unet`]: the Probabilistic U-Net as the harness runs it.
//! - [`cm`]: CM-Global and CM-Pixel (faithful C = 2 and the paper's C = 1 form).
//! - [`pionono`]: per-rater latent Gaussians + head.
//! - [`tab`]: TAB, a transformer with one query per rater + low-rank Gaussian heads.
pub mod cm;
pub mod fusion;
pub mod outputs;
pub mod pionono;
pub mod plain_unet;
pub mod prob_unet;
pub mod tab;

pub use cm::{CmKind, CmModel, CmOptions};
pub use outputs::{BaselineBatch, BaselineOutputs, LossTerms, LrGroup};
pub use pionono::{Pionono, PiononoOptions};
pub use plain_unet::{stack_rater_models, PlainTarget, PlainUnet};
pub use prob_unet::{ProbUnet, ProbUnetOptions};
pub use tab::{Tab, TabOptions};

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

use crate::models::ModelConfig;

/// A baseline and its options: what `--method NAME` (plus its flags) selects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum BaselineSpec {
    /// One U-Net trained on rater `rater`'s masks only (`--method unet-rater --rater K`).
    UnetRater {
        rater: i64,
    },
    /// U-Net on a cached majority vote (`--method mv --mv RULE`).
    Mv {
        rule: fusion::MvRule,
    },
    /// U-Net on a cached STAPLE label (`--method staple`).
    Staple(fusion::StapleParams),
    /// U-Net on a random present rater per sample (`--method rs`).
    Rs,
    ProbUnet(ProbUnetOptions),
    CmGlobal(CmOptions),
    CmPixel(CmOptions),
    Pionono(PiononoOptions),
    Tab(TabOptions),
}

impl BaselineSpec {
    /// The `--method` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::UnetRater { .. } => "unet-rater",
            Self::Mv { .. } => "mv",
            Self::Staple(_) => "staple",
            Self::Rs => "rs",
            Self::ProbUnet(_) => "prob-unet",
            Self::CmGlobal(_) => "cm-global",
            Self::CmPixel(_) => "cm-pixel",
            Self::Pionono(_) => "pionono",
            Self::Tab(_) => "tab",
        }
    }

    /// The label fusion whose cached output the loss needs as `BaselineBatch::target`.
    pub fn fusion(&self) -> Option<fusion::Fusion> {
        match self {
            Self::Mv { rule } => Some(fusion::Fusion::Mv { rule: *rule }),
            Self::Staple(p) => Some(fusion::Fusion::Staple(p.clone())),
            _ => None,
        }
    }
}

/// Any baseline model (one per run, so the variants' size difference does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum BaselineModel {
    Plain(PlainUnet),
    ProbUnet(ProbUnet),
    Cm(CmModel),
    Pionono(Pionono),
    Tab(Tab),
}

impl BaselineModel {
    /// Builds the model's variables under `p`. Panics if `cfg` does not validate (call
    /// `cfg.validate()` first for an error).
    pub fn new(p: &nn::Path, cfg: &ModelConfig, spec: &BaselineSpec) -> Self {
        match spec {
            BaselineSpec::UnetRater { rater } => {
                Self::Plain(PlainUnet::new(p, cfg, PlainTarget::Rater(*rater)))
            }
            BaselineSpec::Mv { .. } | BaselineSpec::Staple(_) => {
                Self::Plain(PlainUnet::new(p, cfg, PlainTarget::Fused))
            }
            BaselineSpec::Rs => Self::Plain(PlainUnet::new(p, cfg, PlainTarget::RandomRater)),
            BaselineSpec::ProbUnet(o) => Self::ProbUnet(ProbUnet::new(p, cfg, o.clone())),
            BaselineSpec::CmGlobal(o) => Self::Cm(CmModel::new(p, cfg, CmKind::Global, o.clone())),
            BaselineSpec::CmPixel(o) => Self::Cm(CmModel::new(p, cfg, CmKind::Pixel, o.clone())),
            BaselineSpec::Pionono(o) => Self::Pionono(Pionono::new(p, cfg, o.clone())),
            BaselineSpec::Tab(o) => Self::Tab(Tab::new(p, cfg, o.clone())),
        }
    }

    /// The loss of one batch; `None` = nothing to learn from in this batch (skip the step).
    pub fn loss(&self, batch: &BaselineBatch, train: bool) -> Option<LossTerms> {
        match self {
            Self::Plain(m) => m.loss(batch, train),
            Self::ProbUnet(m) => Some(m.loss(batch, train)),
            Self::Cm(m) => Some(m.loss(batch, train)),
            Self::Pionono(m) => Some(m.loss(batch, train)),
            Self::Tab(m) => Some(m.loss(batch, train)),
        }
    }

    /// Evaluation outputs with the method's default sample counts.
    pub fn infer(&self, x: &Tensor) -> BaselineOutputs {
        match self {
            Self::Plain(m) => m.infer(x),
            Self::ProbUnet(m) => m.infer(x, m.options().eval_samples),
            Self::Cm(m) => m.infer(x),
            Self::Pionono(m) => m.infer(x, m.options().eval_samples),
            Self::Tab(m) => m.infer(x),
        }
    }

    /// Variable groups with their own learning rate (all others use the trainer's).
    pub fn lr_groups(&self) -> Vec<LrGroup> {
        match self {
            Self::Cm(m) => m.lr_groups(),
            Self::Pionono(m) => m.lr_groups(),
            _ => Vec::new(),
        }
    }
}
