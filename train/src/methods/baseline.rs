//! Any baseline of the comparison (`dpersona train --method NAME`, baselines.md) as a
//! [`Method`]: one stage, stored as `stage1/`. Validation scores the method's prediction
//! SET (`BaselineOutputs::set`, S maps) and selects on Dice_match.
use eval::unit_metrics::UnitScores;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::{Method, OptimGroup, StepAt};
use crate::baselines::fusion::RandomRater;
use crate::baselines::{BaselineBatch, BaselineModel, BaselineSpec, LossTerms};
use crate::batch::{Batch, BatchTensors};
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::optim::{Adam, AdamParams};
use crate::seeding::{reseed, Stream};

/// The one stage a baseline trains (its checkpoints live in `stage1/`).
pub const BASELINE_STAGE: u8 = 1;

/// Builds a baseline in a fresh `VarStore`; initialisation draws are seeded from the run seed.
pub fn build_baseline(
    cfg: &TrainConfig,
    spec: &BaselineSpec,
    device: Device,
) -> Result<(VarStore, BaselineModel), TrainError> {
    cfg.model
        .validate()
        .map_err(|e| TrainError::Setup(e.to_string()))?;
    if let BaselineSpec::UnetRater { rater } = spec {
        if *rater < 0 || *rater >= cfg.model.raters {
            return Err(TrainError::Setup(format!(
                "unet-rater: rater {rater} does not exist (the manifest has raters 0..{})",
                cfg.model.raters
            )));
        }
    }
    if let BaselineSpec::Tab(o) = spec {
        o.validate(&cfg.model).map_err(TrainError::Setup)?;
    }
    reseed(cfg.seed, Stream::Init, 0, 0, 0);
    let vs = VarStore::new(device);
    let model = BaselineModel::new(&vs.root(), &cfg.model, spec);
    Ok((vs, model))
}

/// The method's prediction set `[B, S, H, W]` as CPU f32 probabilities (eval mode, no grad).
pub fn predict_set(model: &BaselineModel, x: &Tensor) -> Tensor {
    tch::no_grad(|| {
        model
            .infer(x)
            .set
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
    })
}

/// A baseline model with the settings it trains under.
pub struct Baseline {
    cfg: TrainConfig,
    spec: BaselineSpec,
    device: Device,
    vs: VarStore,
    model: BaselineModel,
}

impl Baseline {
    pub fn new(cfg: &TrainConfig, spec: &BaselineSpec, device: Device) -> Result<Self, TrainError> {
        let (vs, model) = build_baseline(cfg, spec, device)?;
        Ok(Self {
            cfg: cfg.clone(),
            spec: spec.clone(),
            device,
            vs,
            model,
        })
    }
}

impl Method for Baseline {
    fn stage(&self) -> u8 {
        BASELINE_STAGE
    }

    fn epochs(&self) -> u32 {
        self.cfg.optim.epochs_stage1
    }

    fn label(&self) -> Option<&'static str> {
        Some(self.spec.name())
    }

    fn vars(&self) -> &VarStore {
        &self.vs
    }

    fn vars_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }

    /// One optimiser at `optim.lr` over everything outside the model's learning-rate
    /// groups, then one per group at the group's own rate.
    fn optimizers(&self) -> Vec<OptimGroup> {
        let o = &self.cfg.optim;
        let params = AdamParams {
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
        };
        let groups = self.model.lr_groups();
        let prefixes: Vec<&str> = groups.iter().map(|g| g.prefix).collect();
        let mut out = vec![OptimGroup {
            adam: Adam::new(Adam::select(&self.vs, &[], &prefixes), params, o.lr),
            lr0: o.lr,
        }];
        out.extend(groups.iter().map(|g| OptimGroup {
            adam: Adam::new(Adam::select(&self.vs, &[g.prefix], &[]), params, g.lr),
            lr0: g.lr,
        }));
        out
    }

    fn train_step(&self, batch: &Batch, t: &BatchTensors, at: StepAt<'_>) -> Option<LossTerms> {
        let raters = RandomRater::for_step(self.cfg.seed, at.epoch, at.step)
            .draw_batch(&batch.present, batch.r);
        let rater = Tensor::from_slice(&raters).to_device(self.device);
        let present = t.present.shallow_clone();
        let target = batch.target_tensor(self.device);
        let bb = BaselineBatch {
            x: &t.images,
            y: &t.masks,
            present: &present,
            rater: &rater,
            target: target.as_ref(),
        };
        self.model.loss(&bb, true)
    }

    fn predict_set(&self, x: &Tensor) -> Tensor {
        predict_set(&self.model, x)
    }

    fn metric_name(&self) -> String {
        eval::metric_rows::names::DICE_MATCH.to_string()
    }

    fn pick(&self, s: &UnitScores) -> Result<f64, TrainError> {
        Ok(s.dice_match)
    }
}
