//! D-Persona's two training stages (method.md §3-§4) with validation, checkpoints, logs
//! and resume.
//!
//! Stage I trains backbone, prior, posterior and Fcomb on L_I; Stage II starts from Stage
//! I's best checkpoint and trains ONLY the heads on L_II (the optimiser holds nothing else).
//! Every epoch ends with validation, the `best` checkpoint (ties go to the later epoch) and
//! the `last` checkpoint with the Adam state; `resume` continues after the last completed
//! epoch and, because every draw is seeded from (seed, stage, epoch, step), reaches the
//! same weights as an uninterrupted run.
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;
use schemas::manifest::Manifest;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{self, CheckpointInfo, Slot};
use crate::config::{BnMode, RaterDraw, SelectOn, Stage2Selection, TrainConfig};
use crate::epoch_end::{log_row, BestSoFar, EpochEnd};
use crate::loader::{Dataset, FoldRole, Loader, LoaderConfig, LoaderError, Selection};
use crate::losses::{stage1_losses, stage2_loss};
use crate::models::DPersona;
use crate::nan_policy::NanGuard;
use crate::optim::{Adam, AdamParams};
use crate::run_dir::{RunDir, RunInfo};
use crate::seeding::{reseed, Stream};
use crate::train_log::{line_prefix, TrainLog};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Loader(#[from] LoaderError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    RunDir(#[from] crate::run_dir::RunDirError),
    #[error(transparent)]
    Schema(#[from] schemas::SchemaError),
    #[error(transparent)]
    Weights(#[from] crate::models::WeightsError),
    #[error(
        "stage {stage} epoch {epoch} step {step}: loss term `{term}` = {value} was not finite for {count} steps in a row \
         (nan.max_consecutive = {max}); lower optim.lr or check the data"
    )]
    NonFinite {
        stage: u8,
        epoch: u32,
        step: u64,
        term: String,
        value: f64,
        count: u32,
        max: u32,
    },
    #[error("{run}: {reason}")]
    Resume { run: PathBuf, reason: String },
    #[error("validation: {0}")]
    Validation(String),
    #[error("{0}")]
    Setup(String),
}

/// Which stages to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stages {
    One,
    Two,
    Both,
}

impl Stages {
    pub fn list(self) -> Vec<u8> {
        match self {
            Stages::One => vec![1],
            Stages::Two => vec![2],
            Stages::Both => vec![1, 2],
        }
    }
}

/// Everything one `train` call needs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub manifest: PathBuf,
    pub run: PathBuf,
    /// Resolved configuration (ignored on resume: the run's `config.toml` is used).
    pub config: TrainConfig,
    pub preset: String,
    pub fold: Option<u32>,
    pub stages: Stages,
    pub device: Device,
    pub resume: bool,
    pub backbone_weights: Option<PathBuf>,
    /// Show an indicatif progress bar.
    pub progress: bool,
    /// Where to record this run as the latest (`runs/latest` for the CLI).
    pub latest_pointer: Option<PathBuf>,
    /// End the session after this (stage, 0-based epoch) is complete and checkpointed, as
    /// if the process had been stopped there (tests of resume; time-sliced jobs).
    pub stop_after: Option<(u8, u32)>,
}

/// What a finished training call left behind.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub run: PathBuf,
    /// Best checkpoint of each stage that completed (stage, sidecar).
    pub best: Vec<(u8, CheckpointInfo)>,
    /// False when `stop_after` ended the session early.
    pub completed: bool,
}

/// Training and validation selections for a fold (or the split columns without one).
pub fn selections(fold: Option<u32>, select_on: SelectOn) -> (Selection, Selection) {
    match (fold, select_on) {
        (Some(k), SelectOn::Test) => (
            Selection::fold(k, FoldRole::Train),
            Selection::fold(k, FoldRole::Test),
        ),
        (Some(k), SelectOn::Val) => (
            Selection {
                split: Some("train".into()),
                fold: Some((k, FoldRole::Train)),
            },
            Selection {
                split: Some("val".into()),
                fold: Some((k, FoldRole::Train)),
            },
        ),
        (None, SelectOn::Val) => (Selection::split("train"), Selection::split("val")),
        (None, SelectOn::Test) => (Selection::split("train"), Selection::split("test")),
    }
}

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

