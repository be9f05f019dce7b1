//! `dpersona train`: the run folder (config, info, `runs/latest`), the loaders of the
//! fold's training and validation selections, then each stage's method through the one
//! training loop ([`crate::fit`]): D-Persona's Stage I and Stage II, or one baseline.
use std::path::PathBuf;

use schemas::manifest::Manifest;
use tch::Device;

use crate::checkpoint::CheckpointInfo;
use crate::config::{adapt_to_manifest, SelectOn, TrainConfig};
use crate::error::TrainError;
use crate::fit::{fit, FitContext};
use crate::loader::{Dataset, FoldRole, Loader, LoaderConfig, Selection};
use crate::methods::{Baseline, DPersonaStage, BASELINE_STAGE};
use crate::run_dir::{RunDir, RunInfo};
use crate::train_log::TrainLog;

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
            stages: stages_of(&cfg, opts.stages),
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
    let stages = stages_of(&cfg, opts.stages);
    let ctx = FitContext {
        cfg: &cfg,
        run: &run,
        device: opts.device,
        train: &train_loader,
        val: &val_loader,
        progress: opts.progress,
        fingerprint: manifest.header.fingerprint.clone(),
        backbone_weights: opts.backbone_weights.as_deref(),
        stop_after: opts.stop_after,
    };
    let mut log = TrainLog::open(&run)?;
    let mut best = Vec::new();
    for stage in stages {
        let done = match &cfg.baseline {
            Some(spec) => fit(&mut Baseline::new(&cfg, spec, opts.device)?, &ctx, &mut log)?,
            None => fit(
                &mut DPersonaStage::new(&cfg, stage, opts.device)?,
                &ctx,
                &mut log,
            )?,
        };
        match done {
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

/// The stages a run trains: D-Persona's requested ones, a baseline's one.
fn stages_of(cfg: &TrainConfig, stages: Stages) -> Vec<u8> {
    if cfg.baseline.is_some() {
        vec![BASELINE_STAGE]
    } else {
        stages.list()
    }
}
