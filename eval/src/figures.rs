//! Report figures as PNG, from a predictions folder and a run's training log:
//! - [`samples_figure`] (paper Fig. 4): per slice, the image with every rater's contour,
//!   the image with every predicted sample's contour in distinct colours, and the mean
//!   probability map;
//! - [`personalised_figure`] (paper Fig. 5): per slice and rater k, prediction k (filled,
//!   tinted) against rater k's mask (white contour);
//! - [`training_curves`]: every loss term and validation metric of `RUN/train_log.parquet`
//!   against step (train) or epoch (val), one small plot each.
//!
//! Both prediction figures draw PNG slice folders and NIfTI volume folders alike: a volume
//! is shown by one axial plane, where its raters drew the most (see `volume_planes`).
use std::collections::BTreeMap;
use std::path::Path;

use schemas::train_log::TrainLogRecord;

use crate::prediction_volumes::{
    read_mask_volume, read_probability_volume, read_volume, volume_shape,
};
use crate::predictions::{
    list_slices, list_volumes, stored_files, PredictionFiles, SavedSlice, SavedVolume,
};
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
pub const SCALE: u32 = 2;
/// Gap between panels and around the figure, in pixels.
const PAD: u32 = 8;
/// Height of the figure title and of each row title, in pixels.
const TITLE_H: u32 = 20;

/// Top-left canvas pixel of panel `panel` (0-based, left to right) in row `row` of a
/// samples or personalised figure whose panels are `pw` x `ph` canvas pixels (the crop
/// times [`SCALE`]). Public so that tests can find a panel's pixels without copying the
/// layout.
pub fn panel_origin(row: usize, panel: usize, pw: u32, ph: u32) -> (i64, i64) {
    let x = PAD + panel as u32 * (pw + PAD);
    let y = TITLE_H + row as u32 * (ph + TITLE_H + PAD) + TITLE_H;
    (x as i64, y as i64)
}

/// Canvas pixel of the row title's top-left corner in row `row` (see [`panel_origin`]).
fn row_title_origin(row: usize, ph: u32) -> (i64, i64) {
    let (_, y) = panel_origin(row, 0, 0, ph);
    (PAD as i64, y - TITLE_H as i64 + 4)
}

/// One row of a prediction figure: a PNG slice, or a volume's chosen plane. Every map is
/// `[h, w]` row-major.
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

/// Foreground pixels over every present rater of one plane (what "raters drew the most"
/// ranks by).
fn rater_area(raters: &[Option<Vec<u8>>]) -> usize {
    raters
        .iter()
        .flatten()
        .map(|m| m.iter().map(|&v| v as usize).sum::<usize>())
        .sum()
}

/// Picks up to `max` slices (or volume planes), preferring those where raters drew the most
/// (most to see); ties keep folder order.
fn pick(dir: &Path, max: usize) -> Result<Vec<LoadedSlice>, FigureError> {
    if stored_files(dir)? == PredictionFiles::Nifti {
        return volume_planes(dir, max);
    }
    let slices = list_slices(dir)?;
    if slices.is_empty() {
        return Err(FigureError::Empty(format!(
            "{}: no predictions to draw",
            dir.display()
        )));
    }
    let mut loaded = slices.iter().map(load).collect::<Result<Vec<_>, _>>()?;
    loaded.sort_by_key(|l| std::cmp::Reverse(rater_area(&l.raters)));
    loaded.truncate(max);
    Ok(loaded)
}

/// The `[h, w]` plane `z` of a `[D, H, W]` row-major volume.
fn plane<T: Copy>(volume: &[T], z: usize, h: usize, w: usize) -> Vec<T> {
    volume[z * h * w..(z + 1) * h * w].to_vec()
}

/// Min-max scales an image plane to [0, 1] for display, as the PNG writer scales a slice's
/// image (a flat plane becomes 0).
fn display_scaled(image: &[f32]) -> Vec<f32> {
    let (lo, hi) = image
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    image.iter().map(|&v| (v - lo) / span).collect()
}

/// One target volume's chosen plane, before its predictions are read.
struct ChosenPlane<'a> {
    volume: &'a SavedVolume,
    /// NIfTI shape `(W, H, D)`.
    shape: [usize; 3],
    z: usize,
    /// `[R]` rater masks of plane `z`, `[H, W]` (None = missing rater).
    raters: Vec<Option<Vec<u8>>>,
}

