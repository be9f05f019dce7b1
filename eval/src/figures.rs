//! Report figures as PNG, from a predictions folder and a run's training log:
//! - [`samples_figure`] (paper Fig. 4): per slice, the image with every rater's contour,
//!   the image with every predicted sample's contour in distinct colours, and the mean
//!   probability map;
//! - [`personalised_figure`] (paper Fig. 5): per slice and rater k, prediction k (filled,
//!   tinted) against rater k's mask (white contour);
//! - [`training_curves`]: every loss term and validation metric of `RUN/train_log.parquet`
//!   against step (train) or epoch (val), one small plot each.
use std::collections::BTreeMap;
use std::path::Path;

use schemas::train_log::TrainLogRecord;

use crate::predictions::{list_slices, SavedSlice};
use crate::raster::{
    read_grey_png, Canvas, RasterError, Rgb, BLACK, GREY, LIGHT_GREY, PALETTE, WHITE,
};

#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    #[error(transparent)]
    Raster(#[from] RasterError),
    #[error(transparent)]
    Predictions(#[from] crate::predictions::PredictionsError),
    #[error(transparent)]
    Schema(#[from] schemas::SchemaError),
    #[error("{0}")]
    Empty(String),
}

/// Panel magnification of the (typically 128 x 128) crops.
const SCALE: u32 = 2;
const PAD: u32 = 8;
const TITLE_H: u32 = 20;

struct LoadedSlice {
    w: u32,
    h: u32,
    image: Vec<f32>,
    raters: Vec<Option<Vec<u8>>>,
    probs: Vec<Vec<f32>>,
    name: String,
}

fn load(s: &SavedSlice) -> Result<LoadedSlice, FigureError> {
    let preds = s
        .preds
        .iter()
        .map(|p| read_grey_png(p))
        .collect::<Result<Vec<_>, _>>()?;
    let (w, h) = (preds[0].width, preds[0].height);
    let image = match &s.image {
        Some(p) => read_grey_png(p)?.values,
        None => vec![0.0; (w * h) as usize],
    };
    let raters = s
        .raters
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|p| {
                    read_grey_png(p).map(|g| g.values.iter().map(|&v| (v > 0.5) as u8).collect())
                })
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LoadedSlice {
        w,
        h,
        image,
        raters,
        probs: preds.into_iter().map(|g| g.values).collect(),
        name: format!("{}/{} s{}", s.study_id, s.target_id, s.slice_index),
    })
}

/// Picks up to `max` slices, preferring those where raters drew the most (most to see).
fn pick(dir: &Path, max: usize) -> Result<Vec<LoadedSlice>, FigureError> {
    let header = crate::predictions::read_header(dir).ok();
    if header.is_some_and(|h| h.files == crate::predictions::PredictionFiles::Nifti) {
        return Err(FigureError::Empty(format!(
            "{}: holds NIfTI volumes; figures are drawn from PNG slice folders (open the \
             volumes in a NIfTI viewer, or save with `dpersona eval --unit slice`)",
            dir.display()
        )));
    }
    let slices = list_slices(dir)?;
    if slices.is_empty() {
        return Err(FigureError::Empty(format!(
            "{}: no predictions to draw",
            dir.display()
        )));
    }
    let mut loaded = slices.iter().map(load).collect::<Result<Vec<_>, _>>()?;
    let area = |l: &LoadedSlice| {
        l.raters
            .iter()
            .flatten()
            .map(|m| m.iter().map(|&v| v as usize).sum::<usize>())
            .sum::<usize>()
    };
    loaded.sort_by_key(|l| std::cmp::Reverse(area(l)));
    loaded.truncate(max);
    Ok(loaded)
}

fn binarise(p: &[f32]) -> Vec<u8> {
    p.iter().map(|&v| (v > 0.5) as u8).collect()
}

