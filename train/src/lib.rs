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
//! - [`checkpoint`]: crash-safe safetensors checkpoints with JSON sidecars.
//! - [`run_dir`]: the run folder layout and the `runs/latest` pointer.
//! - [`train_log`]: `train_log.parquet` and the readable `train.log`.
//! - [`epoch_end`]: epoch-end bookkeeping every loop shares (val row, best, sidecar).
//! - [`nan_policy`]: non-finite steps skipped, counted, and a stop after too many in a row.
//! - [`trainer`]: Stage I and Stage II loops with validation, best/last checkpoints, resume.
//! - [`infer`]: probability maps from a trained model, scored with eval's metric code.
//! - [`validation`]: per-epoch validation on the units eval scores (slices or volumes).
//! - [`evaluate`]: `dpersona eval` on a run: units, sample counts, metric frames.
//! - [`predict`]: `dpersona predict`: a run applied to unlabelled scans, NIfTI out.
//! - [`baselines`]: the compared methods (label fusion, Prob. U-Net, CM, Pionono, ...).
//! - [`baseline_trainer`]: the baselines' training loop on the trainer's machinery.
pub mod baseline_trainer;
pub mod baselines;
pub mod batch;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod epoch_end;
pub mod evaluate;
pub mod infer;
pub mod loader;
pub mod losses;
pub mod models;
pub mod nan_policy;
pub mod optim;
pub mod predict;
pub mod run_dir;
pub mod schedule;
pub mod seeding;
pub mod train_log;
pub mod trainer;
pub mod validation;
