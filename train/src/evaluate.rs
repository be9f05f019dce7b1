//! `dpersona eval` on a trained run (method.md §5.1): Stage I draws N prior samples per
//! unit for each N asked; Stage II makes one personalised map per rater from a bank of M
//! prior draws. Units are 2D slices (LIDC) or volumes (NIfTI: a target's slices stacked
//! by `slice_index`). Scores and frames come from the eval crate; every row records the
//! checkpoint's SHA-256 and the seed.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use eval::metric_rows::{EvalContext, UnitId, UnitKind};
use eval::prediction_volumes::{read_geometry, VolumeGeometry, VolumeToSave};
use eval::predictions::{PredictionFiles, PredictionWriter, PredictionsHeader, SliceToSave};
use eval::results_frame::{write_results, Conventions, ResultsWritten};
use eval::unit_metrics::{score_unit, MetricOptions, ScoreError};
use schemas::manifest::Manifest;
use schemas::metrics::MetricRecord;
use tch::{Device, Tensor};

use crate::checkpoint::{self, Slot};
use crate::config::adapt_to_manifest;
use crate::error::TrainError;
use crate::infer::{predict, BatchPredictions, Outputs};
use crate::loader::{Dataset, FoldRole, Loader, LoaderConfig, Selection};
use crate::methods::build_model;
use crate::run_dir::RunDir;
use crate::seeding::{reseed, Stream};
use crate::units::UnitAssembler;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Loader(#[from] crate::loader::LoaderError),
    #[error(transparent)]
    RunDir(#[from] crate::run_dir::RunDirError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    Schema(#[from] schemas::SchemaError),
    #[error(transparent)]
    Frame(#[from] eval::results_frame::FrameError),
    #[error(transparent)]
    Predictions(#[from] eval::predictions::PredictionsError),
    #[error("{0}")]
    Setup(String),
}

/// Everything one evaluation needs.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub run: PathBuf,
    /// The run's name in the frame's `run` column (default: its folder's name). The folds of
    /// a `train --folds` root take the root's name, so that the report averages over them.
    pub run_name: Option<String>,
    /// Default: the manifest recorded in the run.
    pub manifest: Option<PathBuf>,
    pub out: PathBuf,
    /// Split to evaluate without a fold (default `test`).
    pub split: String,
    /// Default: the run's fold.
    pub fold: Option<u32>,
    /// Stage I sample counts N.
    pub samples: Vec<u32>,
    /// Stage II bank size M.
    pub bank: u32,
    /// Default: slice for LIDC manifests, volume for NIfTI ones.
    pub unit: Option<UnitKind>,
    /// Stages to evaluate (default: every stage with a best checkpoint).
    pub stages: Vec<u8>,
    pub ged_empty_pair: f64,
    pub seed: u64,
    pub save_predictions: Option<PathBuf>,
    pub device: Device,
    pub batch_size: usize,
}

/// One evaluation's mean Dice_match and GED (for the printed summary).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalLine {
    pub stage: u8,
    pub n_samples: u32,
    pub bank: u32,
    pub units: usize,
    pub ged: f64,
    pub dice_match: f64,
}

#[derive(Debug, Clone)]
pub struct EvalSummary {
    pub written: ResultsWritten,
    pub lines: Vec<EvalLine>,
    pub checkpoint_sha256: Vec<(u8, String)>,
}

/// What every evaluation of one `dpersona eval` call shares.
struct EvalEnv<'a> {
    loader: &'a Loader,
    device: Device,
    unit: UnitKind,
    metric_opts: &'a MetricOptions,
    /// `--save-predictions` root: each evaluation writes a sub-folder.
    save_root: Option<&'a Path>,
    fold: Option<u32>,
    seed: u64,
    /// (study, target) → voxel geometry, for NIfTI volumes (volume units only).
    geometry: HashMap<(String, String), VolumeGeometry>,
}

