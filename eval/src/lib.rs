//! Metrics, metric frames and reports for multi-rater segmentation. No libtorch here:
//! predictions are scored however they were made.
pub mod cli;