/// The planes to draw from a NIfTI volume folder (`DIR/<study>/<target>/*.nii.gz`, shape
/// `(W, H, D)`), up to `max`, as `[H, W]` row-major slices.
///
/// Each target volume is shown by ONE axial plane: the z where the present raters drew the
/// most (sum over raters of their mask area in that plane; ties -> the lowest z), so the
/// row shows the lesion at its largest rather than an empty end slice. Rows are then ranked
/// across targets by that area, as PNG slices are. The shape comes from `pred_01`'s header
/// and every other file of the target must match it. Only the rater masks of every target
/// are read in full; predictions and the image are read for the `max` chosen targets only.
/// The row title is `<study>/<target> z<k>` (k = plane index, 0-based, = the target's k-th
/// slice in ascending `slice_index`).
fn volume_planes(dir: &Path, max: usize) -> Result<Vec<LoadedSlice>, FigureError> {
    let volumes = list_volumes(dir)?;
    if volumes.is_empty() {
        return Err(FigureError::Empty(format!(
            "{}: no pred_01.nii.gz (or .nii) volumes to draw",
            dir.display()
        )));
    }
    let mut chosen = Vec::with_capacity(volumes.len());
    for v in &volumes {
        let [w, h, d] = volume_shape(&v.preds[0])?;
        let masks = v
            .raters
            .iter()
            .map(|r| r.as_ref().map(|p| read_mask_volume(p, d, h, w)).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let hw = h * w;
        let area = |z: usize| -> usize {
            masks
                .iter()
                .flatten()
                .map(|m| {
                    m[z * hw..(z + 1) * hw]
                        .iter()
                        .map(|&v| v as usize)
                        .sum::<usize>()
                })
                .sum()
        };
        // max_by_key keeps the LAST maximum; keying on Reverse(z) as well makes it the lowest z.
        let z = (0..d)
            .max_by_key(|&z| (area(z), std::cmp::Reverse(z)))
            .unwrap_or(0);
        chosen.push(ChosenPlane {
            volume: v,
            shape: [w, h, d],
            z,
            raters: masks
                .iter()
                .map(|m| m.as_ref().map(|m| plane(m, z, h, w)))
                .collect(),
        });
    }
    chosen.sort_by_key(|c| std::cmp::Reverse(rater_area(&c.raters)));
    chosen.truncate(max);
    chosen
        .into_iter()
        .map(|c| {
            let [w, h, d] = c.shape;
            let probs = c
                .volume
                .preds
                .iter()
                .map(|p| Ok(plane(&read_probability_volume(p, d, h, w)?, c.z, h, w)))
                .collect::<Result<Vec<_>, FigureError>>()?;
            let image = match &c.volume.image {
                Some(p) => display_scaled(&plane(&read_volume(p, d, h, w)?, c.z, h, w)),
                None => vec![0.0; h * w],
            };
            Ok(LoadedSlice {
                w: w as u32,
                h: h as u32,
                image,
                raters: c.raters,
                probs,
                name: format!("{}/{} z{}", c.volume.study_id, c.volume.target_id, c.z),
            })
        })
        .collect()
}

/// Whether the folder holds one prediction per rater slot in every unit (slots seen in any
/// unit: a missing rater has no file), i.e. whether [`personalised_figure`] applies.
pub fn one_prediction_per_rater(dir: &Path) -> Result<bool, FigureError> {
    let counts: Vec<(usize, usize)> = if stored_files(dir)? == PredictionFiles::Nifti {
        list_volumes(dir)?
            .iter()
            .map(|v| (v.raters.len(), v.preds.len()))
            .collect()
    } else {
        list_slices(dir)?
            .iter()
            .map(|s| (s.raters.len(), s.preds.len()))
            .collect()
    };
    let slots = counts.iter().map(|c| c.0).max().unwrap_or(0);
    Ok(slots > 0 && counts.iter().all(|c| c.1 == slots))
}

/// Canvas size of one panel: the largest crop times [`SCALE`], so that rows of different
/// crop sizes (volumes of several targets) never overlap.
fn panel_size(slices: &[LoadedSlice]) -> (u32, u32) {
    let w = slices.iter().map(|s| s.w).max().unwrap_or(0);
    let h = slices.iter().map(|s| s.h).max().unwrap_or(0);
    (w * SCALE, h * SCALE)
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
    let (pw, ph) = panel_size(&slices);
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
        let (tx, ty) = row_title_origin(row, ph);
        c.text(tx, ty, &s.name, BLACK, 1);
        let (_, y) = panel_origin(row, 0, pw, ph);
        let x = |k: u32| panel_origin(row, k as usize, pw, ph).0;
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
    let (pw, ph) = panel_size(&slices);
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
        let (tx, ty) = row_title_origin(row, ph);
        c.text(tx, ty, &s.name, BLACK, 1);
        for k in 0..r as usize {
            let (x, y) = panel_origin(row, k, pw, ph);
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
