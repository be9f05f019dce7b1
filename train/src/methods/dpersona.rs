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
use crate::losses::{stage1_losses, stage2_loss, BankDraw};
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
            let eps = s2.fixed_bank.then(|| {
                fixed_bank_eps(
                    &batch.rows,
                    self.cfg.seed,
                    s2.bank,
                    self.cfg.model.latent_dim,
                    t.images.device(),
                )
            });
            let total = stage2_loss(
                &self.model,
                &t.images,
                &t.masks,
                match &eps {
                    Some(eps) => BankDraw::Fixed(eps),
                    None => BankDraw::Fresh(s2.bank),
                },
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

/// ε `[B, M, D]` of `stage2.fixed_bank`: standard normal draws from each row's own stream
/// ([`crate::seeding::image_rng`]), so an image's bank is μ + σ·ε with the same ε at every
/// epoch, whatever batch it lands in.
pub fn fixed_bank_eps(
    rows: &[crate::batch::RowId],
    seed: u64,
    bank: i64,
    latent_dim: i64,
    device: Device,
) -> Tensor {
    use rand_distr::{Distribution, StandardNormal};
    let per_row = (bank * latent_dim) as usize;
    let mut eps = Vec::with_capacity(rows.len() * per_row);
    for row in rows {
        let mut rng = crate::seeding::image_rng(seed, crate::seeding::Stream::Bank, row);
        eps.extend((0..per_row).map(|_| -> f32 { StandardNormal.sample(&mut rng) }));
    }
    Tensor::from_slice(&eps)
        .view([rows.len() as i64, bank, latent_dim])
        .to_device(device)
}

#[cfg(test)]
mod fixed_bank_tests {
    use super::*;
    use crate::batch::RowId;

    fn row(study: &str, slice: i32) -> RowId {
        RowId {
            study_id: study.into(),
            target_id: "t0".into(),
            slice_index: slice,
        }
    }

    #[test]
    fn each_image_keeps_its_epsilon_in_any_batch_and_images_differ() {
        let (a, b, c) = (row("s1", 3), row("s1", 4), row("s2", 3));
        let one = fixed_bank_eps(&[a.clone(), b.clone()], 7, 50, 6, Device::Cpu);
        let other = fixed_bank_eps(&[c.clone(), b.clone(), a.clone()], 7, 50, 6, Device::Cpu);
        assert_eq!(one.size(), vec![2, 50, 6]);
        assert!(
            one.get(0).equal(&other.get(2)),
            "image a: same eps in another batch"
        );
        assert!(one.get(1).equal(&other.get(1)), "image b too");
        assert!(!one.get(0).equal(&one.get(1)), "neighbouring slices differ");
        assert!(!one.get(0).equal(&other.get(0)), "another study differs");
        let reseeded = fixed_bank_eps(&[a], 8, 50, 6, Device::Cpu);
        assert!(
            !reseeded.get(0).equal(&one.get(0)),
            "the run seed changes it"
        );
        // Standard normal: 200 images x 300 values, mean 0 within 4 standard errors and
        // variance 1 within 4 of its standard errors (sqrt(2/n)).
        let rows: Vec<RowId> = (0..200)
            .map(|i| row(&format!("s{}", i / 20), i % 20))
            .collect();
        let all = fixed_bank_eps(&rows, 7, 50, 6, Device::Cpu);
        let n = 200.0 * 300.0;
        let (m, v) = (
            all.mean(Kind::Double).double_value(&[]),
            all.to_kind(Kind::Double).var(true).double_value(&[]),
        );
        println!("mean {m}, variance {v}");
        assert!(m.abs() < 4.0 / f64::sqrt(n), "mean {m}");
        assert!((v - 1.0).abs() < 4.0 * f64::sqrt(2.0 / n), "variance {v}");
    }
}