/// Runs the requested stages into `opts.run`.
pub fn train(opts: &TrainOptions) -> Result<TrainSummary, TrainError> {
    let run = RunDir::new(&opts.run);
    let manifest = Manifest::read(&opts.manifest)?;
    let cfg = if opts.resume {
        if !run.exists() {
            return Err(TrainError::Resume {
                run: opts.run.clone(),
                reason: "--resume given but the folder holds no config.toml (no run to resume)"
                    .into(),
            });
        }
        let info = run.read_info()?;
        if info.manifest_fingerprint != manifest.header.fingerprint {
            return Err(TrainError::Resume {
                run: opts.run.clone(),
                reason: format!(
                    "was trained on a manifest with fingerprint {}, {} has {}",
                    info.manifest_fingerprint,
                    opts.manifest.display(),
                    manifest.header.fingerprint
                ),
            });
        }
        run.read_config()?
    } else {
        if run.exists() {
            return Err(TrainError::Setup(format!(
                "{} already holds a run; pass --resume to continue it or choose another --out",
                opts.run.display()
            )));
        }
        let mut cfg = opts.config.clone();
        adapt_to_manifest(&mut cfg, &manifest);
        cfg.validate().map_err(TrainError::Setup)?;
        run.write_config(&cfg)?;
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        run.write_info(&RunInfo {
            manifest: std::path::absolute(&opts.manifest).unwrap_or_else(|_| opts.manifest.clone()),
            manifest_fingerprint: manifest.header.fingerprint.clone(),
            dataset: manifest.header.dataset.clone(),
            fold: opts.fold,
            preset: opts.preset.clone(),
            method: cfg
                .baseline
                .as_ref()
                .map_or("dpersona", |b| b.name())
                .into(),
            stages: if cfg.baseline.is_some() {
                vec![crate::baseline_trainer::BASELINE_STAGE]
            } else {
                opts.stages.list()
            },
            created_unix_s: created,
            dpersona_version: env!("CARGO_PKG_VERSION").into(),
        })?;
        cfg
    };
    if let Some(p) = &opts.latest_pointer {
        run.mark_latest(p)?;
    }
    let fold = if opts.resume {
        run.read_info()?.fold
    } else {
        opts.fold
    };
    let (train_sel, val_sel) = selections(fold, cfg.validation.select_on);
    let mut train_ds = Dataset::from_manifest(manifest.clone(), &train_sel)?;
    if let Some(fusion) = cfg.baseline.as_ref().and_then(|b| b.fusion()) {
        // MV/STAPLE targets of the training studies (cached beside the manifest), carried
        // by the loader so that they go through the masks' augmentation.
        let mut studies: Vec<String> = train_ds
            .slices_per_study()
            .keys()
            .map(|s| s.to_string())
            .collect();
        studies.sort();
        let fused = crate::baselines::fusion::fused_labels(&manifest, &studies, &fusion)
            .map_err(|e| TrainError::Setup(format!("{} labels: {e}", fusion.name())))?;
        if opts.progress {
            // Fusion (STAPLE above all) is the costly step a rerun should not repeat: say
            // which happened.
            eprintln!(
                "{} labels: {} {} ({} slices)",
                fusion.name(),
                if fused.reused {
                    "reused the cache"
                } else {
                    "computed and cached in"
                },
                fused.path.display(),
                fused.rows.len()
            );
        }
        train_ds = train_ds.with_targets(|id| fused.get(id))?;
    }
    let val_ds = Dataset::from_manifest(manifest.clone(), &val_sel)?;
    let train_loader = Loader::new(
        train_ds,
        LoaderConfig {
            batch_size: cfg.optim.batch_size,
            threads: cfg.loader.threads,
            prefetch: cfg.loader.prefetch,
            shuffle: true,
            augment: cfg.loader.augment,
            seed: cfg.seed,
            ..LoaderConfig::default()
        },
    )?;
    let val_loader = Loader::new(
        val_ds,
        LoaderConfig {
            threads: cfg.loader.threads,
            prefetch: cfg.loader.prefetch,
            ..LoaderConfig::eval(cfg.validation.batch_size)
        },
    )?;
    let ctx = StageContext {
        cfg: &cfg,
        run: &run,
        device: opts.device,
        train: &train_loader,
        val: &val_loader,
        progress: opts.progress,
        fingerprint: manifest.header.fingerprint.clone(),
    };
    let mut log = TrainLog::open(&run)?;
    if let Some(spec) = &cfg.baseline {
        let stage = crate::baseline_trainer::BASELINE_STAGE;
        let done = crate::baseline_trainer::run_baseline(
            &crate::baseline_trainer::BaselineStage {
                cfg: &cfg,
                spec,
                run: &run,
                device: opts.device,
                train: &train_loader,
                val: &val_loader,
                fingerprint: manifest.header.fingerprint.clone(),
                stop_after: opts.stop_after,
            },
            &mut log,
        )?;
        return Ok(TrainSummary {
            run: opts.run.clone(),
            completed: done.is_some(),
            best: done.map(|i| vec![(stage, i)]).unwrap_or_default(),
        });
    }
    let mut best = Vec::new();
    for stage in opts.stages.list() {
        match run_stage(
            &ctx,
            stage,
            &mut log,
            opts.backbone_weights.as_deref(),
            opts.stop_after,
        )? {
            Some(info) => best.push((stage, info)),
            None => {
                return Ok(TrainSummary {
                    run: opts.run.clone(),
                    best,
                    completed: false,
                })
            }
        }
    }
    Ok(TrainSummary {
        run: opts.run.clone(),
        best,
        completed: true,
    })
}

