//! The one training loop every method runs through (method.md §4): epochs with the
//! learning-rate schedule, seeded steps, the NaN policy, validation on eval's units, the
//! `best` checkpoint (ties go to the later epoch, as the authors' loop does) and the `last`
//! checkpoint with the optimiser state, logs, early stopping and resume. `resume` continues
//! after the last completed epoch and, because every draw is seeded from (seed, stage,
//! epoch, step), reaches the same weights as an uninterrupted run.
//!
//! The loop knows no method by name: what it trains is a [`Method`]. D-Persona's two
//! stages are two calls of [`fit`], a baseline one.
//!
//! Modules:
//! - [`epoch_end`]: the validation row, `best` bookkeeping and the checkpoint sidecar.
//! - [`nan_policy`]: non-finite steps skipped, counted, and a stop after too many in a row.
//! - [`validation`]: the per-epoch validation metric on the units `dpersona eval` scores.
//! - [`term_sums`]: running means of the loss terms for the log line and progress bar.
pub mod epoch_end;
pub mod nan_policy;
pub mod term_sums;
pub mod validation;

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tch::nn::VarStore;
use tch::Device;

use crate::checkpoint::{self, CheckpointInfo, Slot};
use crate::config::PatienceFrom;
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::loader::Loader;
use crate::methods::{Method, OptimGroup, StepAt};
use crate::precision::{autocast, backward, LossScaler, Precision};
use crate::run_dir::RunDir;
use crate::seeding::{reseed, Stream};
use crate::train_log::{line_prefix, TrainLog};
use epoch_end::{log_row, BestSoFar, EpochEnd};
use nan_policy::NanGuard;
use term_sums::TermSums;

/// What one stage's loop needs besides the method.
pub struct FitContext<'a> {
    pub cfg: &'a TrainConfig,
    pub run: &'a RunDir,
    pub device: Device,
    pub train: &'a Loader,
    pub val: &'a Loader,
    /// Show an indicatif progress bar (and print each epoch's line above it).
    pub progress: bool,
    pub fingerprint: String,
    /// ImageNet weights for a fresh Stage I's backbone (see [`Method::start_weights`]).
    pub backbone_weights: Option<&'a Path>,
    /// End after this (stage, 0-based epoch) is complete and checkpointed.
    pub stop_after: Option<(u8, u32)>,
}

/// Where a stage starts: fresh, or after a completed epoch of an earlier session.
struct StartPoint {
    epoch: u32,
    step: u64,
    best_metric: f64,
    best_epoch: u32,
    rose_epoch: u32,
    empty_epoch: Option<u32>,
    skipped: u64,
}