/// Evaluates the run's best checkpoints and merges the rows into `opts.out`.
pub fn evaluate(opts: &EvalOptions) -> Result<EvalSummary, EvalError> {
    // `unet-rater` for all raters: RUN holds no run of its own but one per rater in
    // RUN/rater_K/ (baselines::rater_ensemble); the first stands for the shared settings.
    let members = crate::rater_ensemble::members(&opts.run);
    let run = RunDir::new(
        members
            .as_ref()
            .map_or(opts.run.as_path(), |m| m[0].as_path()),
    );
    let mut cfg = run.read_config()?;
    let (manifest, fold) = scoring_manifest(
        &opts.run,
        &run,
        &mut cfg,
        opts.manifest.as_deref(),
        opts.fold,
    )?;
    let selection = match fold {
        Some(k) => Selection::fold(k, FoldRole::Test),
        None => Selection::split(&opts.split),
    };
    let unit = opts
        .unit
        .unwrap_or_else(|| UnitAssembler::default_unit(&manifest));
    let dataset = Dataset::from_manifest(manifest.clone(), &selection)?;
    // NIfTI volumes carry the shards' voxel size; read it only when they are written.
    let geometry = if opts.save_predictions.is_some() && unit == UnitKind::Volume {
        let mut studies: Vec<String> = (0..dataset.len())
            .map(|i| dataset.get(i).id.study_id.clone())
            .collect();
        studies.dedup();
        read_geometry(&manifest, &studies)?
    } else {
        HashMap::new()
    };
    let loader = Loader::new(
        dataset,
        LoaderConfig {
            threads: cfg.loader.threads,
            ..LoaderConfig::eval(opts.batch_size.max(1))
        },
    )?;
    let metric_opts = MetricOptions {
        ged_empty_pair: opts.ged_empty_pair,
        ..MetricOptions::default()
    };
    let env = EvalEnv {
        loader: &loader,
        device: opts.device,
        unit,
        metric_opts: &metric_opts,
        save_root: opts.save_predictions.as_deref(),
        fold,
        seed: opts.seed,
        geometry,
    };
    let run_name = opts
        .run_name
        .clone()
        .unwrap_or_else(|| folder_name(&opts.run));
    let stages = trained_stages(&opts.run, &run, &opts.stages)?;

    let mut rows: Vec<MetricRecord> = Vec::new();
    let mut lines = Vec::new();
    let mut shas = Vec::new();
    if let Some(spec) = cfg.baseline.clone() {
        // A baseline has one stage; its outputs are the method's prediction set (S maps).
        let stage = crate::methods::BASELINE_STAGE;
        let load = |dir: &Path, vs: &mut tch::nn::VarStore| load_checked(dir, &read_best(dir)?, vs);
        let loaded = match &members {
            Some(m) => crate::rater_ensemble::load_members(m, &manifest, opts.device, load)?,
            None => crate::rater_ensemble::load_one(
                &cfg,
                &spec,
                &run.stage_dir(stage),
                opts.device,
                load,
            )?,
        };
        let sha = loaded.checkpoint_sha256.clone();
        shas.push((stage, sha.clone()));
        let n_samples = match &spec {
            crate::baselines::BaselineSpec::ProbUnet(o) => o.eval_samples as u32,
            crate::baselines::BaselineSpec::Tab(o) => o.eval_samples as u32,
            _ => 0,
        };
        let ctx = EvalContext {
            run: run_name.clone(),
            method: spec.name().into(),
            stage,
            n_samples,
            bank: 0,
            fold: fold.unwrap_or(0),
            seed: opts.seed,
            checkpoint_sha256: sha,
        };
        let predict_fn = |x: &Tensor| loaded.predict(x);
        lines.push(env.evaluate_once(&ctx, spec.name(), &predict_fn, &mut rows)?);
    } else {
        for stage in stages {
            let dir = run.stage_dir(stage);
            let best = read_best(&dir)?;
            let (mut vs, model) = build_model(&cfg, opts.device)?;
            let sha = load_checked(&dir, &best, &mut vs)?;
            shas.push((stage, sha.clone()));
            let evaluations: Vec<(Outputs, u32, u32)> = if stage == 1 {
                opts.samples
                    .iter()
                    .map(|&n| (Outputs::Samples(n as i64), n, 0))
                    .collect()
            } else {
                vec![(
                    Outputs::Personalised {
                        bank: opts.bank as i64,
                    },
                    0,
                    opts.bank,
                )]
            };
            for (outputs, n_samples, bank) in evaluations {
                let ctx = EvalContext {
                    run: run_name.clone(),
                    method: "dpersona".into(),
                    stage,
                    n_samples,
                    bank,
                    fold: fold.unwrap_or(0),
                    seed: opts.seed,
                    checkpoint_sha256: sha.clone(),
                };
                let sub = if stage == 1 {
                    format!("stage1_n{n_samples}")
                } else {
                    format!("stage2_bank{bank}")
                };
                let predict_fn = |x: &Tensor| predict(&model, x, outputs);
                lines.push(env.evaluate_once(&ctx, &sub, &predict_fn, &mut rows)?);
            }
        }
    }
    eval::slice_positions::fill_z_mm(&mut rows, &manifest)?;
    let written = write_results(
        &opts.out,
        &rows,
        &Conventions::new(&metric_opts, unit, opts.seed),
    )?;
    Ok(EvalSummary {
        written,
        lines,
        checkpoint_sha256: shas,
    })
}

