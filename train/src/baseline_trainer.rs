//! Training loop of the baselines (`dpersona train --method NAME`, baselines.md) on the
//! trainer's machinery: the same loaders, seeding, cosine schedule, Adam (one optimiser per
//! learning-rate group), NaN policy, best/last checkpoints, logs and resume. A baseline has
//! one stage, stored as `stage1/`; validation scores the method's prediction SET
//! (`BaselineOutputs::set`, S maps) with eval's `score_unit` and selects on Dice_match.
use std::path::Path;
use std::time::Instant;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::baselines::fusion::RandomRater;
use crate::baselines::{BaselineBatch, BaselineModel, BaselineSpec};
use crate::checkpoint::{self, CheckpointInfo, Slot};
use crate::epoch_end::{log_row, BestSoFar, EpochEnd};
use crate::loader::Loader;
use crate::nan_policy::NanGuard;
use crate::optim::{Adam, AdamParams};
use crate::run_dir::RunDir;
use crate::seeding::{reseed, Stream};
use crate::train_log::{line_prefix, TrainLog};
use crate::trainer::TrainError;

/// The one stage a baseline trains (its checkpoints live in `stage1/`).
pub const BASELINE_STAGE: u8 = 1;

/// Builds a baseline in a fresh `VarStore`; initialisation draws are seeded from the run seed.
pub fn build_baseline(
    cfg: &crate::config::TrainConfig,
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

/// File of learning-rate group `i`'s Adam state beside a `last` checkpoint.
fn group_state(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(format!("last.optimizer.group{i}.safetensors"))
}

/// Everything the baseline stage needs from `trainer::train`.
pub struct BaselineStage<'a> {
    pub cfg: &'a crate::config::TrainConfig,
    pub spec: &'a BaselineSpec,
    pub run: &'a RunDir,
    pub device: Device,
    pub train: &'a Loader,
    pub val: &'a Loader,
    pub fingerprint: String,
    pub stop_after: Option<(u8, u32)>,
}

