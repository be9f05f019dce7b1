//! NIfTI volumes in the predictions folder, for VOLUME units (NIfTI manifests, or
//! `--unit volume`): `dpersona eval --save-predictions DIR` writes them and
//! `--predictions DIR` scores them, so volumes predicted by any tool (nibabel, SimpleITK,
//! the authors' scripts) land in the same metric frame; `dpersona report --predictions DIR`
//! draws them (one plane per target, see `crate::figures`).
//!
//! Layout (`predictions.json` has `"files": "nifti"` and `"unit": "volume"`):
//!
//! ```text
//! DIR/predictions.json
//! DIR/<study_id>/<target_id>/
//!     pred_01.nii.gz .. pred_NN.nii.gz   predicted probabilities, float32 in [0, 1];
//!                                        N >= 1, numbered 1..N without gaps
//!     rater_1.nii.gz .. rater_R.nii.gz   rater masks, uint8 0/1, scored slot order
//!                                        (present raters only; for viewers and
//!                                        figures, never scored)
//!     image.nii.gz                       image channel 0, float32 (for viewers and figures)
//! ```
//!
//! Every volume has NIfTI shape `(x, y, z) = (W, H, D)`: x runs along a crop row (columns),
//! y down the rows, and z plane k is the target's k-th slice in ascending `slice_index`
//! order, D being ALL the slices the manifest's shards hold for the target (the stacking
//! `dpersona eval --unit volume` scores).
//!
//! Why float32 probabilities rather than uint8 0/255: the volume keeps the exact maps, so
//! every metric scored from the folder (Dice_soft included) equals the in-memory one, and a
//! tool that saves binary 0/1 float or integer masks (as the authors' `TEST_SAVE` does) is
//! read as probabilities 0 and 1. Values outside [0, 1] (a 0/255 mask) or non-finite ones
//! are refused with the file named. Any NIfTI-1 datatype is read (scl_slope/scl_inter
//! applied); `.nii` is read as well as `.nii.gz`.
//!
//! Geometry: the manifest keeps no source affine (ingest resamples and crops), so the
//! volumes carry the shards' voxel size: pixdim `(col mm, row mm, slice step mm)` and a
//! diagonal sform = qform with that spacing, translated to the first slice's `z_mm`. Labels
//! always come from the shards; the reader checks only the shape.
use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array3, ShapeBuilder};
use nifti::{IntoNdArray, NiftiHeader, NiftiObject, NiftiVolume, ReaderOptions};
use schemas::manifest::Manifest;

use crate::prediction_error::{invalid, PredictionsError};
use crate::slice_positions::SlicePosition;

/// NIfTI `xyzt_units`: millimetres, seconds.
const UNITS_MM_SEC: u8 = 2 | 8;
/// NIfTI xform code "scanner anatomical".
const XFORM_SCANNER: i16 = 1;
/// File ending the writer uses.
pub const VOLUME_ENDING: &str = ".nii.gz";

/// Voxel geometry of one target's stacked slices, from the shards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VolumeGeometry {
    /// `(z step, row, column)` in mm; the step is that between the first two slices, 1 mm
    /// for a single-slice volume or a non-increasing `z_mm`.
    pub spacing_mm: [f64; 3],
    /// `z_mm` of plane 0.
    pub origin_z_mm: f64,
}

impl Default for VolumeGeometry {
    fn default() -> Self {
        VolumeGeometry {
            spacing_mm: [1.0; 3],
            origin_z_mm: 0.0,
        }
    }
}

/// One volume unit to save. Every map is `[D, H, W]` row-major (slices in ascending
/// `slice_index`, each `[H, W]` row-major): the flat layout the metrics score.
#[derive(Debug, Clone)]
pub struct VolumeToSave<'a> {
    pub study_id: &'a str,
    pub target_id: &'a str,
    pub depth: u32,
    pub height: u32,
    pub width: u32,
    pub geometry: VolumeGeometry,
    /// Image channel 0.
    pub image: &'a [f32],
    /// `[R]` rater masks in the slot order the metrics used (None = missing).
    pub raters: &'a [Option<&'a [u8]>],
    /// `[N]` predicted probabilities.
    pub probs: &'a [&'a [f32]],
}

