//! Training curves of a run (`RUN/train_log.parquet`) as one PNG, drawn with plotters.
//!
//! One row of panels per stage: a panel per loss term (every step, faint, and its epoch
//! mean, with markers) and one panel of the validation metrics (a point per epoch, joined),
//! each with labelled axes, tick values and a legend. The x axis counts epochs completed:
//! a step of epoch e sits between e and e + 1 in proportion to its place in the epoch, and
//! a validation point at the end of its epoch, so a curve can be read against the epoch
//! the checkpoint was picked at. The log has no steps-per-epoch column, so each epoch's
//! extent comes from the first and last step logged in it.
use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use schemas::train_log::TrainLogRecord;

use crate::figures::FigureError;
use crate::raster::{encode_png, PALETTE};
use crate::typeface::{register_with_plotters, FAMILY};

/// Size of one panel, in pixels.
pub const PANEL_W: u32 = 380;
pub const PANEL_H: u32 = 250;
/// Height of the figure's title strip.
pub const TITLE_H: u32 = 34;

/// A curve: (x, y) points in drawing order.
type Points = Vec<(f64, f64)>;

/// What one stage logged: per loss term the step values, per metric the epoch values.
#[derive(Default)]
struct StageLog {
    train: BTreeMap<String, Points>,
    /// Epoch means of each loss term, one point per epoch.
    train_means: BTreeMap<String, Points>,
    val: BTreeMap<String, Points>,
    epochs: f64,
}

/// Groups the log's rows by stage and converts steps and epochs to the epoch axis.
fn stage_logs(records: &[TrainLogRecord]) -> BTreeMap<u8, StageLog> {
    // (stage, epoch) -> (first step, last step) over the training rows.
    let mut extent: BTreeMap<(u8, u32), (u64, u64)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.kind == "train") {
        let e = extent.entry((r.stage, r.epoch)).or_insert((r.step, r.step));
        e.0 = e.0.min(r.step);
        e.1 = e.1.max(r.step);
    }
    let first_epoch = |stage: u8| {
        records
            .iter()
            .filter(|r| r.stage == stage && (r.kind == "train" || r.kind == "val"))
            .map(|r| r.epoch)
            .min()
            .unwrap_or(0)
    };
    let mut logs: BTreeMap<u8, StageLog> = BTreeMap::new();
    let mut sums: BTreeMap<(u8, String, u32), (f64, usize)> = BTreeMap::new();
    for r in records {
        if !r.value.is_finite() || (r.kind != "train" && r.kind != "val") {
            continue;
        }
        let e0 = first_epoch(r.stage);
        let log = logs.entry(r.stage).or_default();
        let base = (r.epoch - e0) as f64;
        if r.kind == "train" {
            let (lo, hi) = extent[&(r.stage, r.epoch)];
            let x = base + (r.step - lo + 1) as f64 / (hi - lo + 1) as f64;
            log.train
                .entry(r.name.clone())
                .or_default()
                .push((x, r.value));
            let s = sums.entry((r.stage, r.name.clone(), r.epoch)).or_default();
            s.0 += r.value;
            s.1 += 1;
        } else {
            log.val
                .entry(r.name.clone())
                .or_default()
                .push((base + 1.0, r.value));
        }
        log.epochs = log.epochs.max(base + 1.0);
    }
    for ((stage, name, epoch), (sum, n)) in sums {
        let e0 = first_epoch(stage);
        logs.entry(stage)
            .or_default()
            .train_means
            .entry(name)
            .or_default()
            .push(((epoch - e0) as f64 + 1.0, sum / n as f64));
    }
    logs
}

/// The y range of `series`, widened a little (and around a constant) so no point sits on
/// the frame.
fn y_range<'a>(series: impl Iterator<Item = &'a Points>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in series.flatten() {
        lo = lo.min(p.1);
        hi = hi.max(p.1);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.06
    } else {
        lo.abs().max(1e-3) * 0.1
    };
    (lo - pad, hi + pad)
}