/// Trains (or resumes) `method` for its stage; the stage's best checkpoint, or `None` when
/// `stop_after` ended the session before the stage was complete.
pub fn fit(
    method: &mut dyn Method,
    ctx: &FitContext<'_>,
    log: &mut TrainLog,
) -> Result<Option<CheckpointInfo>, TrainError> {
    let cfg = ctx.cfg;
    let stage = method.stage();
    let dir = ctx.run.stage_dir(stage);
    let epochs = method.epochs();
    if cfg.optim.channels_last {
        // Before the optimisers exist, so their moments are made in the same layout.
        crate::models::memory_format::vars_to_channels_last(method.vars());
    }
    if ctx.device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(cfg.optim.cudnn_benchmark);
    }
    let mut opts = method.optimizers();
    let patience = cfg.validation.patience;
    let min_epochs = cfg.validation.min_epochs.unwrap_or(0);
    let precision = cfg.optim.precision.resolve(ctx.device);
    let mut scaler = (precision == Precision::Fp16).then(LossScaler::default);

    let start = match checkpoint::read_info(&dir, Slot::Last)? {
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
            checkpoint::load_weights(&dir, &info, method.vars_mut())?;
            load_optimizers(ctx, &dir, &info, &mut opts)?;
            if let (Some(s), Some(saved)) = (scaler.as_mut(), &info.loss_scaler) {
                s.scale = saved.scale;
                s.good_steps = saved.good_steps;
            }
            StartPoint {
                epoch: info.epoch + 1,
                step: info.step,
                best_metric: info.best_metric,
                best_epoch: info.best_epoch,
                rose_epoch: info.rose_epoch.unwrap_or(info.best_epoch),
                empty_epoch: info.empty_epoch,
                skipped: info.skipped_nonfinite,
            }
        }
        None => {
            method.start_weights(ctx.run, ctx.backbone_weights)?;
            StartPoint {
                epoch: 0,
                step: 0,
                best_metric: f64::NEG_INFINITY,
                best_epoch: 0,
                rose_epoch: 0,
                empty_epoch: None,
                skipped: 0,
            }
        }
    };
    let mut best = BestSoFar {
        metric: start.best_metric,
        epoch: start.best_epoch,
        rose_epoch: start.rose_epoch,
        empty_epoch: start.empty_epoch,
        info: checkpoint::read_info(&dir, Slot::Best)?,
    };
    let patience_from = cfg.validation.patience_from;
    let stopped_early = start.epoch >= min_epochs.max(1)
        && patience_spent(patience, start.epoch - 1, best.patience_from(patience_from));
    if start.epoch >= epochs || stopped_early {
        return best.info.map(Some).ok_or_else(|| TrainError::Resume {
            run: ctx.run.root.clone(),
            reason: format!("stage {stage} is complete but has no best checkpoint"),
        });
    }

    // Rows of epochs about to be redone (a killed session may have logged them) go.
    log.truncate_after(stage, start.epoch.checked_sub(1));
    let batches = ctx.train.batches_per_epoch() as u64;
    let bar = progress_bar(ctx.progress, stage, epochs as u64 * batches);
    bar.set_position(start.epoch as u64 * batches);

    let metric_name = method.metric_name();
    let started = Instant::now();
    let mut step = start.step;
    let mut nan = NanGuard::new(start.skipped, cfg.nan.max_consecutive);
    for epoch in start.epoch..epochs {
        let schedule = &cfg.optim.schedule;
        let lr = schedule.lr(opts[0].lr0, epoch, epochs);
        for g in &mut opts {
            g.adam.set_lr(schedule.lr(g.lr0, epoch, epochs));
        }
        let mut sums = TermSums::default();
        for (i, batch) in ctx.train.epoch(epoch as u64).enumerate() {
            let batch = batch?;
            let mut rng = reseed(cfg.seed, Stream::Train, stage, epoch as u64, i as u64);
            let mut t = batch.tensors(ctx.device, true);
            if cfg.optim.channels_last {
                t.images = crate::models::memory_format::to_channels_last(&t.images);
            }
            let at = StepAt {
                epoch,
                step,
                rng: &mut rng,
            };
            let step_terms = autocast(precision, ctx.device, || method.train_step(&batch, &t, at));
            let Some(terms) = step_terms else {
                // Nothing to learn from (e.g. unet-rater's rater read no row): not a NaN.
                step += 1;
                bar.inc(1);
                continue;
            };
            let values = terms.values();
            let elapsed = started.elapsed().as_secs_f64();
            if nan.admit(&values, stage, epoch, step, lr, elapsed, log)? {
                zero_all_grads(method.vars());
                if backward(&terms.total, scaler.as_mut(), method.vars()) {
                    for g in &mut opts {
                        g.adam.step();
                    }
                } else {
                    log.push(log_row(
                        stage,
                        epoch,
                        step,
                        "event",
                        "fp16_overflow",
                        1.0,
                        lr,
                        elapsed,
                    ));
                }
                for (name, v) in &values {
                    log.push(log_row(stage, epoch, step, "train", name, *v, lr, elapsed));
                }
                sums.add(&values);
            }
            step += 1;
            bar.set_message(sums.short());
            bar.inc(1);
        }

        let validation::Validation { metric, empty } =
            validation::validate(&*method, cfg.seed, ctx.val, ctx.device, precision, epoch)?;
        let elapsed = started.elapsed().as_secs_f64();
        let end = EpochEnd {
            stage,
            epoch,
            step,
            metric_name: &metric_name,
            metric,
            empty,
            skipped: nan.skipped,
            seed: cfg.seed,
            config_hash: cfg.hash(),
            manifest_fingerprint: ctx.fingerprint.clone(),
            loss_scaler: scaler.clone(),
        };
        log.push(end.val_row(lr, elapsed));
        let improved = end.keep_best(&dir, method.vars(), &mut best)?;
        let early_stop = patience_spent(patience, epoch, best.patience_from(patience_from))
            && epoch + 1 >= min_epochs
            && epoch + 1 < epochs;
        if early_stop {
            log.push(log_row(
                stage,
                epoch,
                step,
                "event",
                "early_stop",
                1.0,
                lr,
                elapsed,
            ));
        }
        // Empty predictions: said on the line (they hold patience back under `after-empty`),
        // and an event when the stage ends on them.
        let ends_empty = empty && (early_stop || epoch + 1 == epochs);
        if ends_empty {
            log.push(log_row(
                stage,
                epoch,
                step,
                "event",
                "ends_empty",
                1.0,
                lr,
                elapsed,
            ));
        }
        log.push_line(
            stage,
            epoch,
            format!(
                "{} | {}{} | val {metric_name} {metric:.4}{} (best {:.4} @ epoch {}) | lr {lr:.3e} | {elapsed:.1} s{}{}{}",
                line_prefix(stage, epoch, epochs),
                method.label().map(|l| format!("{l} | ")).unwrap_or_default(),
                sums.long(),
                if improved { " *" } else { "" },
                best.metric,
                best.epoch + 1,
                if nan.skipped > 0 { format!(" | skipped non-finite steps: {}", nan.skipped) } else { String::new() },
                if early_stop {
                    format!(
                        " | early stop: no better val {metric_name} for {} epochs",
                        patience.unwrap_or_default()
                    )
                } else {
                    String::new()
                },
                if ends_empty {
                    " | every val prediction is still empty at the stage's end".to_string()
                } else if empty && patience_from == PatienceFrom::AfterEmpty && patience.is_some() {
                    " | every val prediction empty: patience waits".to_string()
                } else if empty {
                    " | every val prediction empty".to_string()
                } else {
                    String::new()
                },
            ),
        );
        log.flush()?;
        save_last(&dir, end.info(&best), method.vars(), &opts)?;
        if let Some(line) = log.last_line() {
            bar.println(line);
        }
        if ctx.stop_after == Some((stage, epoch)) {
            bar.finish_and_clear();
            return Ok(None);
        }
        if early_stop {
            break;
        }
    }
    bar.finish_and_clear();
    best.info
        .map(Some)
        .ok_or_else(|| TrainError::Setup(format!("stage {stage} ran no epoch")))
}

