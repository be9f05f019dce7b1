//! `dpersona train` and `dpersona eval` arguments and entry points.
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ValueEnum;
use tch::Device;

use crate::baselines::BaselineSpec;
use crate::config::{SelectOn, TrainConfig};
use crate::evaluate::{evaluate, evaluate_predictions_dir, EvalOptions};
use crate::run_dir::RunDir;
use crate::trainer::{train, Stages, TrainOptions};

/// Where `dpersona train` records the newest run and `dpersona eval` looks for it.
pub const LATEST_POINTER: &str = "runs/latest";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StageArg {
    #[value(name = "1")]
    One,
    #[value(name = "2")]
    Two,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// CUDA if available, else CPU.
    Auto,
    Cpu,
    Cuda,
}

impl DeviceArg {
    pub fn device(self) -> anyhow::Result<Device> {
        Ok(match self {
            DeviceArg::Auto => Device::cuda_if_available(),
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => {
                anyhow::ensure!(
                    tch::Cuda::is_available(),
                    "--device cuda: no CUDA device is available"
                );
                Device::Cuda(0)
            }
        })
    }
}

/// The method `dpersona train` trains (baselines.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// D-Persona, Stage I and II (the default).
    Dpersona,
    /// Probabilistic U-Net; evaluated on its prior samples.
    ProbUnet,
    /// One U-Net per rater on that rater's masks (all raters, or --rater K for one).
    UnetRater,
    /// U-Net on the majority vote (--mv RULE).
    Mv,
    /// U-Net on a random present rater per sample.
    Rs,
    /// U-Net on the STAPLE label.
    Staple,
    /// Confusion matrices per rater, one per image.
    CmGlobal,
    /// Confusion matrices per rater and pixel.
    CmPixel,
    /// Per-rater latent Gaussians with a shared head.
    Pionono,
    /// Transformer with one query per rater (+ a global one) and low-rank Gaussian heads.
    Tab,
}

/// `--rater`: one rater's index, or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaterArg {
    One(i64),
    All,
}