/// A NIfTI-1 header for a `(W, H, D)` volume with the geometry's spacing.
fn header_for(g: &VolumeGeometry, description: &str) -> NiftiHeader {
    let [sz, sr, sc] = g.spacing_mm.map(|v| v as f32);
    let mut h = NiftiHeader {
        pixdim: [1.0, sc, sr, sz, 0.0, 0.0, 0.0, 0.0],
        xyzt_units: UNITS_MM_SEC,
        sform_code: XFORM_SCANNER,
        qform_code: XFORM_SCANNER,
        srow_x: [sc, 0.0, 0.0, 0.0],
        srow_y: [0.0, sr, 0.0, 0.0],
        srow_z: [0.0, 0.0, sz, g.origin_z_mm as f32],
        quatern_b: 0.0,
        quatern_c: 0.0,
        quatern_d: 0.0,
        quatern_x: 0.0,
        quatern_y: 0.0,
        quatern_z: g.origin_z_mm as f32,
        ..NiftiHeader::default()
    };
    // A description is cosmetic; one that does not fit is simply left out.
    let _ = h.set_description_str(description);
    h
}

/// Voxels of one volume file: float32 (probabilities, image) or uint8 (rater masks).
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeValues {
    F32(Vec<f32>),
    U8(Vec<u8>),
}

impl VolumeValues {
    pub fn len(&self) -> usize {
        match self {
            VolumeValues::F32(v) => v.len(),
            VolumeValues::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes `values` (`[D, H, W]` row-major, `D·H·W` of them) as a NIfTI-1 volume of shape
/// `(W, H, D)` with `g`'s spacing at `path` (not atomically: the caller writes a temporary
/// name and renames it into place).
pub fn write_volume_file(
    path: &Path,
    values: VolumeValues,
    (d, h, w): (usize, usize, usize),
    g: &VolumeGeometry,
) -> Result<(), PredictionsError> {
    if values.len() != d * h * w {
        return Err(invalid(
            path,
            format!(
                "has {} voxels, expected {d}x{h}x{w} = {}",
                values.len(),
                d * h * w
            ),
        ));
    }
    let header = header_for(g, "dpersona prediction");
    let writer = nifti::writer::WriterOptions::new(path);
    let writer = writer.reference_header(&header);
    // [D, H, W] row-major is [W, H, D] in Fortran order: NIfTI's (x, y, z).
    let written =
        match values {
            VolumeValues::F32(v) => writer
                .write_nifti(&Array3::from_shape_vec((w, h, d).f(), v).expect("length checked")),
            VolumeValues::U8(v) => writer
                .write_nifti(&Array3::from_shape_vec((w, h, d).f(), v).expect("length checked")),
        };
    written.map_err(|e| invalid(path, format!("writing NIfTI failed: {e}")))
}

/// The NIfTI shape `(x, y, z)` of a file's `dim`, trailing singleton dimensions dropped (a
/// 4D file with t = 1 is a volume) and missing ones padded with 1 (a 2D file is one plane).
fn shape_of(path: &Path, header: &NiftiHeader) -> Result<Vec<usize>, PredictionsError> {
    let dim = header
        .dim()
        .map_err(|e| invalid(path, format!("has an invalid dim field: {e}")))?;
    let mut shape: Vec<usize> = dim.iter().map(|&v| v as usize).collect();
    while shape.len() > 3 && shape.last() == Some(&1) {
        shape.pop();
    }
    while shape.len() < 3 {
        shape.push(1);
    }
    Ok(shape)
}

/// The NIfTI shape `(x, y, z) = (W, H, D)` of a volume, from its header alone (no voxel
/// data is decoded): how a reader that is not told the shape (the report's figures) learns it.
pub fn volume_shape(path: &Path) -> Result<[usize; 3], PredictionsError> {
    let header = NiftiHeader::from_file(path)
        .map_err(|e| invalid(path, format!("is not a readable NIfTI-1 file: {e}")))?;
    match shape_of(path, &header)?[..] {
        [x, y, z] => Ok([x, y, z]),
        ref other => Err(invalid(
            path,
            format!("has shape {other:?}: expected a 3D volume (x, y, z)"),
        )),
    }
}

/// Reads one volume of NIfTI shape `(W, H, D)` (any NIfTI-1 datatype, scl_slope/scl_inter
/// applied) as `[D, H, W]` row-major f32, refusing another shape. The one place the
/// `(x, y, z)` -> `[z][y][x]` axis order is decided; the probability, mask and image
/// readers all go through it.
pub fn read_volume(
    path: &Path,
    depth: usize,
    height: usize,
    width: usize,
) -> Result<Vec<f32>, PredictionsError> {
    let obj = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| invalid(path, format!("is not a readable NIfTI-1 file: {e}")))?;
    let shape = shape_of(path, obj.header())?;
    if shape != [width, height, depth] {
        return Err(invalid(
            path,
            format!(
                "has shape {shape:?} (x, y, z), expected ({width}, {height}, {depth}): x = crop \
                 width, y = crop height, z = the target's {depth} slices in the manifest"
            ),
        ));
    }
    // The nifti crate `expect`s the voxel bytes to be dims x datatype size and panicked on a
    // header whose bitpix disagrees with its datatype (found by fuzzing, nifti_volume).
    let t = obj.volume().data_type();
    let want = shape.iter().try_fold(t.size_of(), |n, &d| n.checked_mul(d));
    let got = obj.volume().raw_data().len();
    if want != Some(got) {
        return Err(invalid(
            path,
            format!("voxel data is {got} bytes, but shape {shape:?} of datatype {t:?} needs more or less (bitpix or dim inconsistent with the datatype)"),
        ));
    }
    let arr = obj
        .into_volume()
        .into_ndarray::<f32>()
        .map_err(|e| invalid(path, format!("voxel data cannot be read: {e}")))?;
    // Drops trailing singleton axes; indices (x, y, z) are kept in either order.
    let arr = arr
        .to_shape(((width, height, depth), ndarray::Order::ColumnMajor))
        .map_err(|e| invalid(path, format!("voxel data has an unexpected layout: {e}")))?;
    // Reversing the axes gives (z, y, x): its logical order is [D, H, W] row-major.
    Ok(arr.reversed_axes().iter().copied().collect())
}

/// Reads one probability volume of NIfTI shape `(W, H, D)` as `[D, H, W]` row-major,
/// refusing another shape, non-finite values and values outside [0, 1].
pub fn read_probability_volume(
    path: &Path,
    depth: usize,
    height: usize,
    width: usize,
) -> Result<Vec<f32>, PredictionsError> {
    let values = read_volume(path, depth, height, width)?;
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && (0.0..=1.0).contains(*v)))
    {
        let (z, y, x) = (i / (width * height), (i / width) % height, i % width);
        return Err(invalid(
            path,
            format!(
                "voxel (x={x}, y={y}, z={z}) is {v}: predictions must be probabilities in \
                 [0, 1] (a 0/255 mask must be divided by 255)"
            ),
        ));
    }
    Ok(values)
}