/// Paper Fig. 4 from a predictions folder; returns the PNG size (width, height).
pub fn samples_figure(
    dir: &Path,
    out: &Path,
    max_slices: usize,
) -> Result<(u32, u32), FigureError> {
    let slices = pick(dir, max_slices)?;
    let (pw, ph) = (slices[0].w * SCALE, slices[0].h * SCALE);
    let width = PAD + 3 * (pw + PAD);
    let height = TITLE_H + slices.len() as u32 * (ph + TITLE_H + PAD) + PAD;
    let mut c = Canvas::new(width, height, WHITE);
    c.text(
        PAD as i64,
        6,
        "raters | samples (contours) | mean probability",
        BLACK,
        1,
    );
    for (row, s) in slices.iter().enumerate() {
        let y = (TITLE_H + row as u32 * (ph + TITLE_H + PAD)) as i64;
        c.text(PAD as i64, y + 4, &s.name, BLACK, 1);
        let y = y + TITLE_H as i64;
        let x = |k: u32| (PAD + k * (pw + PAD)) as i64;
        c.blit_grey(x(0), y, &s.image, s.w, s.h, SCALE);
        for (k, m) in s.raters.iter().enumerate() {
            if let Some(m) = m {
                c.contour(x(0), y, m, s.w, s.h, SCALE, PALETTE[k % PALETTE.len()]);
            }
        }
        c.blit_grey(x(1), y, &s.image, s.w, s.h, SCALE);
        for (j, p) in s.probs.iter().enumerate() {
            c.contour(
                x(1),
                y,
                &binarise(p),
                s.w,
                s.h,
                SCALE,
                PALETTE[j % PALETTE.len()],
            );
        }
        let n = s.probs.len() as f32;
        let mean: Vec<f32> = (0..s.probs[0].len())
            .map(|i| s.probs.iter().map(|p| p[i]).sum::<f32>() / n)
            .collect();
        c.blit_grey(x(2), y, &mean, s.w, s.h, SCALE);
        c.text(x(1) + 2, y + 2, &format!("N={}", s.probs.len()), WHITE, 1);
    }
    c.save(out)?;
    Ok((width, height))
}

/// Paper Fig. 5 (needs one prediction per rater slot); returns the PNG size.
pub fn personalised_figure(
    dir: &Path,
    out: &Path,
    max_slices: usize,
) -> Result<(u32, u32), FigureError> {
    let slices = pick(dir, max_slices)?;
    let r = slices
        .iter()
        .map(|s| s.raters.len().max(s.probs.len()))
        .max()
        .unwrap_or(0) as u32;
    let (pw, ph) = (slices[0].w * SCALE, slices[0].h * SCALE);
    let width = PAD + r * (pw + PAD);
    let height = TITLE_H + slices.len() as u32 * (ph + TITLE_H + PAD) + PAD;
    let mut c = Canvas::new(width, height, WHITE);
    c.text(
        PAD as i64,
        6,
        "prediction k (tint) vs rater k (white)",
        BLACK,
        1,
    );
    for (row, s) in slices.iter().enumerate() {
        let y = (TITLE_H + row as u32 * (ph + TITLE_H + PAD)) as i64;
        c.text(PAD as i64, y + 4, &s.name, BLACK, 1);
        let y = y + TITLE_H as i64;
        for k in 0..r as usize {
            let x = (PAD + k as u32 * (pw + PAD)) as i64;
            c.blit_grey(x, y, &s.image, s.w, s.h, SCALE);
            if let Some(p) = s.probs.get(k) {
                c.tint(
                    x,
                    y,
                    &binarise(p),
                    s.w,
                    s.h,
                    SCALE,
                    PALETTE[k % PALETTE.len()],
                    0.55,
                );
            }
            if let Some(Some(m)) = s.raters.get(k) {
                c.contour(x, y, m, s.w, s.h, SCALE, WHITE);
            }
            c.text(
                x + 2,
                y + 2,
                &format!("A{}", k + 1),
                PALETTE[k % PALETTE.len()],
                1,
            );
        }
    }
    c.save(out)?;
    Ok((width, height))
}

const PLOT_W: u32 = 300;
const PLOT_H: u32 = 170;

/// One series: x values and y values.
type Series = (Vec<f64>, Vec<f64>);