fn parse_rater(s: &str) -> Result<RaterArg, String> {
    if s == "all" {
        return Ok(RaterArg::All);
    }
    s.parse()
        .map(RaterArg::One)
        .map_err(|_| format!("`{s}` is neither a rater index (0-based) nor `all`"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SelectOnArg {
    Val,
    Test,
}

#[derive(Debug, Clone, PartialEq, clap::Args)]
#[command(after_help = presets_help())]
pub struct TrainArgs {
    /// Manifest written by `dpersona ingest`.
    #[arg(long)]
    pub manifest: PathBuf,
    /// Method to train. Baselines use their default options (change them in the `[baseline]`
    /// table of --config) and one stage (optim.epochs_stage1 epochs, in RUN/stage1).
    #[arg(long, value_enum, default_value = "dpersona")]
    pub method: MethodArg,
    /// unet-rater: the rater (0-based, manifest order) whose masks the U-Net learns, or
    /// `all` (the default): one U-Net per rater, trained one after the other into
    /// OUT/rater_K/ (each a normal run), which `dpersona eval --run OUT` scores as one
    /// method with S = R outputs (model K = rater K).
    #[arg(long, value_parser = parse_rater)]
    pub rater: Option<RaterArg>,
    /// mv: tie rule of the majority vote.
    #[arg(long, value_enum, default_value = "strict")]
    pub mv: crate::baselines::fusion::MvRule,
    /// Run folder (config, checkpoints, logs). Default: runs/<dataset>-dpersona-<UTC time>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Preset (see the list below). Default: paper-lidc for LIDC manifests, paper-npc for
    /// NIfTI ones.
    #[arg(long)]
    pub preset: Option<String>,
    /// TOML file whose keys override the preset's (same tables and names as the run's
    /// config.toml; an unknown key is an error).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Cross-validation fold to hold out (LIDC protocol); without it the split column is used.
    #[arg(long)]
    pub fold: Option<u32>,
    /// Train several folds at once, e.g. `0,1,2,3`: one `dpersona train --fold K` process per
    /// fold into OUT/fold_K/ (each a normal run, identical to training that fold alone);
    /// `dpersona eval --run OUT` evaluates them all. On a CPU the cores are shared out.
    #[arg(long, value_delimiter = ',', conflicts_with = "fold")]
    pub folds: Option<Vec<u32>>,
    /// With --folds: how many folds train at the same time (default: all of them).
    #[arg(long, requires = "folds")]
    pub jobs: Option<usize>,
    /// Stage(s) to train: 1, 2 (needs stage 1's best checkpoint in the run) or both.
    #[arg(long, value_enum, default_value = "both")]
    pub stage: StageArg,
    /// Where to train: auto (CUDA if available, else CPU), cpu or cuda.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// libtorch intra-op threads (default: libtorch's choice). 1 makes CPU runs bit-reproducible.
    /// The loader's worker threads are set by `[loader] threads` in --config.
    #[arg(long)]
    pub threads: Option<i32>,
    /// Seed of every random draw (overrides the preset's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Continue the run in --out after its last completed epoch (uses the run's config.toml).
    /// Works after any interruption, kill -9 included: the interrupted epoch is redone from
    /// its start, and the result equals an uninterrupted run's.
    #[arg(long)]
    pub resume: bool,
    /// ImageNet ResNet-34 weights (torchvision names, safetensors) for the backbone.
    #[arg(long)]
    pub backbone_weights: Option<PathBuf>,
    /// Override optim.epochs_stage1.
    #[arg(long)]
    pub epochs_stage1: Option<u32>,
    /// Override optim.epochs_stage2.
    #[arg(long)]
    pub epochs_stage2: Option<u32>,
    /// Early stopping: end a stage when this many epochs pass without a strictly better
    /// validation metric (the stage's epochs stay the limit). Overrides validation.patience;
    /// the default (none) trains every epoch, as the authors do.
    #[arg(long)]
    pub patience: Option<u32>,
    /// With --patience: no stage ends early before this many epochs (a warm-up for methods
    /// whose validation metric starts moving late). Overrides validation.min_epochs.
    #[arg(long)]
    pub min_epochs: Option<u32>,
    /// Override validation.select_on: `test` is the authors' LIDC protocol (no val split).
    #[arg(long, value_enum)]
    pub select_on: Option<SelectOnArg>,
    /// No progress bar (logs still go to RUN/train.log).
    #[arg(long)]
    pub quiet: bool,
}

fn presets_help() -> String {
    let mut s = String::from("Presets:\n");
    for p in data_manifests::PRESETS {
        s.push_str(&format!("  {:<11} {}\n", p.name, p.summary));
    }
    s
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Run folder to evaluate. Default: the latest run (runs/latest).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Manifest with the labels. Default: the one the run was trained on.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Output metric frame; rows of the same evaluation are replaced, others kept. A summary
    /// (`<name>.summary.parquet`) is written beside it.
    #[arg(long, default_value = "results.parquet")]
    pub out: PathBuf,
    /// Split to evaluate when the run has no fold.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Fold whose test studies to evaluate. Default: the run's fold.
    #[arg(long)]
    pub fold: Option<u32>,
    /// Stage I: prior samples per unit, one evaluation per value (the paper's #10/#30/#50).
    #[arg(long, value_delimiter = ',', default_value = "10,30,50")]
    pub samples: Vec<u32>,
    /// Stage II: bank size M (the authors' evaluation uses 500).
    #[arg(long, default_value_t = 500)]
    pub bank: u32,
    /// Unit of averaging: slice (LIDC) or volume (NIfTI). Default: from the manifest.
    #[arg(long, value_enum)]
    pub unit: Option<UnitArg>,
    /// GED distance of an empty-vs-empty pair: 1 (the authors' code) or 0 (the usual convention).
    #[arg(long, default_value_t = 1.0)]
    pub ged_empty_pair: f64,
    /// Seed reset before each evaluation (the authors: 1337).
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Stage(s) to evaluate. Default: every stage with a best checkpoint.
    #[arg(long, value_enum)]
    pub stage: Option<StageArg>,
    /// Also write the predictions under DIR/stage1_n<N>/ and DIR/stage2_bank<M>/ (a baseline:
    /// DIR/<method>/): PNG per slice for slice units, float32 NIfTI per target for volume
    /// units; `--predictions` scores that layout.
    #[arg(long)]
    pub save_predictions: Option<PathBuf>,
    /// Score a predictions folder (from --save-predictions or any tool) instead of a run;
    /// needs --manifest.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// Where to run inference: auto (CUDA if available, else CPU), cpu or cuda.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// Slices per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
}

/// `dpersona diagnose`: the latent-space measures of a D-Persona run (train::diagnose).
#[derive(Debug, clap::Args)]
#[command(
    long_about = "What a trained D-Persona's latent space carries, per slice of a split: \
Stage I's KL(q||p) per latent dimension (posterior collapse), the prior's sigma, how far the \
posterior's code moves the decoded mask, and over a bank of prior draws the number of \
distinct masks, their mean pairwise 1 - IoU and, per rater, the best and the mean Dice of a \
draw (the best is the ceiling of a Stage-II head that picks from the bank); Stage II's \
per-head Dice, attention entropy / ln M (1 = a plain average of the bank), largest weight, \
query norm, query channels stuck at 0, and the heads' pairwise Dice next to the raters'. \
Means are printed; the per-slice rows go to a Parquet frame (quantity, index, value)."
)]
pub struct DiagnoseArgs {
    /// Run folder (a D-Persona run). Default: the latest run (runs/latest).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Manifest with the images and labels. Default: the one the run was trained on.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Output frame, replaced if present. Default: RUN/diagnostics.parquet.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Split to diagnose when the run has no fold.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Fold whose test studies to diagnose. Default: the run's fold.
    #[arg(long)]
    pub fold: Option<u32>,
    /// Prior draws per slice in the bank (the authors' training bank: 100).
    #[arg(long, default_value_t = 100)]
    pub bank: u32,
    /// Seed of the prior draws.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Where to run: auto (CUDA if available, else CPU), cpu or cuda.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// Slices per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnitArg {
    Slice,
    Volume,
}

/// Builds the configuration of a new run from the flags.
pub fn resolve_config(
    args: &TrainArgs,
    manifest: &schemas::manifest::Manifest,
) -> anyhow::Result<(String, TrainConfig)> {
    let preset = args
        .preset
        .clone()
        .unwrap_or_else(|| manifest.header.source_kind.default_preset().to_string());
    // The preset's settings for this method's authors (presets/<preset>/<method>.toml), then
    // --config, then the flags.
    let method = args
        .method
        .to_possible_value()
        .map(|v| v.get_name().to_string());
    let mut cfg = TrainConfig::load_for(&preset, method.as_deref(), args.config.as_deref())?;
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    if let Some(e) = args.epochs_stage1 {
        cfg.optim.epochs_stage1 = e;
    }
    if let Some(e) = args.epochs_stage2 {
        cfg.optim.epochs_stage2 = e;
    }
    if args.patience.is_some() {
        cfg.validation.patience = args.patience;
    }
    if args.min_epochs.is_some() {
        cfg.validation.min_epochs = args.min_epochs;
    }
    if let Some(s) = args.select_on {
        cfg.validation.select_on = match s {
            SelectOnArg::Val => SelectOn::Val,
            SelectOnArg::Test => SelectOn::Test,
        };
    }
    cfg.baseline = baseline_spec(args, cfg.baseline.take())?;
    Ok((preset, cfg))
}

/// The baseline that --method (and --rater/--mv) select. A `[baseline]` table of --config
/// for the same method supplies its options; for another method it is an error.
pub fn baseline_spec(
    args: &TrainArgs,
    from_config: Option<BaselineSpec>,
) -> anyhow::Result<Option<BaselineSpec>> {
    anyhow::ensure!(
        args.rater.is_none() || args.method == MethodArg::UnetRater,
        "--rater only applies to --method unet-rater"
    );
    let spec = match args.method {
        MethodArg::Dpersona => None,
        MethodArg::UnetRater => match args.rater {
            Some(RaterArg::One(rater)) => Some(BaselineSpec::UnetRater { rater }),
            _ => anyhow::bail!(
                "--method unet-rater without --rater K (or with --rater all) trains every rater's \
                 model through run_train; one configuration needs --rater K"
            ),
        },
        MethodArg::Mv => Some(BaselineSpec::Mv { rule: args.mv }),
        MethodArg::Rs => Some(BaselineSpec::Rs),
        MethodArg::Staple => Some(BaselineSpec::Staple(Default::default())),
        MethodArg::ProbUnet => Some(BaselineSpec::ProbUnet(Default::default())),
        MethodArg::CmGlobal => Some(BaselineSpec::CmGlobal(Default::default())),
        MethodArg::CmPixel => Some(BaselineSpec::CmPixel(Default::default())),
        MethodArg::Pionono => Some(BaselineSpec::Pionono(Default::default())),
        MethodArg::Tab => Some(BaselineSpec::Tab(Default::default())),
    };
    Ok(match (spec, from_config) {
        (None, None) => None,
        (None, Some(c)) => anyhow::bail!(
            "the configuration has a [baseline] table for `{}` but --method is dpersona; pass --method {}",
            c.name(),
            c.name()
        ),
        (Some(s), None) => Some(s),
        (Some(s), Some(c)) => {
            anyhow::ensure!(
                s.name() == c.name(),
                "--method {} but the configuration's [baseline] table is for `{}`",
                s.name(),
                c.name()
            );
            // Flags that pick the method's target win over the file's.
            match s {
                BaselineSpec::UnetRater { .. } | BaselineSpec::Mv { .. } => Some(s),
                _ => Some(c),
            }
        }
    })
}

pub fn run_train(args: TrainArgs) -> anyhow::Result<()> {
    schemas::host_memory::keep_freed_memory();
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let manifest = schemas::manifest::Manifest::read(&args.manifest)?;
    if args.resume {
        anyhow::ensure!(
            args.out.is_some(),
            "--resume needs --out RUN (the run folder to continue)"
        );
        let overrides = args.preset.is_some()
            || args.config.is_some()
            || args.seed.is_some()
            || args.epochs_stage1.is_some()
            || args.epochs_stage2.is_some()
            || args.patience.is_some()
            || args.min_epochs.is_some()
            || args.select_on.is_some()
            || args.fold.is_some()
            || args.method != MethodArg::Dpersona
            || args.rater.is_some();
        anyhow::ensure!(
            !overrides,
            "--resume continues with the run's own config.toml, method and fold; drop --preset/--config/--seed/--epochs-*/--patience/--min-epochs/--select-on/--fold/--method/--rater"
        );
    }
    if let Some(root) = folds_root(&args) {
        return run_train_folds(&args, &manifest, root);
    }
    if let Some(root) = all_raters_root(&args, &manifest) {
        return run_train_all_raters(&args, &manifest, &root);
    }
    let (preset, config) = resolve_config(&args, &manifest)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let method = config.baseline.as_ref().map_or("dpersona", |b| b.name());
        RunDir::default_path(Path::new("runs"), &manifest.header.dataset, method)
    });
    let stages = match args.stage {
        StageArg::One => Stages::One,
        StageArg::Two => Stages::Two,
        StageArg::Both => Stages::Both,
    };
    // Stage 2 alone continues an existing run that has stage 1.
    let resume = args.resume || (stages == Stages::Two && RunDir::new(&out).exists());
    eprintln!("run folder: {}", out.display());
    let summary = train(&TrainOptions {
        manifest: args.manifest.clone(),
        run: out.clone(),
        config,
        preset,
        fold: args.fold,
        stages,
        device: args.device.device()?,
        resume,
        backbone_weights: args.backbone_weights.clone(),
        progress: !args.quiet,
        latest_pointer: Some(latest_pointer_for(&out)),
        stop_after: None,
    })
    .with_context(|| format!("training into {}", out.display()))?;
    for (stage, best) in &summary.best {
        println!(
            "stage {stage}: best {} {:.4} at epoch {} -> {}",
            best.metric_name,
            best.metric,
            best.epoch + 1,
            RunDir::new(&out)
                .stage_dir(*stage)
                .join(&best.weights)
                .display()
        );
    }
    println!(
        "run: {}  (logs: train.log, train_log.parquet; recorded as the latest run in {})",
        out.display(),
        latest_pointer_for(&out).display()
    );
    Ok(())
}

