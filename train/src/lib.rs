//! D-Persona (Stage I and II) and baselines in tch: loader, models, losses, training and
//! inference. Validation scores with `eval`'s metric code, not a copy of it.
//!
//! Modules:
//! - [`batch`]: the mini-batch handed from the loader to the training thread.
//! - [`loader`]: manifest selections, the paper's augmentations, prefetching worker pool.
//! - [`models`]: D-Persona's networks (ResNet-34 U-Net, prior/posterior, Fcomb, expert heads).
//! - [`losses`]: the Dice loss and the Stage-I / Stage-II objectives.
//! - [`config`]: the training configuration (presets + user TOML, unknown keys rejected).
//! - [`optim`]: Adam over tch tensors with savable state; [`schedule`]: per-epoch cosine lr.
//! - [`seeding`]: every random draw seeded from (seed, stage, epoch, step), for resume.
//! - [`precision`]: fp32 / bf16 / fp16 autocast and the fp16 loss scaler.
//! - [`checkpoint`]: crash-safe safetensors checkpoints with JSON sidecars.
//! - [`run_dir`]: the run folder layout and the `runs/latest` pointer.
//! - [`train_log`]: `train_log.parquet` and the readable `train.log`.
//! - [`baselines`]: the compared methods' networks (label fusion, Prob. U-Net, CM, Pionono, ...).
//! - [`error`]: the training error every layer above the loader returns.
//! - [`infer`]: probability maps from a trained D-Persona.
//! - [`units`]: the evaluation units (slices or volumes) eval and validation both score.
//! - [`methods`]: the [`methods::Method`] trait; D-Persona's stages and the baselines.
//! - [`fit`]: the one training loop (schedule, NaN policy, validation, checkpoints, resume).
//! - [`trainer`]: `dpersona train`: the run folder, the loaders, each stage through `fit`.
//! - [`folds`]: `train --folds`: the folds of a protocol trained at once, a process each.
//! - [`rater_ensemble`]: unet-rater for every rater, trained and loaded as one method.
//! - [`evaluate`]: `dpersona eval` on a run: units, sample counts, metric frames.
//! - [`predict`]: `dpersona predict`: a run applied to unlabelled scans, NIfTI out.
//! - [`diagnose`]: `dpersona diagnose`: what a run's latent space carries (KL per dim, the
//!   prior bank's diversity, best-of-bank Dice, Stage-II attention).
//!
//! Data flows one way: loader -> models/baselines -> methods -> fit -> trainer, evaluate,
//! predict, diagnose -> cli.
pub mod baselines;
pub mod batch;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod diagnose;
pub mod error;
pub mod evaluate;
pub mod fit;
pub mod folds;
pub mod infer;
pub mod loader;
pub mod losses;
pub mod methods;
pub mod models;
pub mod optim;
pub mod precision;
pub mod predict;
pub mod rater_ensemble;
pub mod run_dir;
pub mod schedule;
pub mod seeding;
pub mod train_log;
pub mod trainer;
pub mod units;
