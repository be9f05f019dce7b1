//! `unet-rater` for every rater in one command (baselines.md §2.1): the R per-rater U-Nets
//! of one comparison live in one folder, `RUN/rater_K/` holding model K as a normal run
//! (its own config.toml, checkpoints, logs and resume), and `dpersona eval --run RUN`
//! scores them as ONE method whose prediction set is the R models' maps in rater order
//! (S = R; personalised by identity: model K is rater K).
//!
//! RUN itself holds no config.toml: that is what tells an ensemble from a single run.
use std::path::{Path, PathBuf};

use schemas::manifest::Manifest;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::baselines::{stack_rater_models, BaselineModel, BaselineSpec};
use crate::config::{adapt_to_manifest, TrainConfig};
use crate::error::TrainError;
use crate::methods::{build_baseline, predict_set, BASELINE_STAGE};
use crate::run_dir::RunDir;

/// Sub-folder of rater `k`'s model.
pub fn member_dir(root: &Path, k: usize) -> PathBuf {
    root.join(format!("rater_{k}"))
}

/// The member runs of the ensemble at `root` in rater order (`rater_0`, `rater_1`, .. up to
/// the first missing one), or `None` when `root` is a run of its own or holds no `rater_0`.
pub fn members(root: &Path) -> Option<Vec<PathBuf>> {
    if RunDir::new(root).exists() || !RunDir::new(member_dir(root, 0)).exists() {
        return None;
    }
    Some(
        (0..)
            .map(|k| member_dir(root, k))
            .take_while(|d| RunDir::new(d).exists())
            .collect(),
    )
}

/// A baseline's best model(s) loaded for evaluation: one model, or the R members of an
/// ensemble whose maps are stacked in rater order.
pub struct LoadedBaseline {
    pub models: Vec<BaselineModel>,
    /// For one model its weights' SHA-256; for an ensemble the SHA-256 of the members'
    /// digests joined by newlines (a row names one checkpoint, so the ensemble's stands for
    /// all R; a changed member changes it).
    pub checkpoint_sha256: String,
    stacked: bool,
    /// Keeps the models' variables alive.
    _stores: Vec<VarStore>,
}

impl LoadedBaseline {
    /// The prediction set `[B, S, H, W]` as CPU f32 probabilities (eval mode, no grad).
    pub fn predict(&self, x: &Tensor) -> Tensor {
        if self.stacked {
            predict_stacked(&self.models, x)
        } else {
            predict_set(&self.models[0], x)
        }
    }
}

/// Builds the single baseline of `cfg` and loads its best checkpoint from `stage_dir`
/// through `load` (which checks and returns the weights' SHA-256).
pub fn load_one<E: From<TrainError>>(
    cfg: &TrainConfig,
    spec: &BaselineSpec,
    stage_dir: &Path,
    device: Device,
    load: impl Fn(&Path, &mut VarStore) -> Result<String, E>,
) -> Result<LoadedBaseline, E> {
    let (mut vs, model) = build_baseline(cfg, spec, device)?;
    let sha = load(stage_dir, &mut vs)?;
    Ok(LoadedBaseline {
        models: vec![model],
        checkpoint_sha256: sha,
        stacked: false,
        _stores: vec![vs],
    })
}

/// Builds and loads every member (`load` reads a member's stage folder into its VarStore,
/// checks and returns its weights' SHA-256). Errors when a member is not `unet-rater` for
/// its own rater, or when there are fewer members than `raters` (an unfinished ensemble).
pub fn load_members<E: From<TrainError>>(
    members: &[PathBuf],
    manifest: &Manifest,
    device: Device,
    load: impl Fn(&Path, &mut VarStore) -> Result<String, E>,
) -> Result<LoadedBaseline, E> {
    let setup = |m: String| E::from(TrainError::Setup(m));
    let raters = manifest.header.raters.len();
    if members.len() != raters {
        return Err(setup(format!(
            "{}: holds models for raters 0..{} but the manifest has {raters} raters; finish \
             training with `dpersona train --resume --out {}`",
            members[0].parent().unwrap_or(Path::new(".")).display(),
            members.len(),
            members[0].parent().unwrap_or(Path::new(".")).display(),
        )));
    }
    let (mut models, mut stores, mut shas) = (Vec::new(), Vec::new(), Vec::new());
    for (k, dir) in members.iter().enumerate() {
        let run = RunDir::new(dir);
        let mut cfg = run.read_config().map_err(|e| setup(e.to_string()))?;
        adapt_to_manifest(&mut cfg, manifest);
        let spec = cfg.baseline.clone();
        if spec != Some(BaselineSpec::UnetRater { rater: k as i64 }) {
            return Err(setup(format!(
                "{}: expected a unet-rater run for rater {k}, found {}",
                dir.display(),
                spec.as_ref().map_or("dpersona", |s| s.name())
            )));
        }
        let spec = spec.expect("checked above");
        let (mut vs, model) = build_baseline(&cfg, &spec, device)?;
        shas.push(load(&run.stage_dir(BASELINE_STAGE), &mut vs)?);
        models.push(model);
        stores.push(vs);
    }
    Ok(LoadedBaseline {
        models,
        checkpoint_sha256: schemas::hashing::sha256_bytes(shas.join("\n").as_bytes()),
        stacked: true,
        _stores: stores,
    })
}

/// The ensemble's prediction set `[B, R, H, W]` (model k's map in channel k) as CPU f32
/// probabilities (eval mode, no grad).
pub fn predict_stacked(models: &[BaselineModel], x: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let outs: Vec<_> = models.iter().map(|m| m.infer(x)).collect();
        stack_rater_models(&outs)
            .set
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
    })
}