/// The folder of a `--folds` command, or of a resumed one (`--resume --out OUT` where OUT
/// holds a folds record). `None` otherwise.
fn folds_root(args: &TrainArgs) -> Option<PathBuf> {
    match (&args.folds, &args.out) {
        (Some(_), Some(out)) => Some(out.clone()),
        (Some(_), None) => Some(PathBuf::new()),
        (None, Some(out)) if args.resume && crate::folds::members(out).is_some() => {
            Some(out.clone())
        }
        _ => None,
    }
}

/// `--folds`: the shared arguments, the per-process ones, then one child per fold.
fn run_train_folds(
    args: &TrainArgs,
    manifest: &schemas::manifest::Manifest,
    root: PathBuf,
) -> anyhow::Result<()> {
    let root = if root.as_os_str().is_empty() {
        let method = args
            .method
            .to_possible_value()
            .map_or_else(|| "method".to_string(), |v| v.get_name().to_string());
        RunDir::default_path(Path::new("runs"), &manifest.header.dataset, &method)
    } else {
        root
    };
    let folds = match &args.folds {
        Some(f) => f.clone(),
        None => crate::folds::read_record(&root)?.folds,
    };
    anyhow::ensure!(!folds.is_empty(), "--folds names no fold");
    anyhow::ensure!(
        args.method != MethodArg::UnetRater || matches!(args.rater, Some(RaterArg::One(_))),
        "--folds with --method unet-rater needs --rater K (all raters per fold: train each fold on its own)"
    );
    if !args.resume {
        // Fail here, once, rather than in every child.
        resolve_config(args, manifest)?;
    }
    let jobs = args.jobs.unwrap_or(folds.len()).max(1);
    let mut child_flags = vec![
        "--device".to_string(),
        args.device
            .to_possible_value()
            .map_or("auto".into(), |v| v.get_name().to_string()),
    ];
    let threads = match args.threads {
        Some(n) => Some(n as usize),
        None if args.device.device()? == Device::Cpu => {
            Some(crate::folds::threads_per_job(jobs.min(folds.len())))
        }
        None => None,
    };
    if let Some(n) = threads {
        child_flags.extend(["--threads".into(), n.to_string()]);
    }
    eprintln!(
        "run folder: {} ({} folds, {} at a time{})",
        root.display(),
        folds.len(),
        jobs.min(folds.len()),
        threads.map_or(String::new(), |n| format!(", {n} threads each"))
    );
    crate::folds::run_folds(&crate::folds::FoldsPlan {
        root: root.clone(),
        manifest: args.manifest.clone(),
        folds,
        jobs,
        args: args.fold_shared_args()?,
        child_flags,
        resume: args.resume,
    })?;
    println!(
        "runs: {}/fold_K  (evaluate them all with `dpersona eval --run {}`)",
        root.display(),
        root.display()
    );
    Ok(())
}