/// Runs (or resumes) the baseline's training; `None` when `stop_after` ended it early.
pub fn run_baseline(
    ctx: &BaselineStage<'_>,
    log: &mut TrainLog,
) -> Result<Option<CheckpointInfo>, TrainError> {
    let cfg = ctx.cfg;
    let stage = BASELINE_STAGE;
    let dir = ctx.run.stage_dir(stage);
    let epochs = cfg.optim.epochs_stage1;
    let (mut vs, model) = build_baseline(cfg, ctx.spec, ctx.device)?;
    let params = AdamParams {
        beta1: cfg.optim.beta1,
        beta2: cfg.optim.beta2,
        eps: cfg.optim.eps,
    };
    let groups = model.lr_groups();
    let prefixes: Vec<&str> = groups.iter().map(|g| g.prefix).collect();
    let mut adam = Adam::new(Adam::select(&vs, &[], &prefixes), params, cfg.optim.lr);
    let mut group_adams: Vec<Adam> = groups
        .iter()
        .map(|g| Adam::new(Adam::select(&vs, &[g.prefix], &[]), params, g.lr))
        .collect();

    let (start_epoch, mut step, best_metric, best_epoch, skipped) =
        match checkpoint::read_info(&dir, Slot::Last)? {
            Some(info) => {
                if info.config_hash != cfg.hash() {
                    return Err(TrainError::Resume {
                        run: ctx.run.root.clone(),
                        reason: format!(
                            "{}: checkpoint was made with another config.toml",
                            dir.display()
                        ),
                    });
                }
                checkpoint::load_weights(&dir, &info, &mut vs)?;
                checkpoint::load_optimizer(&dir, &info, &mut adam)?;
                for (i, a) in group_adams.iter_mut().enumerate() {
                    let path = group_state(&dir, i);
                    a.load(&path).map_err(|e| TrainError::Resume {
                        run: ctx.run.root.clone(),
                        reason: format!("{}: {e}", path.display()),
                    })?;
                }
                (
                    info.epoch + 1,
                    info.step,
                    info.best_metric,
                    info.best_epoch,
                    info.skipped_nonfinite,
                )
            }
            None => (0, 0, f64::NEG_INFINITY, 0, 0),
        };
    let mut best = BestSoFar {
        metric: best_metric,
        epoch: best_epoch,
        info: checkpoint::read_info(&dir, Slot::Best)?,
    };
    if start_epoch >= epochs {
        return best.info.map(Some).ok_or_else(|| TrainError::Resume {
            run: ctx.run.root.clone(),
            reason: "the baseline is trained but has no best checkpoint".into(),
        });
    }
    log.truncate_after(stage, start_epoch.checked_sub(1));
    let metric_name = eval::metric_rows::names::DICE_MATCH.to_string();
    let started = Instant::now();
    let mut nan = NanGuard::new(skipped, cfg.nan.max_consecutive);
    for epoch in start_epoch..epochs {
        let lr = cfg.optim.schedule.lr(cfg.optim.lr, epoch, epochs);
        adam.set_lr(lr);
        for (a, g) in group_adams.iter_mut().zip(&groups) {
            a.set_lr(cfg.optim.schedule.lr(g.lr, epoch, epochs));
        }
        let (mut sum_total, mut n_steps) = (0.0f64, 0usize);
        for (i, batch) in ctx.train.epoch(epoch as u64).enumerate() {
            let batch = batch?;
            reseed(cfg.seed, Stream::Train, stage, epoch as u64, i as u64);
            let t = batch.tensors(ctx.device, true);
            let raters =
                RandomRater::for_step(cfg.seed, epoch, step).draw_batch(&batch.present, batch.r);
            let rater = Tensor::from_slice(&raters).to_device(ctx.device);
            let present = t.present.shallow_clone();
            let target = batch.target_tensor(ctx.device);
            let bb = BaselineBatch {
                x: &t.images,
                y: &t.masks,
                present: &present,
                rater: &rater,
                target: target.as_ref(),
            };
            let elapsed = started.elapsed().as_secs_f64();
            let Some(terms) = model.loss(&bb, true) else {
                // Nothing to learn from (e.g. unet-rater's rater read no row): not a NaN.
                step += 1;
                continue;
            };
            let values = terms.values();
            if nan.admit(&values, stage, epoch, step, lr, elapsed, log)? {
                for mut v in vs.trainable_variables() {
                    v.zero_grad();
                }
                terms.total.backward();
                adam.step();
                for a in &mut group_adams {
                    a.step();
                }
                for (name, v) in &values {
                    log.push(log_row(stage, epoch, step, "train", name, *v, lr, elapsed));
                }
                sum_total += values[0].1;
                n_steps += 1;
            }
            step += 1;
        }

        let metric = validate(ctx, &model, epoch)?;
        let elapsed = started.elapsed().as_secs_f64();
        let end = EpochEnd {
            stage,
            epoch,
            step,
            metric_name: &metric_name,
            metric,
            skipped: nan.skipped,
            seed: cfg.seed,
            config_hash: cfg.hash(),
            manifest_fingerprint: ctx.fingerprint.clone(),
        };
        log.push(end.val_row(lr, elapsed));
        let improved = end.keep_best(&dir, &vs, &mut best)?;
        log.push_line(
            stage,
            epoch,
            format!(
                "{} | {} | total {:.4} | val {metric_name} {metric:.4}{} (best {:.4} @ epoch {}) | lr {lr:.3e} | {elapsed:.1} s{}",
                line_prefix(stage, epoch, epochs),
                ctx.spec.name(),
                sum_total / n_steps.max(1) as f64,
                if improved { " *" } else { "" },
                best.metric,
                best.epoch + 1,
                if nan.skipped > 0 { format!(" | skipped non-finite steps: {}", nan.skipped) } else { String::new() },
            ),
        );
        log.flush()?;
        // Group states first: a `last` sidecar never points at a newer state than theirs.
        std::fs::create_dir_all(&dir)
            .map_err(|e| TrainError::Setup(format!("{}: {e}", dir.display())))?;
        for (i, a) in group_adams.iter().enumerate() {
            let path = group_state(&dir, i);
            a.save(&path)
                .map_err(|e| TrainError::Setup(format!("{}: {e}", path.display())))?;
        }
        checkpoint::save(&dir, Slot::Last, end.info(&best), &vs, Some(&adam))?;
        if ctx.stop_after == Some((stage, epoch)) {
            return Ok(None);
        }
    }
    best.info
        .map(Some)
        .ok_or_else(|| TrainError::Setup("the baseline ran no epoch".into()))
}

/// Mean Dice_match of the method's prediction set over the validation units (slices, or
/// volumes for NIfTI manifests), by the loop D-Persona's stages use.
fn validate(ctx: &BaselineStage<'_>, model: &BaselineModel, epoch: u32) -> Result<f64, TrainError> {
    let predict_fn = |x: &Tensor| predict_set(model, x);
    let pick = |s: &eval::unit_metrics::UnitScores| Ok(s.dice_match);
    crate::validation::validate_with(
        ctx.cfg.seed,
        &predict_fn,
        &pick,
        ctx.val,
        ctx.device,
        BASELINE_STAGE,
        epoch,
    )
}
