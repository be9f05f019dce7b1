//! Metrics, metric frames and reports for multi-rater segmentation. No libtorch here:
//! predictions are scored however they were made.
//!
//! Modules:
//! - [`bitmask`]: bit-packed binary masks with popcount intersections and unions.
//! - [`lsap`]: rectangular linear sum assignment (a port of SciPy's solver).
//! - [`unit_metrics`]: GED, Dice_soft, Dice_max (both directions), Dice_match and per-rater
//!   Dice of one unit, with their conventions ([`unit_metrics::MetricOptions`]).
//! - [`metric_rows`]: unit scores as tidy `MetricRecord` rows; the metric names.
//! - [`results_frame`]: `results.parquet` + its summary: merge-by-key atomic writes.
//! - [`predictions`]: the `--save-predictions` folder layout: writer, reader and scorer.
//! - [`prediction_volumes`]: the NIfTI volume format of that folder's volume units (write,
//!   read); [`predictions`] owns the folder layout and is the only one of the two that
//!   imports the other.
//! - [`prediction_error`]: the error both report.
//! - [`slice_positions`]: each shard slice's `z_mm` and spacing, read from the shards.
//! - [`raster`]: tiny RGB raster drawing (rects, lines, contours, text) and PNG I/O.
//! - [`typeface`]: the embedded DejaVu Sans every figure's text is set in.
//! - [`figures`]: the paper's sample and personalisation figures (image panels).
//! - [`curves`]: training curves with axes, ticks and legends (plotters).
//! - [`report_table`]: the paper's Table 1/2 layout from a metric frame.
//! - [`stats`]: bootstrap intervals over units, paired differences, Wilcoxon signed-rank.
//! - [`claims`]: the paper's claims tested on a metric frame (`report --claims`).
//! - [`cli`]: `dpersona report`.
pub mod bitmask;
pub mod claims;
pub mod cli;
pub mod curves;
pub mod figures;
pub mod lsap;
pub mod metric_rows;
pub mod predict_figure;
pub mod prediction_error;
pub mod prediction_volumes;
pub mod predictions;
pub mod raster;
pub mod report_table;
pub mod results_frame;
pub mod slice_positions;
pub mod stats;
pub mod typeface;
pub mod unit_metrics;