impl TrainArgs {
    /// The arguments every fold of a `--folds` command shares, as `dpersona train` flags:
    /// all but the fold, the folder and the per-process ones. Paths are made absolute so a
    /// resume from another working folder starts missing folds the same way. The
    /// destructuring is exhaustive: a new flag does not compile until it is placed here.
    pub fn fold_shared_args(&self) -> anyhow::Result<Vec<String>> {
        let TrainArgs {
            manifest,
            method,
            rater,
            mv,
            out: _,
            preset,
            config,
            fold: _,
            folds: _,
            jobs: _,
            stage,
            device: _,
            threads: _,
            seed,
            resume: _,
            backbone_weights,
            epochs_stage1,
            epochs_stage2,
            patience,
            min_epochs,
            select_on,
            quiet: _,
        } = self;
        let name = |v: Option<clap::builder::PossibleValue>| {
            v.map(|v| v.get_name().to_string()).unwrap_or_default()
        };
        let abs = |p: &Path| -> anyhow::Result<String> {
            Ok(std::path::absolute(p)
                .with_context(|| format!("{}", p.display()))?
                .to_string_lossy()
                .into_owned())
        };
        let mut a = vec!["--manifest".into(), abs(manifest)?];
        a.extend(["--method".into(), name(method.to_possible_value())]);
        match rater {
            Some(RaterArg::One(k)) => a.extend(["--rater".into(), k.to_string()]),
            Some(RaterArg::All) => a.extend(["--rater".into(), "all".into()]),
            None => {}
        }
        a.extend(["--mv".into(), name(mv.to_possible_value())]);
        if let Some(p) = preset {
            a.extend(["--preset".into(), p.clone()]);
        }
        if let Some(c) = config {
            a.extend(["--config".into(), abs(c)?]);
        }
        a.extend(["--stage".into(), name(stage.to_possible_value())]);
        if let Some(s) = seed {
            a.extend(["--seed".into(), s.to_string()]);
        }
        if let Some(w) = backbone_weights {
            a.extend(["--backbone-weights".into(), abs(w)?]);
        }
        if let Some(e) = epochs_stage1 {
            a.extend(["--epochs-stage1".into(), e.to_string()]);
        }
        if let Some(e) = epochs_stage2 {
            a.extend(["--epochs-stage2".into(), e.to_string()]);
        }
        if let Some(p) = patience {
            a.extend(["--patience".into(), p.to_string()]);
        }
        if let Some(m) = min_epochs {
            a.extend(["--min-epochs".into(), m.to_string()]);
        }
        if let Some(s) = select_on {
            a.extend(["--select-on".into(), name(s.to_possible_value())]);
        }
        Ok(a)
    }
}

