//! `dpersona predict`: a trained D-Persona run applied to scans nobody labelled.
//!
//! For each case: the scan is prepared as ingest prepared the run's training data
//! ([`preprocess`], from the run's manifest header), Stage I draws N prior samples per
//! slice (their mean and per-voxel variance come with them) and Stage II gives one
//! personalised mask per rater; every map goes back onto the input's grid
//! ([`resample_back`]) and is written as NIfTI with the input's header ([`outputs`]).
//!
//! Draws: torch's generator is reseeded per case and stage exactly as `dpersona eval`
//! reseeds per evaluation (`seeding::reseed(seed, Inference, stage, N, M)`), and slices go
//! through the model in `slice_index` order in batches of `--batch-size`, so a case's
//! prediction does not depend on which other cases are in the call, a rerun reproduces it,
//! and a test case that `eval --save-predictions` scored alone with the same seed, N, M and
//! batch size gets the same maps.
//!
//! Streaming: a reader thread prepares the next case while the model runs on the current
//! one, through a channel of one slot, so memory holds at most three cases whatever their
//! number. A case that cannot be read or does not fit the run is reported and the others
//! are still predicted; cases whose output folder exists are skipped (see
//! [`outputs`] for why a folder's existence means it is complete).
//!
//! Modules: [`input`] (which cases INPUT names), [`preprocess`], [`resample_back`],
//! [`outputs`], [`args`] (the command line).
pub mod args;
pub mod dicom_seg;
pub mod input;
pub mod outputs;
pub mod preprocess;
pub mod resample_back;
pub mod roi;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use schemas::manifest::Manifest;
use serde_json::json;
use tch::{Device, Tensor};

use crate::config::adapt_to_manifest;
use crate::evaluate::{load_checked, read_best};
use crate::infer::{predict, Outputs};
use crate::methods::build_model;
use crate::models::DPersona;
use crate::run_dir::RunDir;
use crate::seeding::{reseed, Stream};
use input::{CaseError, CaseInput};
use outputs::{CaseWriter, VolumeData};
use preprocess::{PreparedCase, Preprocessing};