/// True when `patience` epochs have ended since `from` (`validation.patience`; none: train
/// every epoch): the epoch the metric last rose strictly above every earlier epoch, or with
/// `patience_from = "after-empty"` the last epoch of empty predictions if later. Ties do not
/// reset it: a metric stuck at one value is no progress, even though the tie moves the
/// `best` checkpoint to the later epoch as the authors' loop does.
pub fn patience_spent(patience: Option<u32>, epoch: u32, from: u32) -> bool {
    patience.is_some_and(|p| epoch.saturating_sub(from) >= p)
}

fn progress_bar(show: bool, stage: u8, len: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "stage {prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta} {msg}",
        )
        .expect("valid progress template"),
    );
    bar.set_prefix(stage.to_string());
    bar
}

/// File of optimiser `i`'s state (i >= 1) beside a `last` checkpoint; optimiser 0's state
/// is the checkpoint's own `.adam.safetensors`.
fn group_state(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("last.optimizer.group{}.safetensors", i - 1))
}

/// Writes the `last` checkpoint: the extra optimisers' states first, so that a `last`
/// sidecar never points at a newer state than theirs.
fn save_last(
    dir: &Path,
    info: CheckpointInfo,
    vs: &VarStore,
    opts: &[OptimGroup],
) -> Result<(), TrainError> {
    if opts.len() > 1 {
        std::fs::create_dir_all(dir)
            .map_err(|e| TrainError::Setup(format!("{}: {e}", dir.display())))?;
    }
    for (i, g) in opts.iter().enumerate().skip(1) {
        let path = group_state(dir, i);
        g.adam
            .save(&path)
            .map_err(|e| TrainError::Setup(format!("{}: {e}", path.display())))?;
    }
    checkpoint::save(dir, Slot::Last, info, vs, opts.first().map(|g| &g.adam))?;
    Ok(())
}

/// Restores every optimiser's state from a `last` checkpoint.
fn load_optimizers(
    ctx: &FitContext<'_>,
    dir: &Path,
    info: &CheckpointInfo,
    opts: &mut [OptimGroup],
) -> Result<(), TrainError> {
    let Some((first, rest)) = opts.split_first_mut() else {
        return Ok(());
    };
    checkpoint::load_optimizer(dir, info, &mut first.adam)?;
    for (i, g) in rest.iter_mut().enumerate() {
        let path = group_state(dir, i + 1);
        g.adam.load(&path).map_err(|e| TrainError::Resume {
            run: ctx.run.root.clone(),
            reason: format!("{}: {e}", path.display()),
        })?;
    }
    Ok(())
}

/// Clears every gradient of the store: Stage II computes (and must discard) gradients of
/// variables its optimiser does not hold.
fn zero_all_grads(vs: &VarStore) {
    for mut t in vs.trainable_variables() {
        t.zero_grad();
    }
}