/// The folder of an all-raters `unet-rater` command: `--method unet-rater` without
/// `--rater K`, or a resumed folder that holds `rater_K/` runs. `None` otherwise.
fn all_raters_root(args: &TrainArgs, manifest: &schemas::manifest::Manifest) -> Option<PathBuf> {
    let one = matches!(args.rater, Some(RaterArg::One(_)));
    if args.resume {
        let out = args.out.as_ref()?;
        return crate::rater_ensemble::members(out).map(|_| out.clone());
    }
    (args.method == MethodArg::UnetRater && !one).then(|| {
        args.out.clone().unwrap_or_else(|| {
            RunDir::default_path(Path::new("runs"), &manifest.header.dataset, "unet-rater")
        })
    })
}

/// Trains (or resumes) one U-Net per rater into ROOT/rater_K/, one after the other; a
/// member not started yet when a resume comes takes rater 0's configuration.
fn run_train_all_raters(
    args: &TrainArgs,
    manifest: &schemas::manifest::Manifest,
    root: &Path,
) -> anyhow::Result<()> {
    use crate::rater_ensemble::member_dir;
    let raters = manifest.header.raters.len();
    eprintln!(
        "run folder: {} ({raters} unet-rater models)",
        root.display()
    );
    for k in 0..raters {
        let member = member_dir(root, k);
        let started = RunDir::new(&member).exists();
        let (preset, config, fold) = if args.resume && !started {
            let first = RunDir::new(member_dir(root, 0));
            let mut cfg = first.read_config()?;
            cfg.baseline = Some(BaselineSpec::UnetRater { rater: k as i64 });
            let info = first.read_info()?;
            (info.preset, cfg, info.fold)
        } else {
            let mut one = args.clone();
            one.method = MethodArg::UnetRater;
            one.rater = Some(RaterArg::One(k as i64));
            let (preset, cfg) = resolve_config(&one, manifest)?;
            (preset, cfg, args.fold)
        };
        eprintln!(
            "unet-rater {}/{raters}: rater {k} -> {}",
            k + 1,
            member.display()
        );
        let summary = train(&TrainOptions {
            manifest: args.manifest.clone(),
            run: member.clone(),
            config,
            preset,
            fold,
            stages: Stages::One,
            device: args.device.device()?,
            resume: args.resume && started,
            backbone_weights: args.backbone_weights.clone(),
            progress: !args.quiet,
            latest_pointer: None,
            stop_after: None,
        })
        .with_context(|| format!("training rater {k} into {}", member.display()))?;
        for (_, best) in &summary.best {
            println!(
                "rater {k}: best {} {:.4} at epoch {}",
                best.metric_name,
                best.metric,
                best.epoch + 1
            );
        }
    }
    let pointer = latest_pointer_for(root);
    RunDir::new(root).mark_latest(&pointer)?;
    println!(
        "run: {} (one U-Net per rater in rater_K/, scored together by `dpersona eval`; recorded as the latest run in {})",
        root.display(),
        pointer.display()
    );
    Ok(())
}

