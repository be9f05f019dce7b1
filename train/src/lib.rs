//! D-Persona (Stage I and II) and baselines in tch: loader, models, losses, training and
//! inference. Validation scores with `eval`'s metric code, not a copy of it.
//!
//! Modules:
//! - [`batch`]: the mini-batch handed from the loader to the training thread.
//! - [`loader`]: manifest selections, the paper's augmentations, prefetching worker pool.
//! - [`models`]: D-Persona's networks (ResNet-34 U-Net, prior/posterior, Fcomb, expert heads).
//! - [`losses`]: the Dice loss and the Stage-I / Stage-II objectives.
//! - [`baselines`]: the compared methods (label fusion, Prob. U-Net, CM, Pionono, ...).
pub mod baselines;
pub mod batch;
pub mod cli;
pub mod loader;
pub mod losses;
pub mod models;
