//! D-Persona's two stages as [`Method`]s (method.md §3-§4). Stage I trains backbone, prior,
//! posterior and Fcomb on L_I; Stage II starts from Stage I's best checkpoint and trains
//! ONLY the heads on L_II (its optimiser holds nothing else).
use std::path::Path;

use eval::unit_metrics::UnitScores;
use rand::Rng;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::{Method, OptimGroup, StepAt};
use crate::baselines::LossTerms;
use crate::batch::{Batch, BatchTensors};
use crate::checkpoint::{self, Slot};
use crate::config::{BnMode, RaterDraw, Stage2Selection, TrainConfig};
use crate::error::TrainError;
use crate::infer::{predict, Outputs};
use crate::losses::{stage1_losses, stage2_loss};
use crate::models::DPersona;
use crate::optim::{Adam, AdamParams};
use crate::run_dir::RunDir;
use crate::seeding::{reseed, Stream};

/// Builds the model in a fresh `VarStore`; initialisation draws are seeded from the run seed.
pub fn build_model(cfg: &TrainConfig, device: Device) -> Result<(VarStore, DPersona), TrainError> {
    cfg.model
        .validate()
        .map_err(|e| TrainError::Setup(e.to_string()))?;
    reseed(cfg.seed, Stream::Init, 0, 0, 0);
    let vs = VarStore::new(device);
    let model = DPersona::new(&vs.root(), &cfg.model);
    Ok((vs, model))
}

/// One stage of D-Persona on a freshly built model (same seeded initialisation in both
/// stages; Stage II then loads Stage I's weights, a resume the stage's own `last`).
pub struct DPersonaStage {
    cfg: TrainConfig,
    stage: u8,
    device: Device,
    vs: VarStore,
    model: DPersona,
}

impl DPersonaStage {
    pub fn new(cfg: &TrainConfig, stage: u8, device: Device) -> Result<Self, TrainError> {
        let (vs, model) = build_model(cfg, device)?;
        Ok(Self {
            cfg: cfg.clone(),
            stage,
            device,
            vs,
            model,
        })
    }

    pub fn model(&self) -> &DPersona {
        &self.model
    }

    /// What validation asks of the model: Stage I N prior samples, Stage II the heads'
    /// personalised maps from a bank of M prior draws.
    fn val_outputs(&self) -> Outputs {
        if self.stage == 1 {
            Outputs::Samples(self.cfg.validation.samples)
        } else {
            Outputs::Personalised {
                bank: self.cfg.validation.bank,
            }
        }
    }

    /// Stage I's reconstruction target: one rater per batch (the authors' code) or per image.
    fn draw_raters(&self, batch: &Batch, rng: &mut impl Rng) -> Tensor {
        match self.cfg.losses.rater_draw {
            RaterDraw::PerBatch => {
                let r = rng.random_range(0..batch.r as i64);
                Tensor::full([batch.b as i64], r, (Kind::Int64, self.device))
            }
            RaterDraw::PerSample => {
                let rs: Vec<i64> = (0..batch.b)
                    .map(|_| rng.random_range(0..batch.r as i64))
                    .collect();
                Tensor::from_slice(&rs).to_device(self.device)
            }
        }
    }
}

impl Method for DPersonaStage {
    fn stage(&self) -> u8 {
        self.stage
    }

    fn epochs(&self) -> u32 {
        self.cfg.epochs(self.stage)
    }

    fn vars(&self) -> &VarStore {
        &self.vs
    }

    fn vars_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }

    fn optimizers(&self) -> Vec<OptimGroup> {
        let heads = [DPersona::head_prefix()];
        let vars = if self.stage == 1 {
            Adam::select(&self.vs, &[], &heads)
        } else {
            Adam::select(&self.vs, &heads, &[])
        };
        let o = &self.cfg.optim;
        let params = AdamParams {
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
        };
        vec![OptimGroup {
            adam: Adam::new(vars, params, o.lr),
            lr0: o.lr,
        }]
    }

    fn start_weights(
        &mut self,
        run: &RunDir,
        backbone_weights: Option<&Path>,
    ) -> Result<(), TrainError> {
        if self.stage == 2 {
            let s1 = run.stage_dir(1);
            let best = checkpoint::read_info(&s1, Slot::Best)?.ok_or_else(|| {
                TrainError::Setup(format!(
                    "stage 2 starts from stage 1's best checkpoint, but {} has none; run stage 1 first",
                    s1.display()
                ))
            })?;
            checkpoint::load_weights(&s1, &best, &mut self.vs)?;
        } else if let Some(file) = backbone_weights {
            crate::models::load_backbone_weights(&mut self.vs, file, self.cfg.model.in_channels)?;
        }
        Ok(())
    }

    fn train_step(&self, batch: &Batch, t: &BatchTensors, at: StepAt<'_>) -> Option<LossTerms> {
        if self.stage == 1 {
            let rater = self.draw_raters(batch, at.rng);
            let opts = self.cfg.losses.stage1_options();
            let (union, intersection) = t.stage1_consensus(self.cfg.stage2.mask_absent_raters);
            let l = stage1_losses(
                &self.model,
                &t.images,
                &t.masks,
                &union,
                &intersection,
                &rater,
                &opts,
                true,
            );
            Some(LossTerms {
                total: l.total,
                terms: vec![
                    ("rec", l.rec),
                    ("kl", l.kl),
                    ("bound", l.bound),
                    ("l2", l.l2),
                ],
            })
        } else {
            let s2 = &self.cfg.stage2;
            let total = stage2_loss(
                &self.model,
                &t.images,
                &t.masks,
                s2.bank,
                s2.backbone_bn == BnMode::Train,
                s2.heads_dropout,
                s2.mask_absent_raters.then_some(&t.present),
            );
            Some(LossTerms {
                total,
                terms: Vec::new(),
            })
        }
    }

    fn predict_set(&self, x: &Tensor) -> Tensor {
        predict(&self.model, x, self.val_outputs())
    }

    fn metric_name(&self) -> String {
        metric_name(self.stage, self.cfg.validation.stage2_selection)
    }

    fn pick(&self, s: &UnitScores) -> Result<f64, TrainError> {
        match (self.stage, self.cfg.validation.stage2_selection) {
            (1, _) => Ok(s.dice_match),
            (_, Stage2Selection::Matched) => Ok(s.dice_mean_matched),
            (_, Stage2Selection::Identity) => s.dice_mean_identity.ok_or_else(|| {
                TrainError::Validation("identity Dice needs one head per rater".into())
            }),
        }
    }
}

/// The validation metric's name in logs and checkpoints.
pub fn metric_name(stage: u8, sel: Stage2Selection) -> String {
    use eval::metric_rows::names;
    match (stage, sel) {
        (1, _) => names::DICE_MATCH.to_string(),
        (_, Stage2Selection::Matched) => names::DICE_MEAN_MATCHED.to_string(),
        (_, Stage2Selection::Identity) => names::DICE_MEAN_IDENTITY.to_string(),
    }
}