/// The `latest` pointer sits beside the run folder (`runs/a` -> `runs/latest`), so that
/// the default `runs/<name>` runs are found by `dpersona eval` with no `--run`, and a run
/// written elsewhere never touches the current folder's pointer.
fn latest_pointer_for(run: &Path) -> PathBuf {
    run.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("latest")
}

/// `--run`, or the run `runs/latest` points to; then the user did not name it, so say which
/// run the numbers belong to.
fn run_or_latest(run: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(r) = run {
        return Ok(r.to_path_buf());
    }
    let run = RunDir::from_latest(Path::new(LATEST_POINTER))?.root;
    println!(
        "run: {} (the latest run, from {LATEST_POINTER})",
        run.display()
    );
    Ok(run)
}

pub fn run_diagnose(args: DiagnoseArgs) -> anyhow::Result<()> {
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let run = run_or_latest(args.run.as_deref())?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| crate::diagnose::default_out(&run));
    let summary = crate::diagnose::diagnose(&crate::diagnose::DiagnoseOptions {
        run: run.clone(),
        manifest: args.manifest.clone(),
        out,
        split: args.split.clone(),
        fold: args.fold,
        bank: args.bank,
        seed: args.seed,
        device: args.device.device()?,
        batch_size: args.batch_size,
    })
    .with_context(|| format!("diagnosing {}", run.display()))?;
    print!("{}", crate::diagnose::render(&summary));
    println!(
        "rows: {} ({} per-slice values)",
        summary.out.display(),
        summary.rows
    );
    Ok(())
}

