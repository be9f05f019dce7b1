//! `dpersona eval` on a trained run (method.md §5.1): Stage I draws N prior samples per
//! unit for each N asked; Stage II makes one personalised map per rater from a bank of M
//! prior draws. Units are 2D slices (LIDC) or volumes (NIfTI: a target's slices stacked
//! by `slice_index`). Scores and frames come from the eval crate; every row records the
//! checkpoint's SHA-256 and the seed.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use eval::metric_rows::{EvalContext, UnitId, UnitKind};
use eval::predictions::{PredictionWriter, PredictionsHeader, SliceToSave};
use eval::results_frame::{write_results, Conventions, ResultsWritten};
use eval::unit_metrics::{score_unit, MetricOptions, ScoreError};
use schemas::manifest::{Manifest, SourceKind};
use schemas::metrics::MetricRecord;
use tch::{Device, Tensor};

use crate::checkpoint::{self, Slot};
use crate::infer::{predict, BatchPredictions, Outputs};
use crate::loader::{Dataset, FoldRole, Loader, LoaderConfig, Selection};
use crate::run_dir::RunDir;
use crate::seeding::{reseed, Stream};
use crate::trainer::{adapt_to_manifest, build_model, TrainError};

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

/// One slice's N probability maps `[HW]` and R rater masks `[HW]` (None = missing).
type SliceMaps = (Vec<Vec<f32>>, Vec<Option<Vec<u8>>>);

/// Probability maps and labels of one unit while its slices arrive.
struct UnitAccum {
    study_id: String,
    target_id: String,
    /// slice_index → that slice's maps.
    slices: BTreeMap<i32, SliceMaps>,
}