/// The manifest a trained run is scored on (`manifest`, else the one it was trained on),
/// checked against the run, with `cfg` adapted to it, and the fold to score (`fold`, else
/// the run's). `run_root` names the run in errors; `run` holds its config and run.json.
pub(crate) fn scoring_manifest(
    run_root: &Path,
    run: &RunDir,
    cfg: &mut crate::config::TrainConfig,
    manifest: Option<&Path>,
    fold: Option<u32>,
) -> Result<(Manifest, Option<u32>), EvalError> {
    let info = run.read_info()?;
    let manifest = Manifest::read(manifest.unwrap_or(&info.manifest))?;
    check_manifest_matches_run(run_root, cfg, &info, &manifest)?;
    adapt_to_manifest(cfg, &manifest);
    Ok((manifest, fold.or(info.fold)))
}

/// The stages to score: `requested`, or every stage with a best checkpoint; an error when
/// there is none.
pub(crate) fn trained_stages(
    run_root: &Path,
    run: &RunDir,
    requested: &[u8],
) -> Result<Vec<u8>, EvalError> {
    let stages = run.stages_or_trained(requested);
    if stages.is_empty() {
        return Err(EvalError::Setup(format!(
            "{}: no stage has a best checkpoint yet (no stage*/best.json); train first",
            run_root.display()
        )));
    }
    Ok(stages)
}

/// A run's name in frames: its folder's name.
pub(crate) fn folder_name(run: &Path) -> String {
    run.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| run.display().to_string())
}

/// Refuses a manifest the run cannot be evaluated on: other rater or channel counts than
/// the run was trained with (its config.toml), or another crop size than the manifest it
/// was trained on (checked when that manifest is another file and still readable: the run
/// records only its path).
fn check_manifest_matches_run(
    run_root: &Path,
    cfg: &crate::config::TrainConfig,
    info: &crate::run_dir::RunInfo,
    manifest: &Manifest,
) -> Result<(), EvalError> {
    let h = &manifest.header;
    let disagree = |what: String| {
        EvalError::Setup(format!(
            "manifest {} does not match run {}: {what}",
            manifest.path.display(),
            run_root.display()
        ))
    };
    if h.raters.len() as i64 != cfg.model.raters {
        return Err(disagree(format!(
            "the manifest has {} raters ({}), the run was trained with {} (config.toml model.raters)",
            h.raters.len(),
            h.raters.join(", "),
            cfg.model.raters
        )));
    }
    if h.channels.len() as i64 != cfg.model.in_channels {
        return Err(disagree(format!(
            "the manifest has {} image channels ({}), the run was trained with {} (config.toml model.in_channels)",
            h.channels.len(),
            h.channels.join(", "),
            cfg.model.in_channels
        )));
    }
    if manifest.path != info.manifest {
        if let Ok(trained) = Manifest::read(&info.manifest) {
            if trained.header.crop_size != h.crop_size {
                return Err(disagree(format!(
                    "the manifest crops to {0}x{0} px, the run was trained on {1}x{1} px crops ({2})",
                    h.crop_size,
                    trained.header.crop_size,
                    info.manifest.display()
                )));
            }
        }
    }
    Ok(())
}

/// The best checkpoint's sidecar of a stage folder, or an error saying it is missing.
pub(crate) fn read_best(dir: &Path) -> Result<checkpoint::CheckpointInfo, EvalError> {
    checkpoint::read_info(dir, Slot::Best)?.ok_or_else(|| {
        EvalError::Setup(format!(
            "{}: no best checkpoint (best.json is missing); train first",
            dir.display()
        ))
    })
}

/// Loads `best` into `vs` and checks the weights' SHA-256 against the sidecar; returns it.
pub(crate) fn load_checked(
    dir: &Path,
    best: &checkpoint::CheckpointInfo,
    vs: &mut tch::nn::VarStore,
) -> Result<String, EvalError> {
    let expected = dir.join(&best.weights);
    if !expected.exists() {
        return Err(EvalError::Setup(format!(
            "{}: the weights file that best.json names is missing; the checkpoint is incomplete (train again or restore the file)",
            expected.display()
        )));
    }
    let weights = checkpoint::load_weights(dir, best, vs)?;
    let sha = schemas::hashing::sha256_file(&weights)?;
    if sha != best.weights_sha256 {
        return Err(EvalError::Setup(format!(
            "{}: SHA-256 {sha} differs from {} recorded in best.json (file changed)",
            weights.display(),
            best.weights_sha256
        )));
    }
    Ok(sha)
}

/// Mean GED and Dice_match of `rows` (one evaluation's rows).
fn summary_line(rows: &[MetricRecord], ctx: &EvalContext, units: usize) -> EvalLine {
    let mean = |name: &str| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.metric == name)
            .map(|r| r.value)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    EvalLine {
        stage: ctx.stage,
        n_samples: ctx.n_samples,
        bank: ctx.bank,
        units,
        ged: mean(eval::metric_rows::names::GED),
        dice_match: mean(eval::metric_rows::names::DICE_MATCH),
    }
}