pub fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    schemas::host_memory::keep_freed_memory();
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    if let Some(dir) = &args.predictions {
        let manifest = args
            .manifest
            .as_ref()
            .context("--predictions needs --manifest (the labels to score against)")?;
        let (written, units) =
            evaluate_predictions_dir(dir, manifest, &args.out, args.ged_empty_pair)?;
        println!(
            "scored {units} units from {} -> {} ({} rows; summary {})",
            dir.display(),
            written.results.display(),
            written.total_rows,
            written.summary.display()
        );
        return Ok(());
    }
    let run = run_or_latest(args.run.as_deref())?;
    let stages = match args.stage {
        None => Vec::new(),
        Some(StageArg::One) => vec![1],
        Some(StageArg::Two) => vec![2],
        Some(StageArg::Both) => vec![1, 2],
    };
    // A `train --folds` root: each fold's run on its own fold, all into one frame.
    let root_name = run.file_name().map(|n| n.to_string_lossy().into_owned());
    let runs: Vec<(PathBuf, Option<PathBuf>, Option<String>)> = match crate::folds::members(&run) {
        Some(members) => {
            anyhow::ensure!(
                args.fold.is_none(),
                "{} holds one run per fold, each evaluated on its own fold; drop --fold",
                run.display()
            );
            anyhow::ensure!(
                !members.is_empty(),
                "{}: no fold has been trained yet",
                run.display()
            );
            members
                .into_iter()
                .map(|(k, dir)| {
                    let preds = args
                        .save_predictions
                        .as_ref()
                        .map(|p| p.join(format!("fold_{k}")));
                    (dir, preds, root_name.clone())
                })
                .collect()
        }
        None => vec![(run.clone(), args.save_predictions.clone(), None)],
    };
    for (run, save_predictions, run_name) in runs {
        if run
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("fold_"))
        {
            println!("== {}", run.display());
        }
        eval_one(&args, &run, run_name, stages.clone(), save_predictions)?;
    }
    if let Some(p) = &args.save_predictions {
        println!("predictions: {}", p.display());
    }
    Ok(())
}