/// Image channels and raters come from the manifest, whatever the preset says.
pub fn adapt_to_manifest(cfg: &mut TrainConfig, manifest: &Manifest) {
    cfg.model.in_channels = manifest.header.channels.len() as i64;
    cfg.model.raters = manifest.header.raters.len() as i64;
}

struct StageContext<'a> {
    cfg: &'a TrainConfig,
    run: &'a RunDir,
    device: Device,
    train: &'a Loader,
    val: &'a Loader,
    progress: bool,
    fingerprint: String,
}

/// Where a stage starts: fresh, or after a completed epoch of an earlier session.
struct StartPoint {
    epoch: u32,
    step: u64,
    best_metric: f64,
    best_epoch: u32,
    skipped: u64,
}

fn run_stage(
    ctx: &StageContext<'_>,
    stage: u8,
    log: &mut TrainLog,
    backbone_weights: Option<&Path>,
    stop_after: Option<(u8, u32)>,
) -> Result<Option<CheckpointInfo>, TrainError> {
    let cfg = ctx.cfg;
    let dir = ctx.run.stage_dir(stage);
    let epochs = cfg.epochs(stage);
    let (mut vs, model) = build_model(cfg, ctx.device)?;
    let adam_vars = if stage == 1 {
        Adam::select(&vs, &[], &[DPersona::head_prefix()])
    } else {
        Adam::select(&vs, &[DPersona::head_prefix()], &[])
    };
    let params = AdamParams {
        beta1: cfg.optim.beta1,
        beta2: cfg.optim.beta2,
        eps: cfg.optim.eps,
    };
    let mut adam = Adam::new(adam_vars, params, cfg.optim.lr);

    let last = checkpoint::read_info(&dir, Slot::Last)?;
    let start = match last {
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
            StartPoint {
                epoch: info.epoch + 1,
                step: info.step,
                best_metric: info.best_metric,
                best_epoch: info.best_epoch,
                skipped: info.skipped_nonfinite,
            }
        }
        None => {
            if stage == 2 {
                let s1 = ctx.run.stage_dir(1);
                let best = checkpoint::read_info(&s1, Slot::Best)?.ok_or_else(|| {
                    TrainError::Setup(format!(
                        "stage 2 starts from stage 1's best checkpoint, but {} has none; run stage 1 first",
                        s1.display()
                    ))
                })?;
                checkpoint::load_weights(&s1, &best, &mut vs)?;
            } else if let Some(file) = backbone_weights {
                crate::models::load_backbone_weights(&mut vs, file, cfg.model.in_channels)?;
            }
            StartPoint {
                epoch: 0,
                step: 0,
                best_metric: f64::NEG_INFINITY,
                best_epoch: 0,
                skipped: 0,
            }
        }
    };
    let mut best = BestSoFar {
        metric: start.best_metric,
        epoch: start.best_epoch,
        info: checkpoint::read_info(&dir, Slot::Best)?,
    };
    if start.epoch >= epochs {
        return best.info.map(Some).ok_or_else(|| TrainError::Resume {
            run: ctx.run.root.clone(),
            reason: format!("stage {stage} is complete but has no best checkpoint"),
        });
    }

    // Rows of epochs about to be redone (a killed session may have logged them) go.
    log.truncate_after(stage, start.epoch.checked_sub(1));
    let batches = ctx.train.batches_per_epoch() as u64;
    let bar = if ctx.progress {
        let bar = ProgressBar::new((epochs as u64) * batches);
        bar.set_style(
            ProgressStyle::with_template(
                "stage {prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta} {msg}",
            )
            .expect("valid progress template"),
        );
        bar.set_prefix(stage.to_string());
        bar.set_position(start.epoch as u64 * batches);
        bar
    } else {
        ProgressBar::hidden()
    };

    let metric_name = metric_name(stage, cfg.validation.stage2_selection);
    let started = Instant::now();
    let mut step = start.step;
    let mut nan = NanGuard::new(start.skipped, cfg.nan.max_consecutive);
    for epoch in start.epoch..epochs {
        let lr = cfg.optim.schedule.lr(cfg.optim.lr, epoch, epochs);
        adam.set_lr(lr);
        let mut sums = TermSums::default();
        for (i, batch) in ctx.train.epoch(epoch as u64).enumerate() {
            let batch = batch?;
            let mut rng = reseed(cfg.seed, Stream::Train, stage, epoch as u64, i as u64);
            let t = batch.tensors(ctx.device, true);
            let terms: Vec<(&'static str, Tensor)> = if stage == 1 {
                let rater = match cfg.losses.rater_draw {
                    RaterDraw::PerBatch => {
                        let r = rng.random_range(0..batch.r as i64);
                        Tensor::full([batch.b as i64], r, (Kind::Int64, ctx.device))
                    }
                    RaterDraw::PerSample => {
                        let rs: Vec<i64> = (0..batch.b)
                            .map(|_| rng.random_range(0..batch.r as i64))
                            .collect();
                        Tensor::from_slice(&rs).to_device(ctx.device)
                    }
                };
                let opts = cfg.losses.stage1_options();
                let (union, intersection) = t.stage1_consensus(cfg.stage2.mask_absent_raters);
                let l = stage1_losses(
                    &model,
                    &t.images,
                    &t.masks,
                    &union,
                    &intersection,
                    &rater,
                    &opts,
                    true,
                );
                vec![
                    ("total", l.total),
                    ("rec", l.rec),
                    ("kl", l.kl),
                    ("bound", l.bound),
                    ("l2", l.l2),
                ]
            } else {
                let total = stage2_loss(
                    &model,
                    &t.images,
                    &t.masks,
                    cfg.stage2.bank,
                    cfg.stage2.backbone_bn == BnMode::Train,
                    cfg.stage2.heads_dropout,
                    cfg.stage2.mask_absent_raters.then_some(&t.present),
                );
                vec![("total", total)]
            };
            let values: Vec<(&'static str, f64)> = terms
                .iter()
                .map(|(n, t)| (*n, t.double_value(&[])))
                .collect();
            let elapsed = started.elapsed().as_secs_f64();
            if nan.admit(&values, stage, epoch, step, lr, elapsed, log)? {
                zero_all_grads(&vs);
                terms[0].1.backward();
                adam.step();
                for (name, v) in &values {
                    log.push(log_row(stage, epoch, step, "train", name, *v, lr, elapsed));
                }
                sums.add(&values);
            }
            step += 1;
            bar.set_message(sums.short());
            bar.inc(1);
        }

        let metric =
            crate::validation::validate(ctx.cfg, &model, ctx.val, ctx.device, stage, epoch)?;
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
                "{} | {} | val {metric_name} {metric:.4}{} (best {:.4} @ epoch {}) | lr {lr:.3e} | {elapsed:.1} s{}",
                line_prefix(stage, epoch, epochs),
                sums.long(),
                if improved { " *" } else { "" },
                best.metric,
                best.epoch + 1,
                if nan.skipped > 0 { format!(" | skipped non-finite steps: {}", nan.skipped) } else { String::new() },
            ),
        );
        log.flush()?;
        checkpoint::save(&dir, Slot::Last, end.info(&best), &vs, Some(&adam))?;
        if let Some(line) = log.last_line() {
            bar.println(line);
        }
        if stop_after == Some((stage, epoch)) {
            bar.finish_and_clear();
            return Ok(None);
        }
    }
    bar.finish_and_clear();
    best.info
        .map(Some)
        .ok_or_else(|| TrainError::Setup(format!("stage {stage} ran no epoch")))
}