impl EvalEnv<'_> {
    /// One evaluation (one method/stage/N/bank): the predictions sub-folder `sub` when
    /// `--save-predictions` is given, the inference reseed (as the authors reset the seed
    /// per evaluation), then every unit predicted and scored into `rows`.
    fn evaluate_once(
        &self,
        ctx: &EvalContext,
        sub: &str,
        predict_fn: &dyn Fn(&Tensor) -> Tensor,
        rows: &mut Vec<MetricRecord>,
    ) -> Result<EvalLine, EvalError> {
        let writer = match self.save_root {
            Some(root) => Some(PredictionWriter::create(
                &root.join(sub),
                &PredictionsHeader::new(ctx, self.unit, self.fold),
            )?),
            None => None,
        };
        reseed(
            self.seed,
            Stream::Inference,
            ctx.stage,
            ctx.n_samples as u64,
            ctx.bank as u64,
        );
        let before = rows.len();
        let units = self.run_one(predict_fn, ctx, writer.as_ref(), rows)?;
        Ok(summary_line(&rows[before..], ctx, units))
    }

    /// Predicts every slice of the loader, groups slices into units and scores (and saves)
    /// each unit as soon as it is complete. Returns the number of units (including any
    /// that no rater read, which have no rows).
    fn run_one(
        &self,
        predict_fn: &dyn Fn(&Tensor) -> Tensor,
        ctx: &EvalContext,
        writer: Option<&PredictionWriter>,
        rows: &mut Vec<MetricRecord>,
    ) -> Result<usize, EvalError> {
        let mut units = UnitAssembler::new(self.unit, self.loader.dataset());
        let nifti =
            writer.is_some() && PredictionFiles::for_unit(self.unit) == PredictionFiles::Nifti;
        for batch in self.loader.epoch(0) {
            let batch = batch?;
            let (x, _) = batch.to_tensors(self.device);
            let preds = BatchPredictions::new(&batch, &predict_fn(&x));
            let chw = batch.c * batch.h * batch.w;
            for b in 0..batch.b {
                let id = &batch.rows[b];
                let probs = preds.probs_of(b);
                let raters = preds.raters_of(b);
                let image = &batch.images[b * chw..b * chw + batch.h * batch.w];
                if let (Some(w), false) = (writer, nifti) {
                    w.write_slice(&SliceToSave {
                        study_id: &id.study_id,
                        target_id: &id.target_id,
                        slice_index: id.slice_index,
                        height: batch.h as u32,
                        width: batch.w as u32,
                        image,
                        raters: &raters,
                        probs: &probs,
                    })?;
                }
                let Some(unit) = units.push(id, &probs, &raters, image) else {
                    continue;
                };
                if let (Some(w), true) = (writer, nifti) {
                    let key = (unit.id.study_id.clone(), unit.id.target_id.clone());
                    w.write_volume(&VolumeToSave {
                        study_id: &unit.id.study_id,
                        target_id: &unit.id.target_id,
                        depth: unit.depth as u32,
                        height: batch.h as u32,
                        width: batch.w as u32,
                        geometry: self.geometry.get(&key).copied().unwrap_or_default(),
                        image: &unit.image,
                        raters: &unit.rater_refs(),
                        probs: &unit.prob_refs(),
                    })?;
                }
                let scores = score_unit(&unit.rater_refs(), &unit.prob_refs(), self.metric_opts);
                push_scores(scores, ctx, &unit.id, rows)?;
            }
        }
        units.finish().map_err(EvalError::Setup)
    }
}

fn push_scores(
    scores: Result<eval::unit_metrics::UnitScores, ScoreError>,
    ctx: &EvalContext,
    uid: &UnitId,
    rows: &mut Vec<MetricRecord>,
) -> Result<(), EvalError> {
    match scores {
        Ok(s) => {
            rows.extend(s.to_records(ctx, uid));
            Ok(())
        }
        // A unit that no rater read has no label: it is left out, as in the authors' data.
        Err(ScoreError::NoRaters) => Ok(()),
        Err(e) => Err(EvalError::Setup(format!(
            "{}/{}: {e}",
            uid.study_id, uid.target_id
        ))),
    }
}

/// Scores an existing predictions folder (`--predictions DIR`) into `out`.
pub fn evaluate_predictions_dir(
    dir: &Path,
    manifest: &Path,
    out: &Path,
    ged_empty_pair: f64,
) -> Result<(ResultsWritten, usize), EvalError> {
    let manifest = Manifest::read(manifest)?;
    let opts = MetricOptions {
        ged_empty_pair,
        ..MetricOptions::default()
    };
    let scored = eval::predictions::score_predictions_dir(dir, &manifest, &opts)?;
    let written = write_results(out, &scored.rows, &scored.conventions)?;
    Ok((written, scored.units_scored))
}