/// Reads one rater mask volume of NIfTI shape `(W, H, D)` as `[D, H, W]` row-major 0/1:
/// any non-zero voxel is foreground, as the writer stores `mask != 0` (so a 0/255 mask
/// from another tool reads the same).
pub fn read_mask_volume(
    path: &Path,
    depth: usize,
    height: usize,
    width: usize,
) -> Result<Vec<u8>, PredictionsError> {
    Ok(read_volume(path, depth, height, width)?
        .into_iter()
        .map(|v| (v != 0.0) as u8)
        .collect())
}

/// Voxel geometry of every (study, target) of `studies`, read from the manifest's shards
/// (only the id, z and spacing columns are decoded, see [`crate::slice_positions`]).
pub fn read_geometry(
    manifest: &Manifest,
    studies: &[String],
) -> Result<HashMap<(String, String), VolumeGeometry>, PredictionsError> {
    let planes = crate::slice_positions::read_slice_positions(manifest, studies)?;
    Ok(planes
        .into_iter()
        .map(|(key, p)| {
            let v: Vec<SlicePosition> = p.into_values().collect();
            let step = match v.get(1) {
                Some(next) if next.z_mm > v[0].z_mm => next.z_mm - v[0].z_mm,
                _ => 1.0,
            };
            let g = VolumeGeometry {
                spacing_mm: [step, v[0].spacing_row_mm, v[0].spacing_col_mm],
                origin_z_mm: v[0].z_mm,
            };
            (key, g)
        })
        .collect())
}