fn colour(i: usize) -> RGBColor {
    let [r, g, b] = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

fn plot_error<E: std::fmt::Debug>(e: E) -> FigureError {
    FigureError::Plot(format!("{e:?}"))
}

/// One panel: `curves` are (label, points, colour, faint); `markers` get a dot per point.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    epochs: f64,
    curves: &[(String, &Points, RGBColor, bool)],
    legend_at: SeriesLabelPosition,
) -> Result<(), FigureError> {
    let (ylo, yhi) = y_range(curves.iter().map(|c| c.1));
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 15))
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(58)
        .build_cartesian_2d(0f64..epochs.max(1.0), ylo..yhi)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .x_labels((epochs as usize + 1).clamp(2, 11))
        .y_labels(6)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.3}"))
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(plot_error)?;
    for (label, points, c, faint) in curves {
        let c = *c;
        let style = if *faint {
            c.mix(0.35).stroke_width(1)
        } else {
            c.stroke_width(2)
        };
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(plot_error)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        if !*faint {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(plot_error)?;
        }
    }
    chart
        .configure_series_labels()
        .position(legend_at)
        .label_font((FAMILY, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Training curves of a run from `run_dir/train_log.parquet`; returns the PNG size.
pub fn training_curves(run_dir: &Path, out: &Path) -> Result<(u32, u32), FigureError> {
    let path = run_dir.join("train_log.parquet");
    let (records, _) = schemas::read_table::<TrainLogRecord>(&path)?;
    let logs = stage_logs(&records);
    if logs.is_empty() {
        return Err(FigureError::Empty(format!(
            "{}: no train or val rows to plot",
            path.display()
        )));
    }
    // Panels per stage: each loss term ("total" first), then the validation panel.
    let rows: Vec<(u8, Vec<String>)> = logs
        .iter()
        .map(|(stage, log)| {
            let mut names: Vec<String> = log.train.keys().cloned().collect();
            names.sort_by_key(|n| (n != "total", n.clone()));
            (*stage, names)
        })
        .collect();
    let cols = rows
        .iter()
        .map(|(s, names)| names.len() + usize::from(!logs[s].val.is_empty()))
        .max()
        .unwrap_or(1)
        .max(1) as u32;
    let (width, height) = (cols * PANEL_W, TITLE_H + rows.len() as u32 * PANEL_H);
    register_with_plotters();
    let mut rgb = vec![255u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        let run = run_dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (head, body) = root.split_vertically(TITLE_H);
        head.titled(&format!("Training log of {run}"), (FAMILY, 18))
            .map_err(plot_error)?;
        let grid = body.split_evenly((rows.len(), cols as usize));
        for (r, (stage, names)) in rows.iter().enumerate() {
            let log = &logs[stage];
            for (k, name) in names.iter().enumerate() {
                let c = colour(4);
                let mut curves = vec![("every step".to_string(), &log.train[name], c, true)];
                if let Some(m) = log.train_means.get(name) {
                    curves.push(("epoch mean".to_string(), m, c, false));
                }
                panel(
                    &grid[r * cols as usize + k],
                    &format!("Stage {stage} loss: {name}"),
                    name,
                    log.epochs,
                    &curves,
                    // Losses fall: their upper right corner is empty late in training.
                    SeriesLabelPosition::UpperRight,
                )?;
            }
            if !log.val.is_empty() {
                let curves: Vec<_> = log
                    .val
                    .iter()
                    .enumerate()
                    .map(|(i, (name, p))| (name.clone(), p, colour(i), false))
                    .collect();
                panel(
                    &grid[r * cols as usize + names.len()],
                    &format!("Stage {stage}: validation"),
                    "metric",
                    log.epochs,
                    &curves,
                    // Validation metrics mostly rise (GED falls, but is one of several).
                    SeriesLabelPosition::LowerRight,
                )?;
            }
        }
        root.present().map_err(plot_error)?;
    }
    let png = encode_png(width, height, png::ColorType::Rgb, &rgb);
    schemas::atomic::write_file_atomic(out, &png)
        .map_err(|e| FigureError::Raster(crate::raster::RasterError::Write(e)))?;
    Ok((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stage: u8, epoch: u32, step: u64, kind: &str, name: &str, value: f64) -> TrainLogRecord {
        TrainLogRecord {
            stage,
            epoch,
            step,
            kind: kind.into(),
            name: name.into(),
            value,
            lr: 1e-4,
            elapsed_s: 0.0,
        }
    }

    #[test]
    fn steps_and_validation_points_land_on_the_epoch_axis() {
        // Epochs 1 and 2 of four steps each (steps 1..=8), validation after each.
        let mut rows = Vec::new();
        for step in 1..=8u64 {
            let epoch = 1 + (step as u32 - 1) / 4;
            rows.push(row(1, epoch, step, "train", "total", step as f64));
        }
        rows.push(row(1, 1, 4, "val", "dice_match", 0.5));
        rows.push(row(1, 2, 8, "val", "dice_match", 0.6));
        rows.push(row(1, 2, 8, "train", "kl", f64::NAN));
        let logs = stage_logs(&rows);
        let log = &logs[&1];
        let xs: Vec<f64> = log.train["total"].iter().map(|p| p.0).collect();
        assert_eq!(xs, [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]);
        assert_eq!(log.val["dice_match"], vec![(1.0, 0.5), (2.0, 0.6)]);
        assert_eq!(log.train_means["total"], vec![(1.0, 2.5), (2.0, 6.5)]);
        assert!(!log.train.contains_key("kl"), "a NaN value is not plotted");
        assert_eq!(log.epochs, 2.0);
    }
}
