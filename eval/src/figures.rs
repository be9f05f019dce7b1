//! Report figures as PNG, from a predictions folder and a run's training log:
//! - [`samples_figure`] (paper Fig. 4): per slice, the image with every rater's contour,
//!   the image with every predicted sample's contour in distinct colours, and the mean
//!   probability map;
//! - [`personalised_figure`] (paper Fig. 5): per slice and rater k, prediction k (filled,
//!   tinted) against rater k's mask (white contour);
//!
//! (The training curves are plots with axes: [`crate::curves`].)
//!
//! Both prediction figures draw PNG slice folders and NIfTI volume folders alike: a volume
//! is shown by one axial plane, where its raters drew the most (see `volume_planes`).
//! Text never covers an image panel: column headers sit in the figure's top strip, each
//! row's title in the strip above its panels (an id too long for the figure, such as a
//! DICOM UID, is shortened around an ellipsis), and the full row titles are written beside
//! the figure as `<figure>.captions.json`, so every pixel of a panel can be checked.
use std::path::Path;

use crate::prediction_volumes::{
    read_mask_volume, read_probability_volume, read_volume, volume_shape,
};
use crate::predictions::{
    list_slices, list_volumes, stored_files, PredictionFiles, SavedSlice, SavedVolume,
};
use crate::raster::{read_grey_png, Canvas, RasterError, BLACK, PALETTE, TEXT_PX, WHITE};
use crate::typeface;

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
    #[error("drawing a plot failed: {0}")]
    Plot(String),
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
    (PAD as i64, y - TITLE_H as i64 + 3)
}

/// The first of `options` that fits in `max_w` pixels (the last one otherwise): column
/// headers shrink to a short form over narrow panels instead of running into the next.
fn fitting<'a>(options: &[&'a str], max_w: u32) -> &'a str {
    options
        .iter()
        .find(|t| Canvas::text_width(t, TEXT_PX) <= max_w)
        .copied()
        .unwrap_or(options[options.len() - 1])
}

/// Writes the column headers (top strip) and each row's title, and the captions file
/// beside `out` with every row's full title. Titles longer than the figure's width are
/// shortened ([`typeface::shorten`]).
fn draw_titles(
    c: &mut Canvas,
    out: &Path,
    headers: &[(i64, &str)],
    rows: &[String],
    ph: u32,
) -> Result<(), FigureError> {
    for (x, h) in headers {
        c.text(*x, 3, h, BLACK, TEXT_PX);
    }
    let room = c.width.saturating_sub(2 * PAD);
    let mut captions = Vec::with_capacity(rows.len());
    for (row, full) in rows.iter().enumerate() {
        let mut shown = full.clone();
        let mut max = full.chars().count();
        while Canvas::text_width(&shown, TEXT_PX) > room && max > 8 {
            max -= 1;
            shown = typeface::shorten(full, max);
        }
        let (tx, ty) = row_title_origin(row, ph);
        c.text(tx, ty, &shown, BLACK, TEXT_PX);
        captions.push(serde_json::json!({"row": row, "title": shown, "full_title": full}));
    }
    let name = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = out.with_file_name(format!("{name}.captions.json"));
    let text = serde_json::to_vec_pretty(&captions).expect("captions serialise");
    schemas::atomic::write_file_atomic(&path, &text)
        .map_err(|e| FigureError::Raster(RasterError::Write(e)))
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
    let x0 = |k: usize| panel_origin(0, k, pw, ph).0;
    let headers = [
        (x0(0), fitting(&["raters (contours)", "raters"], pw)),
        (x0(1), fitting(&["samples (contours)", "samples"], pw)),
        (x0(2), fitting(&["mean probability", "mean"], pw)),
    ];
    let titles: Vec<String> = slices
        .iter()
        .map(|s| format!("{}   N = {}", s.name, s.probs.len()))
        .collect();
    draw_titles(&mut c, out, &headers, &titles, ph)?;
    for (row, s) in slices.iter().enumerate() {
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
    let labels: Vec<(String, String)> = (0..r as usize)
        .map(|k| {
            (
                format!("A{}: head (tint), rater (white)", k + 1),
                format!("A{}", k + 1),
            )
        })
        .collect();
    let headers: Vec<(i64, &str)> = labels
        .iter()
        .enumerate()
        .map(|(k, (long, short))| {
            (
                panel_origin(0, k, pw, ph).0,
                fitting(&[long.as_str(), short.as_str()], pw),
            )
        })
        .collect();
    let titles: Vec<String> = slices.iter().map(|s| s.name.clone()).collect();
    draw_titles(&mut c, out, &headers, &titles, ph)?;
    for (row, s) in slices.iter().enumerate() {
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
        }
    }
    c.save(out)?;
    Ok((width, height))
}