/// Evaluates one run into `args.out` and prints its lines.
fn eval_one(
    args: &EvalArgs,
    run: &Path,
    run_name: Option<String>,
    stages: Vec<u8>,
    save_predictions: Option<PathBuf>,
) -> anyhow::Result<()> {
    let summary = evaluate(&EvalOptions {
        run_name,
        run: run.to_path_buf(),
        manifest: args.manifest.clone(),
        out: args.out.clone(),
        split: args.split.clone(),
        fold: args.fold,
        samples: args.samples.clone(),
        bank: args.bank,
        unit: args.unit.map(|u| match u {
            UnitArg::Slice => eval::metric_rows::UnitKind::Slice,
            UnitArg::Volume => eval::metric_rows::UnitKind::Volume,
        }),
        stages,
        ged_empty_pair: args.ged_empty_pair,
        seed: args.seed,
        save_predictions,
        device: args.device.device()?,
        batch_size: args.batch_size,
    })
    .with_context(|| format!("evaluating {}", run.display()))?;
    for l in &summary.lines {
        println!(
            "stage {} N={} M={}: {} units, GED {:.4}, Dice_match {:.4}",
            l.stage, l.n_samples, l.bank, l.units, l.ged, l.dice_match
        );
    }
    for (stage, sha) in &summary.checkpoint_sha256 {
        println!("stage {stage} checkpoint sha256 {sha}");
    }
    println!(
        "results: {} ({} rows, {} replaced); summary: {}",
        summary.written.results.display(),
        summary.written.total_rows,
        summary.written.replaced_rows,
        summary.written.summary.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Train {
        #[command(flatten)]
        args: TrainArgs,
    }

    fn parse(argv: &[&str]) -> TrainArgs {
        Train::try_parse_from(std::iter::once("train").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    /// A fold's child process parses back to the parent's flags with only the fold, the
    /// folder and the per-process flags changed (paths absolute).
    #[test]
    fn fold_children_get_every_shared_flag() {
        let parent = parse(&[
            "--manifest",
            "m.parquet",
            "--method",
            "mv",
            "--mv",
            "inclusive",
            "--preset",
            "small",
            "--config",
            "c.toml",
            "--stage",
            "1",
            "--seed",
            "3",
            "--backbone-weights",
            "w.st",
            "--epochs-stage1",
            "2",
            "--epochs-stage2",
            "5",
            "--patience",
            "4",
            "--min-epochs",
            "3",
            "--select-on",
            "test",
            "--folds",
            "0,1",
            "--jobs",
            "2",
            "--out",
            "o",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--quiet",
        ]);
        assert_eq!(parent.folds, Some(vec![0, 1]));
        let shared = parent.fold_shared_args().unwrap();
        let mut child_argv: Vec<String> = shared.clone();
        child_argv.extend(
            [
                "--fold",
                "1",
                "--out",
                "o/fold_1",
                "--threads",
                "1",
                "--device",
                "cpu",
                "--quiet",
            ]
            .map(String::from),
        );
        let refs: Vec<&str> = child_argv.iter().map(String::as_str).collect();
        let child = parse(&refs);
        let abs = |p: &str| std::path::absolute(p).unwrap();
        let expected = TrainArgs {
            manifest: abs("m.parquet"),
            config: Some(abs("c.toml")),
            backbone_weights: Some(abs("w.st")),
            fold: Some(1),
            folds: None,
            jobs: None,
            out: Some(PathBuf::from("o/fold_1")),
            ..parent.clone()
        };
        assert_eq!(child, expected);
        // The defaults travel explicitly too, so a changed default cannot split the folds.
        let plain = parse(&["--manifest", "/m.parquet", "--folds", "0"]);
        let a = plain.fold_shared_args().unwrap();
        assert_eq!(
            a,
            [
                "--manifest",
                "/m.parquet",
                "--method",
                "dpersona",
                "--mv",
                "strict",
                "--stage",
                "both"
            ]
        );
    }
}