fn draw_plot(c: &mut Canvas, x0: i64, y0: i64, title: &str, xlabel: &str, s: &Series, colour: Rgb) {
    let (left, top, right, bottom) = (
        x0 + 8,
        y0 + 14,
        x0 + PLOT_W as i64 - 8,
        y0 + PLOT_H as i64 - 24,
    );
    c.text(x0 + 8, y0 + 2, title, BLACK, 1);
    c.fill_rect(
        left,
        top,
        (right - left) as u32,
        (bottom - top) as u32,
        [248, 248, 248],
    );
    c.rect(
        left,
        top,
        (right - left) as u32,
        (bottom - top) as u32,
        GREY,
    );
    let finite: Vec<(f64, f64)> =
        s.0.iter()
            .zip(&s.1)
            .filter(|(_, y)| y.is_finite())
            .map(|(x, y)| (*x, *y))
            .collect();
    if finite.is_empty() {
        return;
    }
    let (xmin, xmax) = finite
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (ymin, ymax) = finite
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let xs = if xmax > xmin { xmax - xmin } else { 1.0 };
    let ys = if ymax > ymin { ymax - ymin } else { 1.0 };
    let px = |x: f64| left + 2 + ((x - xmin) / xs * (right - left - 4) as f64).round() as i64;
    let py = |y: f64| bottom - 2 - ((y - ymin) / ys * (bottom - top - 4) as f64).round() as i64;
    for q in 1..4 {
        let gy = top + (bottom - top) * q / 4;
        c.line(left + 1, gy, right - 1, gy, LIGHT_GREY);
    }
    for w in finite.windows(2) {
        c.thick_line(px(w[0].0), py(w[0].1), px(w[1].0), py(w[1].1), 2, colour);
    }
    if finite.len() == 1 {
        c.fill_rect(px(finite[0].0) - 2, py(finite[0].1) - 2, 5, 5, colour);
    }
    c.text(
        right - Canvas::text_width(&format!("{ymax:.4}"), 1) as i64 - 2,
        top + 2,
        &format!("{ymax:.4}"),
        GREY,
        1,
    );
    c.text(
        right - Canvas::text_width(&format!("{ymin:.4}"), 1) as i64 - 2,
        bottom - 10,
        &format!("{ymin:.4}"),
        GREY,
        1,
    );
    c.text(left, bottom + 4, &format!("{xmin}"), BLACK, 1);
    let xm = format!("{xmax}");
    c.text(
        right - Canvas::text_width(&xm, 1) as i64,
        bottom + 4,
        &xm,
        BLACK,
        1,
    );
    let xl_w = Canvas::text_width(xlabel, 1) as i64;
    c.text((left + right) / 2 - xl_w / 2, bottom + 12, xlabel, GREY, 1);
}

/// Training curves of a run from `run_dir/train_log.parquet`; returns the PNG size.
pub fn training_curves(run_dir: &Path, out: &Path) -> Result<(u32, u32), FigureError> {
    let path = run_dir.join("train_log.parquet");
    let (records, _) = schemas::read_table::<TrainLogRecord>(&path)?;
    // (stage, kind, name) -> series; train terms vs step, val metrics vs epoch.
    let mut series: BTreeMap<(u8, String, String), Series> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.kind == "train" || r.kind == "val")
    {
        let e = series
            .entry((r.stage, r.kind.clone(), r.name.clone()))
            .or_default();
        e.0.push(if r.kind == "val" {
            r.epoch as f64
        } else {
            r.step as f64
        });
        e.1.push(r.value);
    }
    if series.is_empty() {
        return Err(FigureError::Empty(format!(
            "{}: no train or val rows to plot",
            path.display()
        )));
    }
    let cols = 3u32;
    let rows = (series.len() as u32).div_ceil(cols);
    let (width, height) = (cols * PLOT_W + 2 * PAD, rows * PLOT_H + TITLE_H + PAD);
    let mut c = Canvas::new(width, height, WHITE);
    let run = run_dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    c.text(PAD as i64, 6, &format!("training log: {run}"), BLACK, 1);
    for (i, ((stage, kind, name), s)) in series.iter().enumerate() {
        let (gx, gy) = (i as u32 % cols, i as u32 / cols);
        let x0 = (PAD + gx * PLOT_W) as i64;
        let y0 = (TITLE_H + gy * PLOT_H) as i64;
        let colour = if kind == "val" {
            PALETTE[2]
        } else {
            PALETTE[4]
        };
        let xlabel = if kind == "val" { "epoch" } else { "step" };
        draw_plot(
            &mut c,
            x0,
            y0,
            &format!("S{stage} {kind} {name}"),
            xlabel,
            s,
            colour,
        );
    }
    c.save(out)?;
    Ok((width, height))
}
