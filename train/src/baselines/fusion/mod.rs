//! Label fusion for the fused-label baselines (pure Rust, no torch): majority voting,
//! STAPLE, random rater selection, and the on-disk cache of fused labels.
//!
//! Modules:
//! - [`mv`]: majority voting with explicit tie rules.
//! - [`staple`]: binary STAPLE, ITK's schedule, with guards.
//! - [`rs`]: seeded random-rater draws per sample.
//! - [`cache`]: fused labels computed once per manifest selection, cached as Parquet.
pub mod cache;
pub mod mv;
pub mod rs;
pub mod staple;

pub use cache::{fused_labels, FusedLabels, Fusion, FusionError};
pub use mv::{majority_vote, MvRule};
pub use rs::RandomRater;
pub use staple::{staple, StapleGranularity, StapleOutput, StapleParams, StapleResult};