/// Evaluates the run's best checkpoints and merges the rows into `opts.out`.
pub fn evaluate(opts: &EvalOptions) -> Result<EvalSummary, EvalError> {
    // `unet-rater` for all raters: RUN holds no run of its own but one per rater in
    // RUN/rater_K/ (baselines::rater_ensemble); the first stands for the shared settings.
    let members = crate::baselines::rater_ensemble::members(&opts.run);
    let run = RunDir::new(
        members
            .as_ref()
            .map_or(opts.run.as_path(), |m| m[0].as_path()),
    );
    let mut cfg = run.read_config()?;
    let info = run.read_info()?;
    let manifest_path = opts
        .manifest
        .clone()
        .unwrap_or_else(|| info.manifest.clone());
    let manifest = Manifest::read(&manifest_path)?;
    adapt_to_manifest(&mut cfg, &manifest);
    let fold = opts.fold.or(info.fold);
    let selection = match fold {
        Some(k) => Selection::fold(k, FoldRole::Test),
        None => Selection::split(&opts.split),
    };
    let unit = opts.unit.unwrap_or(match manifest.header.source_kind {
        SourceKind::Lidc => UnitKind::Slice,
        SourceKind::Nifti => UnitKind::Volume,
    });
    let dataset = Dataset::from_manifest(manifest.clone(), &selection)?;
    // Slices per (study, target), so a volume is scored as soon as its last slice arrives.
    let mut expected: HashMap<(String, String), usize> = HashMap::new();
    for i in 0..dataset.len() {
        let id = dataset.get(i).id;
        *expected
            .entry((id.study_id.clone(), id.target_id.clone()))
            .or_default() += 1;
    }
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
    let run_name = opts
        .run
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| opts.run.display().to_string());

    let stages: Vec<u8> = if opts.stages.is_empty() {
        [1u8, 2]
            .into_iter()
            .filter(|&s| run.stage_dir(s).join("best.json").exists())
            .collect()
    } else {
        opts.stages.clone()
    };
    if stages.is_empty() {
        return Err(EvalError::Setup(format!(
            "{}: no stage has a best checkpoint yet; train first",
            opts.run.display()
        )));
    }

    let mut rows: Vec<MetricRecord> = Vec::new();
    let mut lines = Vec::new();
    let mut shas = Vec::new();
    if let Some(spec) = cfg.baseline.clone() {
        // A baseline has one stage; its outputs are the method's prediction set (S maps).
        let stage = crate::baseline_trainer::BASELINE_STAGE;
        let load = |dir: &Path, vs: &mut tch::nn::VarStore| -> Result<String, EvalError> {
            let best = checkpoint::read_info(dir, Slot::Best)?.ok_or_else(|| {
                EvalError::Setup(format!(
                    "{}: no best checkpoint (best.json); train first",
                    dir.display()
                ))
            })?;
            load_checked(dir, &best, vs)
        };
        let loaded = match &members {
            Some(m) => {
                crate::baselines::rater_ensemble::load_members(m, &manifest, opts.device, load)?
            }
            None => crate::baselines::rater_ensemble::load_one(
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
        let writer = match &opts.save_predictions {
            Some(root) => Some(PredictionWriter::create(
                &root.join(spec.name()),
                &PredictionsHeader::new(&ctx, unit, fold),
            )?),
            None => None,
        };
        reseed(opts.seed, Stream::Inference, stage, n_samples as u64, 0);
        let predict_fn = |x: &Tensor| loaded.predict(x);
        let units = run_one(
            &loader,
            &predict_fn,
            opts.device,
            unit,
            &expected,
            &metric_opts,
            &ctx,
            writer.as_ref(),
            &mut rows,
        )?;
        lines.push(summary_line(&rows, stage, n_samples, 0, units));
        let written = write_results(
            &opts.out,
            &rows,
            &Conventions::new(&metric_opts, unit, opts.seed),
        )?;
        return Ok(EvalSummary {
            written,
            lines,
            checkpoint_sha256: shas,
        });
    }
    for stage in stages {
        let dir = run.stage_dir(stage);
        let best = checkpoint::read_info(&dir, Slot::Best)?.ok_or_else(|| {
            EvalError::Setup(format!("{}: no best checkpoint (best.json)", dir.display()))
        })?;
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
            let writer = match &opts.save_predictions {
                Some(root) => {
                    let sub = if stage == 1 {
                        format!("stage1_n{n_samples}")
                    } else {
                        format!("stage2_bank{bank}")
                    };
                    Some(PredictionWriter::create(
                        &root.join(sub),
                        &PredictionsHeader::new(&ctx, unit, fold),
                    )?)
                }
                None => None,
            };
            // The seed is reset before each evaluation, as the authors reset it per fold.
            reseed(
                opts.seed,
                Stream::Inference,
                stage,
                n_samples as u64,
                bank as u64,
            );
            let before = rows.len();
            let predict_fn = |x: &Tensor| predict(&model, x, outputs);
            let units = run_one(
                &loader,
                &predict_fn,
                opts.device,
                unit,
                &expected,
                &metric_opts,
                &ctx,
                writer.as_ref(),
                &mut rows,
            )?;
            let mean = |name: &str| {
                let v: Vec<f64> = rows[before..]
                    .iter()
                    .filter(|r| r.metric == name)
                    .map(|r| r.value)
                    .collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            };
            lines.push(EvalLine {
                stage,
                n_samples,
                bank,
                units,
                ged: mean(eval::metric_rows::names::GED),
                dice_match: mean(eval::metric_rows::names::DICE_MATCH),
            });
        }
    }
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

/// Loads `best` into `vs` and checks the weights' SHA-256 against the sidecar; returns it.
fn load_checked(
    dir: &Path,
    best: &checkpoint::CheckpointInfo,
    vs: &mut tch::nn::VarStore,
) -> Result<String, EvalError> {
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

/// Mean GED and Dice_match of the rows of the last evaluation (those after all others).
fn summary_line(
    rows: &[MetricRecord],
    stage: u8,
    n_samples: u32,
    bank: u32,
    units: usize,
) -> EvalLine {
    let mean = |name: &str| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| {
                r.metric == name && r.stage == stage && r.n_samples == n_samples && r.bank == bank
            })
            .map(|r| r.value)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    EvalLine {
        stage,
        n_samples,
        bank,
        units,
        ged: mean(eval::metric_rows::names::GED),
        dice_match: mean(eval::metric_rows::names::DICE_MATCH),
    }
}

/// Predicts every slice of the loader, groups slices into units and scores each unit as
/// soon as it is complete. Returns the number of units scored.
#[allow(clippy::too_many_arguments)]
fn run_one(
    loader: &Loader,
    predict_fn: &dyn Fn(&Tensor) -> Tensor,
    device: Device,
    unit: UnitKind,
    expected: &HashMap<(String, String), usize>,
    opts: &MetricOptions,
    ctx: &EvalContext,
    writer: Option<&PredictionWriter>,
    rows: &mut Vec<MetricRecord>,
) -> Result<usize, EvalError> {
    let mut open: HashMap<(String, String), UnitAccum> = HashMap::new();
    let mut unit_index = 0u32;
    for batch in loader.epoch(0) {
        let batch = batch?;
        let (x, _) = batch.to_tensors(device);
        let preds = BatchPredictions::new(&batch, &predict_fn(&x));
        let chw = batch.c * batch.h * batch.w;
        for b in 0..batch.b {
            let id = &batch.rows[b];
            let probs = preds.probs_of(b);
            let raters = preds.raters_of(b);
            if let Some(w) = writer {
                w.write_slice(&SliceToSave {
                    study_id: &id.study_id,
                    target_id: &id.target_id,
                    slice_index: id.slice_index,
                    height: batch.h as u32,
                    width: batch.w as u32,
                    image: &batch.images[b * chw..b * chw + batch.h * batch.w],
                    raters: &raters,
                    probs: &probs,
                })?;
            }
            if unit == UnitKind::Slice {
                let uid = UnitId {
                    study_id: id.study_id.clone(),
                    target_id: id.target_id.clone(),
                    kind: unit,
                    unit_index,
                };
                unit_index += 1;
                push_scores(score_unit(&raters, &probs, opts), ctx, &uid, rows)?;
                continue;
            }
            let key = (id.study_id.clone(), id.target_id.clone());
            let acc = open.entry(key.clone()).or_insert_with(|| UnitAccum {
                study_id: id.study_id.clone(),
                target_id: id.target_id.clone(),
                slices: BTreeMap::new(),
            });
            acc.slices.insert(
                id.slice_index,
                (
                    probs.iter().map(|p| p.to_vec()).collect(),
                    raters.iter().map(|r| r.map(<[u8]>::to_vec)).collect(),
                ),
            );
            if acc.slices.len() == expected.get(&key).copied().unwrap_or(0) {
                let acc = open.remove(&key).expect("just inserted");
                let uid = UnitId {
                    study_id: acc.study_id.clone(),
                    target_id: acc.target_id.clone(),
                    kind: unit,
                    unit_index,
                };
                unit_index += 1;
                let (probs, raters) = stack_volume(acc);
                let p: Vec<&[f32]> = probs.iter().map(Vec::as_slice).collect();
                let r: Vec<Option<&[u8]>> = raters.iter().map(|m| m.as_deref()).collect();
                push_scores(score_unit(&r, &p, opts), ctx, &uid, rows)?;
            }
        }
    }
    if let Some((k, _)) = open.into_iter().next() {
        return Err(EvalError::Setup(format!(
            "volume {}/{} never received all its slices (internal error)",
            k.0, k.1
        )));
    }
    Ok(unit_index as usize)
}

/// Concatenates a unit's slices in `slice_index` order: N maps and R rater masks, each
/// `[D·H·W]`. A rater counts as present for the volume if it read every slice.
fn stack_volume(acc: UnitAccum) -> (Vec<Vec<f32>>, Vec<Option<Vec<u8>>>) {
    let mut probs: Vec<Vec<f32>> = Vec::new();
    let mut raters: Vec<Option<Vec<u8>>> = Vec::new();
    for (i, (p, r)) in acc.slices.into_values().enumerate() {
        if i == 0 {
            probs = vec![Vec::new(); p.len()];
            raters = vec![Some(Vec::new()); r.len()];
        }
        for (dst, src) in probs.iter_mut().zip(p) {
            dst.extend_from_slice(&src);
        }
        for (dst, src) in raters.iter_mut().zip(r) {
            match (dst.as_mut(), src) {
                (Some(d), Some(s)) => d.extend_from_slice(&s),
                _ => *dst = None,
            }
        }
    }
    (probs, raters)
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
