//! The figure of one `dpersona predict` case folder: the scan, each rater's personalised mask
//! (tinted over the scan) and the Stage-I uncertainty map, on the axial plane where the rater
//! masks cover the most voxels (ties: the highest summed uncertainty, then the lowest z).
//!
//! The scan is the case's first input file as `DIR/predict.json` lists it (resolved as given,
//! else against the folder above `DIR`), shown with its plane's min..max mapped to black..white;
//! the uncertainty (a variance, 0..0.25) is shown scaled to its plane's maximum, printed on
//! the panel.
use std::path::{Path, PathBuf};

use crate::figures::FigureError;
use crate::prediction_volumes::{read_mask_volume, read_volume, volume_shape};
use crate::raster::{Canvas, BLACK, PALETTE, TEXT_PX, WHITE};

const PAD: u32 = 8;
const TITLE_H: u32 = 20;

fn fail(msg: String) -> FigureError {
    FigureError::Empty(msg)
}

/// The case's first input file, from `predict.json` beside the case folder.
fn input_image(case_dir: &Path) -> Result<PathBuf, FigureError> {
    let root = case_dir.parent().unwrap_or(Path::new("."));
    let json = root.join("predict.json");
    let text = std::fs::read_to_string(&json).map_err(|e| {
        fail(format!(
            "{}: cannot read it ({e}); is {} a predict case folder?",
            json.display(),
            case_dir.display()
        ))
    })?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| fail(format!("{}: not JSON: {e}", json.display())))?;
    let case = case_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let first = doc["cases"][&case]["inputs"][0].as_str().ok_or_else(|| {
        fail(format!(
            "{}: lists no input for case `{case}`",
            json.display()
        ))
    })?;
    let p = PathBuf::from(first);
    if p.is_dir() {
        return Err(fail(format!(
            "case `{case}` was read from the DICOM folder {first}; the figure draws NIfTI cases"
        )));
    }
    if p.is_file() {
        return Ok(p);
    }
    let beside = root.parent().unwrap_or(Path::new(".")).join(&p);
    if beside.is_file() {
        return Ok(beside);
    }
    Err(fail(format!(
        "{}: the input `{first}` of case `{case}` is not found (run report from the folder predict ran in)",
        json.display()
    )))
}

/// Draws `case_dir` (a `dpersona predict` case folder) into `out`; returns the PNG size.
pub fn predict_case_figure(case_dir: &Path, out: &Path) -> Result<(u32, u32), FigureError> {
    let mut raters = Vec::new();
    while case_dir
        .join(format!("rater_{}.nii.gz", raters.len() + 1))
        .is_file()
    {
        raters.push(case_dir.join(format!("rater_{}.nii.gz", raters.len() + 1)));
    }
    let unc_path = case_dir.join("uncertainty.nii.gz");
    if raters.is_empty() && !unc_path.is_file() {
        return Err(fail(format!(
            "{}: no rater_K.nii.gz and no uncertainty.nii.gz (not a predict case folder)",
            case_dir.display()
        )));
    }
    let first = raters.first().unwrap_or(&unc_path);
    let [nx, ny, nz] = volume_shape(first)?;
    let masks = raters
        .iter()
        .map(|p| read_mask_volume(p, nz, ny, nx))
        .collect::<Result<Vec<_>, _>>()?;
    let unc = if unc_path.is_file() {
        Some(read_volume(&unc_path, nz, ny, nx)?)
    } else {
        None
    };
    let image = read_volume(&input_image(case_dir)?, nz, ny, nx)?;
    let hw = nx * ny;
    let score = |k: usize| {
        let area: usize = masks
            .iter()
            .map(|m| {
                m[k * hw..(k + 1) * hw]
                    .iter()
                    .map(|&v| v as usize)
                    .sum::<usize>()
            })
            .sum();
        let u: f64 = unc.as_ref().map_or(0.0, |u| {
            u[k * hw..(k + 1) * hw].iter().map(|&v| v as f64).sum()
        });
        (area, u)
    };
    let mut best = 0;
    for k in 1..nz {
        let (a, u) = score(k);
        let (ba, bu) = score(best);
        if a > ba || (a == ba && u > bu) {
            best = k;
        }
    }
    let plane = |v: &[f32]| v[best * hw..(best + 1) * hw].to_vec();
    let img = plane(&image);
    let (lo, hi) = img
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let grey: Vec<f32> = img
        .iter()
        .map(|&v| if hi > lo { (v - lo) / (hi - lo) } else { 0.0 })
        .collect();
    let scale = if nx.max(ny) <= 256 { 2 } else { 1 };
    let (w, h) = (nx as u32, ny as u32);
    let (pw, ph) = (w * scale, h * scale);
    let panels = 1 + masks.len() as u32 + u32::from(unc.is_some());
    let width = PAD + panels * (pw + PAD);
    let height = TITLE_H * 2 + ph + PAD;
    let mut c = Canvas::new(width, height, WHITE);
    let name = case_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    c.text(
        PAD as i64,
        3,
        &format!("{name} z{best}: scan | rater masks (Stage II) | uncertainty (Stage I variance)"),
        BLACK,
        TEXT_PX,
    );
    let x = |i: u32| (PAD + i * (pw + PAD)) as i64;
    let y = (TITLE_H * 2) as i64;
    c.blit_grey(x(0), y, &grey, w, h, scale);
    c.text(x(0), y - 17, "scan", BLACK, TEXT_PX);
    for (k, m) in masks.iter().enumerate() {
        let px = x(k as u32 + 1);
        c.blit_grey(px, y, &grey, w, h, scale);
        let colour = PALETTE[k % PALETTE.len()];
        c.tint(
            px,
            y,
            &m[best * hw..(best + 1) * hw],
            w,
            h,
            scale,
            colour,
            0.55,
        );
        c.text(px, y - 17, &format!("rater {}", k + 1), colour, TEXT_PX);
    }
    if let Some(u) = &unc {
        let u = plane(u);
        let max = u.iter().cloned().fold(0.0f32, f32::max);
        let shown: Vec<f32> = u
            .iter()
            .map(|&v| if max > 0.0 { v / max } else { 0.0 })
            .collect();
        let px = x(panels - 1);
        c.blit_grey(px, y, &shown, w, h, scale);
        c.text(
            px,
            y - 17,
            &format!("variance, max {max:.4}"),
            BLACK,
            TEXT_PX,
        );
    }
    c.save(out)?;
    Ok((width, height))
}