/// The name and definition of the uncertainty map, as recorded in `predict.json`.
pub const UNCERTAINTY_MEASURE: &str = "variance: per-voxel population variance of the N Stage-I sample probabilities (1/N sum (p_j - mean)^2, 0..0.25), computed on the model grid and resampled linearly";
/// Threshold that turns a Stage-II probability into a mask (as eval binarises).
pub const MASK_THRESHOLD: f32 = 0.5;
/// The DICOM Segmentation of a DICOM case, in its folder.
pub const SEG_FILE: &str = "seg.dcm";
/// The settings file at the output folder's root.
pub const PREDICT_JSON: &str = "predict.json";

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error(transparent)]
    Eval(#[from] crate::evaluate::EvalError),
    #[error(transparent)]
    RunDir(#[from] crate::run_dir::RunDirError),
    #[error(transparent)]
    Train(#[from] crate::error::TrainError),
    #[error(transparent)]
    Schema(#[from] schemas::SchemaError),
    #[error(transparent)]
    Write(#[from] outputs::WriteError),
    #[error("{0}")]
    Setup(String),
}

/// Everything one `dpersona predict` call needs.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    pub run: PathBuf,
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    /// Stage I samples N per case.
    pub samples: u32,
    /// Stage II bank size M.
    pub bank: u32,
    /// Stages to run; empty = every stage with a best checkpoint.
    pub stages: Vec<u8>,
    pub seed: u64,
    pub device: Device,
    pub batch_size: usize,
    /// Also write the maps on the model grid (`CASE/model_grid/`).
    pub save_model_grid: bool,
    pub progress: bool,
    /// Crop centres, for runs trained on crops around a target (LIDC-style).
    pub roi: Option<PathBuf>,
}

/// What a call did.
#[derive(Debug, Default)]
pub struct PredictSummary {
    pub predicted: Vec<String>,
    /// Cases whose folder already existed.
    pub skipped: Vec<String>,
    pub failed: Vec<CaseError>,
}

/// A stage's model and its checkpoint.
struct StageModel {
    stage: u8,
    model: DPersona,
    /// Keeps the weights alive.
    _vs: tch::nn::VarStore,
    weights: PathBuf,
    sha256: String,
}

/// One case's maps on the model grid, each `[D * S * S]`, slices in `slice_index` order.
struct CaseMaps {
    samples: Vec<Vec<f32>>,
    raters: Vec<Vec<f32>>,
}

/// Runs `dpersona predict` (see the module doc).
pub fn predict_cases(opts: &PredictOptions) -> Result<PredictSummary, PredictError> {
    let setup = PredictError::Setup;
    if crate::rater_ensemble::members(&opts.run).is_some() {
        return Err(setup(format!(
            "{}: a unet-rater ensemble; predict applies D-Persona runs",
            opts.run.display()
        )));
    }
    let run = RunDir::new(&opts.run);
    let mut cfg = run.read_config()?;
    if let Some(b) = &cfg.baseline {
        return Err(setup(format!(
            "{}: a `{}` baseline run; predict applies D-Persona runs (Stage I samples, Stage \
             II rater masks)",
            opts.run.display(),
            b.name()
        )));
    }
    let info = run.read_info()?;
    let manifest = Manifest::read(&info.manifest).map_err(|e| {
        setup(format!(
            "the run's manifest {} (recorded in {}) cannot be read, and predict takes the \
             channels and the preprocessing from it: {}",
            info.manifest.display(),
            run.info_path().display(),
            schemas::error::one_line(&e)
        ))
    })?;
    adapt_to_manifest(&mut cfg, &manifest);
    let header = &manifest.header;
    let pre = Preprocessing::from_header(header)
        .map_err(|m| setup(format!("{}: {m}", opts.run.display())))?;
    let rois = match (&pre, &opts.roi) {
        (Preprocessing::Crops(_), Some(path)) => roi::read_rois(path).map_err(setup)?,
        (Preprocessing::Crops(_), None) => {
            return Err(setup(format!(
                "{}: the run was trained on {}x{} crops around annotated nodules (LIDC-style), so \
                 predict needs the crop centres: --roi FILE (CSV or JSON with case, x, y, z and \
                 optionally unit = voxel or mm; see `dpersona predict --help`)",
                opts.run.display(),
                header.crop_size,
                header.crop_size
            )))
        }
        (Preprocessing::WholeSlices(_), Some(path)) => {
            return Err(setup(format!(
                "--roi {}: the run predicts whole slices (it was trained on whole resampled or \
                 centre-cropped slices), so it takes no crop centres; drop --roi",
                path.display()
            )))
        }
        (Preprocessing::WholeSlices(_), None) => BTreeMap::new(),
    };
    let stages = run.stages_or_trained(&opts.stages);
    if stages.is_empty() {
        return Err(setup(format!(
            "{}: no stage has a best checkpoint yet (no stage*/best.json); train first",
            opts.run.display()
        )));
    }
    let mut models = Vec::new();
    for &stage in &stages {
        let dir = run.stage_dir(stage);
        let best = read_best(&dir)?;
        let (mut vs, model) = build_model(&cfg, opts.device)?;
        let sha256 = load_checked(&dir, &best, &mut vs)?;
        models.push(StageModel {
            stage,
            model,
            _vs: vs,
            // Absolute, so that a rerun naming the run another way (absolute, from another
            // folder) is recognised as the same settings.
            weights: std::fs::canonicalize(dir.join(&best.weights))
                .unwrap_or_else(|_| dir.join(&best.weights)),
            sha256,
        });
    }

    let settings = json!({
        "run": std::fs::canonicalize(&opts.run).unwrap_or(opts.run.clone()),
        "manifest": info.manifest,
        "manifest_fingerprint": header.fingerprint,
        "checkpoints": models.iter().map(|m| json!({
            "stage": m.stage, "weights": m.weights, "sha256": m.sha256,
        })).collect::<Vec<_>>(),
        "seed": opts.seed,
        "samples": if stages.contains(&1) { opts.samples } else { 0 },
        "bank": if stages.contains(&2) { opts.bank } else { 0 },
        "batch_size": opts.batch_size,
        "roi": match &opts.roi {
            Some(p) => json!({"file": p, "sha256": schemas::hashing::sha256_file(p)?}),
            None => serde_json::Value::Null,
        },
    });
    std::fs::create_dir_all(&opts.out).map_err(|e| {
        setup(format!(
            "{}: cannot create the output folder: {e}",
            opts.out.display()
        ))
    })?;
    let mut cases_json = check_previous(&opts.out, &settings)?;
    let conventions = json!({
        "grid": "every volume is on its input's grid, with the input's (first channel's) header as reference: same shape, sform, qform and pixdim",
        "model_grid": format!("{}x{} per axial slice (row = y, col = x), slices in slice_index order (lowest world z first); {}", header.crop_size, header.crop_size, header.normalisation),
        "resampling_back": "scipy ndimage.zoom arithmetic (grid_mode=False, mode='nearest'): nearest (order 0) for masks, linear (order 1) for probabilities; cropped slices go back into their window, 0 outside",
        "rater_k": format!("Stage II: head k's probability > {MASK_THRESHOLD} on the model grid, then nearest; uint8 0/1"),
        "sample_j": "Stage I: prior sample j's probability map, float32 in [0, 1]",
        "mean": "Stage I: mean of the N sample probabilities, float32",
        "uncertainty": UNCERTAINTY_MEASURE,
        "raters": header.raters,
        "rater_order": header.rater_order,
        "channels": header.channels,
        "draws": "torch generator reseeded per case and stage as dpersona eval reseeds per evaluation (seed, stage, N, M); slices in slice_index order, batches of batch_size",
    });

    let found = input::discover(&opts.inputs, &header.channels).map_err(setup)?;
    let mut summary = PredictSummary::default();
    for e in found.errors {
        eprintln!("error: {e}");
        cases_json.insert(
            e.case.clone(),
            json!({"status": "failed", "error": e.reason}),
        );
        summary.failed.push(e);
    }
    let (todo, done): (Vec<CaseInput>, Vec<CaseInput>) = found
        .cases
        .into_iter()
        .partition(|c| !outputs::case_dir(&opts.out, &c.case).is_dir());
    for c in done {
        summary.skipped.push(c.case.clone());
        cases_json
            .entry(c.case.clone())
            .or_insert_with(|| json!({"status": "predicted", "inputs": c.paths()}));
    }
    let bar = if opts.progress {
        let bar = ProgressBar::new(todo.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("predict [{bar:30}] {pos}/{len} cases {msg} ({elapsed})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let env = CaseEnv {
        opts,
        models: &models,
        raters: header.raters.len(),
        rater_labels: (0..header.raters.len())
            .map(|k| match header.rater_order {
                schemas::manifest::RaterOrder::Identity => header.raters[k].clone(),
                schemas::manifest::RaterOrder::AreaRank => {
                    format!(
                        "A{} (area rank {} of {})",
                        k + 1,
                        k + 1,
                        header.raters.len()
                    )
                }
            })
            .collect(),
        uid_seed: settings["checkpoints"].to_string()
            + &format!("/{}/{}/{}", opts.seed, opts.samples, opts.bank),
    };
    let (tx, rx) = crossbeam_channel::bounded::<(CaseInput, Result<PreparedCase, CaseError>)>(1);
    std::thread::scope(|scope| -> Result<(), PredictError> {
        let channels = &header.channels;
        let pre = &pre;
        let todo = &todo;
        let rois = &rois;
        scope.spawn(move || {
            for c in todo {
                let case_rois = rois.get(&c.case).map_or(&[][..], Vec::as_slice);
                let prepared = preprocess::prepare(c, pre, channels, case_rois);
                if tx.send((c.clone(), prepared)).is_err() {
                    return; // the consumer stopped
                }
            }
        });
        for (case, prepared) in rx {
            bar.set_message(case.case.clone());
            let result = prepared.and_then(|p| {
                env.predict_and_write(&p)
                    .map_err(|e| CaseError::new(&case.case, schemas::error::one_line(&e)))
            });
            match result {
                Ok(()) => {
                    cases_json.insert(
                        case.case.clone(),
                        json!({"status": "predicted", "inputs": case.paths()}),
                    );
                    summary.predicted.push(case.case.clone());
                }
                Err(e) => {
                    bar.suspend(|| eprintln!("error: {e}"));
                    cases_json.insert(
                        case.case.clone(),
                        json!({"status": "failed", "inputs": case.paths(), "error": e.reason}),
                    );
                    summary.failed.push(e);
                }
            }
            bar.inc(1);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    let doc = json!({
        "dpersona_version": env!("CARGO_PKG_VERSION"),
        "settings": settings,
        "conventions": conventions,
        "cases": cases_json,
    });
    schemas::atomic::write_file_atomic(
        &opts.out.join(PREDICT_JSON),
        serde_json::to_string_pretty(&doc)
            .expect("JSON serialises")
            .as_bytes(),
    )?;
    Ok(summary)
}

/// The `cases` of an earlier `predict.json` in `out`, after checking that it was made
/// with the same settings (a rerun only fills in missing cases; mixing the outputs of two
/// models or seeds in one folder would be silently wrong).
fn check_previous(
    out: &Path,
    settings: &serde_json::Value,
) -> Result<BTreeMap<String, serde_json::Value>, PredictError> {
    let path = out.join(PREDICT_JSON);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(BTreeMap::new());
    };
    let old: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        PredictError::Setup(format!(
            "{}: not readable JSON ({e}); remove it or choose another --out",
            path.display()
        ))
    })?;
    if old.get("settings") != Some(settings) {
        return Err(PredictError::Setup(format!(
            "{} holds predictions made with other settings (run, checkpoints, seed, samples, bank \
             or batch size: {}); choose another --out or remove that folder",
            out.display(),
            old.get("settings")
                .map(|s| s.to_string())
                .unwrap_or_default()
        )));
    }
    Ok(old
        .get("cases")
        .and_then(|c| c.as_object())
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

/// What predicting one case needs.
struct CaseEnv<'a> {
    opts: &'a PredictOptions,
    models: &'a [StageModel],
    raters: usize,
    /// Segment labels of the DICOM SEG, one per rater.
    rater_labels: Vec<String>,
    /// Makes the SEG's UIDs: checkpoints, seed, samples, bank.
    uid_seed: String,
}

impl CaseEnv<'_> {
    /// Every stage's maps for one prepared case, written to `DIR/CASE/`.
    fn predict_and_write(&self, case: &PreparedCase) -> Result<(), PredictError> {
        let mut maps = CaseMaps {
            samples: Vec::new(),
            raters: Vec::new(),
        };
        for m in self.models {
            if m.stage == 1 {
                let n = self.opts.samples;
                reseed(self.opts.seed, Stream::Inference, 1, n as u64, 0);
                maps.samples = self.infer(&m.model, case, Outputs::Samples(n as i64));
            } else {
                let bank = self.opts.bank;
                reseed(self.opts.seed, Stream::Inference, 2, 0, bank as u64);
                maps.raters =
                    self.infer(&m.model, case, Outputs::Personalised { bank: bank as i64 });
                if maps.raters.len() != self.raters {
                    return Err(PredictError::Setup(format!(
                        "the Stage II model gave {} maps for {} raters (internal error)",
                        maps.raters.len(),
                        self.raters
                    )));
                }
            }
        }
        self.write(case, &maps)
    }

    /// The model's maps for every slice of the case: `[K][D * S * S]` (K = N samples or
    /// R heads), slices in `slice_index` order.
    fn infer(&self, model: &DPersona, case: &PreparedCase, outputs: Outputs) -> Vec<Vec<f32>> {
        let (d, c, s) = (case.depth(), case.channels, case.size);
        let css = c * s * s;
        let ss = s * s;
        let mut maps: Vec<Vec<f32>> = Vec::new();
        let batch = self.opts.batch_size.max(1);
        let mut b0 = 0;
        while b0 < d {
            let b1 = (b0 + batch).min(d);
            let x = Tensor::from_slice(&case.images[b0 * css..b1 * css])
                .view([(b1 - b0) as i64, c as i64, s as i64, s as i64])
                .to_device(self.opts.device);
            let p = predict(model, &x, outputs);
            let k = p.size()[1] as usize;
            let v: Vec<f32> = Vec::try_from(p.flatten(0, -1)).expect("probabilities are f32");
            if maps.is_empty() {
                maps = vec![Vec::with_capacity(d * ss); k];
            }
            for i in 0..(b1 - b0) {
                for (j, map) in maps.iter_mut().enumerate() {
                    let at = (i * k + j) * ss;
                    map.extend_from_slice(&v[at..at + ss]);
                }
            }
            b0 = b1;
        }
        maps
    }

    /// Writes the case's folder (see [`outputs`]).
    fn write(&self, case: &PreparedCase, maps: &CaseMaps) -> Result<(), PredictError> {
        let g = &case.grid;
        let back = resample_back::Back::new(case);
        let w = CaseWriter::begin(&self.opts.out, &case.input.case)?;
        let prob_volume = |map: &[f32]| outputs::assemble(g, |k| back.linear(k, map));
        let model_grid = outputs::model_grid_header();
        let model_shape = [case.size, case.size, case.depth()];
        let put_model_grid = |name: &str, map: &[f32]| -> Result<(), PredictError> {
            if self.opts.save_model_grid {
                w.put(
                    &format!("model_grid/{name}"),
                    VolumeData::F32(map.to_vec()),
                    model_shape,
                    &model_grid,
                    "dpersona predict, model grid",
                )?;
            }
            Ok(())
        };
        if self.opts.save_model_grid {
            // The model's input (channel 0), to check the preprocessing against ingest's.
            let (c, ss) = (case.channels, case.size * case.size);
            let image: Vec<f32> = (0..case.depth())
                .flat_map(|j| case.images[j * c * ss..j * c * ss + ss].iter().copied())
                .collect();
            put_model_grid("image", &image)?;
        }
        let mut rater_volumes = Vec::new();
        for (k, p) in maps.raters.iter().enumerate() {
            let name = format!("rater_{}", k + 1);
            let mask: Vec<u8> = p.iter().map(|&v| u8::from(v > MASK_THRESHOLD)).collect();
            let data = outputs::assemble(g, |plane| back.nearest(plane, &mask));
            rater_volumes.push(data.clone());
            w.put(
                &name,
                VolumeData::U8(data),
                g.shape,
                &g.header,
                "dpersona Stage II mask",
            )?;
            put_model_grid(&name, p)?;
        }
        if !maps.samples.is_empty() {
            let n = maps.samples.len() as f64;
            let len = maps.samples[0].len();
            let mut mean = vec![0f32; len];
            let mut var = vec![0f32; len];
            for i in 0..len {
                let m = maps.samples.iter().map(|s| s[i] as f64).sum::<f64>() / n;
                let v = maps
                    .samples
                    .iter()
                    .map(|s| (s[i] as f64 - m).powi(2))
                    .sum::<f64>()
                    / n;
                mean[i] = m as f32;
                var[i] = v as f32;
            }
            for (j, s) in maps.samples.iter().enumerate() {
                let name = format!("sample_{:02}", j + 1);
                w.put(
                    &name,
                    VolumeData::F32(prob_volume(s)),
                    g.shape,
                    &g.header,
                    "dpersona Stage I sample",
                )?;
                put_model_grid(&name, s)?;
            }
            w.put(
                "mean",
                VolumeData::F32(prob_volume(&mean)),
                g.shape,
                &g.header,
                "dpersona Stage I mean",
            )?;
            put_model_grid("mean", &mean)?;
            w.put(
                "uncertainty",
                VolumeData::F32(prob_volume(&var)),
                g.shape,
                &g.header,
                "dpersona Stage I variance",
            )?;
            put_model_grid("uncertainty", &var)?;
        }
        if let (Some(src), false) = (&case.dicom, rater_volumes.is_empty()) {
            let hw = src.rows * src.cols;
            let segments: Vec<dicom_seg::Segment<'_>> = rater_volumes
                .iter()
                .zip(&self.rater_labels)
                .map(|(v, label)| dicom_seg::Segment {
                    label: label.clone(),
                    planes: v.chunks(hw).collect(),
                })
                .collect();
            let mut planes: Vec<usize> = match &case.placement {
                preprocess::Placement::Crops { at, .. } => at.iter().map(|a| a.0).collect(),
                preprocess::Placement::Slices { plane_of, .. } => plane_of.clone(),
            };
            planes.sort_unstable();
            planes.dedup();
            let seed = format!("{}/{}", src.series_instance_uid, self.uid_seed);
            dicom_seg::write_seg(
                &w.path_of(SEG_FILE),
                src,
                &segments,
                &planes,
                &seed,
                "dpersona Stage II personalised masks",
            )
            .map_err(PredictError::Setup)?;
        }
        w.commit()?;
        Ok(())
    }
}