/// The validation metric's name in logs and checkpoints.
pub fn metric_name(stage: u8, sel: Stage2Selection) -> String {
    match (stage, sel) {
        (1, _) => eval::metric_rows::names::DICE_MATCH.to_string(),
        (_, Stage2Selection::Matched) => eval::metric_rows::names::DICE_MEAN_MATCHED.to_string(),
        (_, Stage2Selection::Identity) => eval::metric_rows::names::DICE_MEAN_IDENTITY.to_string(),
    }
}

/// Clears every gradient of the store: Stage II computes (and must discard) gradients of
/// variables its optimiser does not hold.
fn zero_all_grads(vs: &VarStore) {
    for mut t in vs.trainable_variables() {
        t.zero_grad();
    }
}

/// Running means of the loss terms over one epoch.
#[derive(Default)]
struct TermSums {
    names: Vec<&'static str>,
    sums: Vec<f64>,
    n: usize,
}

impl TermSums {
    fn add(&mut self, values: &[(&'static str, f64)]) {
        if self.names.is_empty() {
            self.names = values.iter().map(|(n, _)| *n).collect();
            self.sums = vec![0.0; values.len()];
        }
        for (s, (_, v)) in self.sums.iter_mut().zip(values) {
            *s += v;
        }
        self.n += 1;
    }

    fn means(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        let n = self.n.max(1) as f64;
        self.names
            .iter()
            .zip(&self.sums)
            .map(move |(name, s)| (*name, s / n))
    }

    fn long(&self) -> String {
        if self.n == 0 {
            return "no finite step".into();
        }
        self.means()
            .map(|(n, v)| format!("{n} {v:.4}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn short(&self) -> String {
        self.means()
            .map(|(n, v)| format!("{n} {v:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
