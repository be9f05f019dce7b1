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
//! - [`prediction_volumes`]: NIfTI volumes in that folder for volume units (write, read).
//! - [`raster`]: tiny RGB raster drawing (rects, lines, contours, 8x8 text) and PNG I/O.
//! - [`figures`]: the paper's sample/personalisation figures and training curves.
//! - [`report_table`]: the paper's Table 1/2 layout from a metric frame.
//! - [`cli`]: `dpersona report`.
pub mod bitmask;
pub mod cli;
pub mod figures;
pub mod lsap;
pub mod metric_rows;
pub mod predict_figure;
pub mod prediction_volumes;
pub mod predictions;
pub mod raster;
pub mod report_table;
pub mod results_frame;
pub mod unit_metrics;
