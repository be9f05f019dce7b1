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
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ndarray::{Array3, ShapeBuilder};
use nifti::{IntoNdArray, NiftiHeader, NiftiObject, NiftiVolume, ReaderOptions};
use schemas::manifest::Manifest;
use schemas::parquet_io::open_checked;
use schemas::slice::{col, SCHEMA as SLICE_SCHEMA};

use crate::predictions::{PredictionWriter, PredictionsError};

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

/// The folder of one volume unit.
pub fn volume_dir(dir: &Path, study_id: &str, target_id: &str) -> PathBuf {
    dir.join(study_id).join(target_id)
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

impl PredictionWriter {
    /// Writes one volume unit's NIfTI files into `DIR/<study>/<target>/` (each file
    /// atomically, through a hidden `.partial-<pid>` folder beside it).
    pub fn write_volume(&self, v: &VolumeToSave<'_>) -> Result<PathBuf, PredictionsError> {
        crate::predictions::check_component(self.dir(), "study id", v.study_id)?;
        crate::predictions::check_component(self.dir(), "target id", v.target_id)?;
        let (d, h, w) = (v.depth as usize, v.height as usize, v.width as usize);
        let voxels = d * h * w;
        let folder = volume_dir(self.dir(), v.study_id, v.target_id);
        let tmp_dir = folder.join(format!(".partial-{}", std::process::id()));
        std::fs::create_dir_all(&tmp_dir).map_err(|source| PredictionsError::Io {
            path: tmp_dir.clone(),
            source,
        })?;
        let header = header_for(&v.geometry, "dpersona prediction");
        let check = |name: &str, len: usize| {
            if len == voxels {
                Ok(())
            } else {
                Err(crate::predictions::invalid(
                    &folder.join(name),
                    format!("has {len} voxels, expected {d}x{h}x{w} = {voxels}"),
                ))
            }
        };
        macro_rules! put {
            ($name:expr, $values:expr) => {{
                let name: String = $name;
                let values = $values;
                check(&name, values.len())?;
                // [D, H, W] row-major is [W, H, D] in Fortran order: NIfTI's (x, y, z).
                let arr =
                    Array3::from_shape_vec((w, h, d).f(), values).expect("length checked above");
                let tmp = tmp_dir.join(&name);
                nifti::writer::WriterOptions::new(&tmp)
                    .reference_header(&header)
                    .write_nifti(&arr)
                    .map_err(|e| {
                        crate::predictions::invalid(&tmp, format!("writing NIfTI failed: {e}"))
                    })?;
                schemas::atomic::commit_temp(&tmp, &folder.join(&name))?;
            }};
        }
        put!(format!("image{VOLUME_ENDING}"), v.image.to_vec());
        for (k, m) in v.raters.iter().enumerate() {
            if let Some(m) = m {
                put!(
                    format!("rater_{}{VOLUME_ENDING}", k + 1),
                    m.iter().map(|&x| (x != 0) as u8).collect::<Vec<u8>>()
                );
            }
        }
        for (j, p) in v.probs.iter().enumerate() {
            put!(format!("pred_{:02}{VOLUME_ENDING}", j + 1), p.to_vec());
        }
        let _ = std::fs::remove_dir(&tmp_dir);
        Ok(folder)
    }
}

/// One volume folder found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedVolume {
    pub study_id: String,
    pub target_id: String,
    pub dir: PathBuf,
    /// `pred_01.nii[.gz] ..` in order.
    pub preds: Vec<PathBuf>,
    /// `[R]` `rater_k.nii[.gz]` where present, R being the highest k found (a missing
    /// rater has no file).
    pub raters: Vec<Option<PathBuf>>,
    /// `image.nii[.gz]`, when saved.
    pub image: Option<PathBuf>,
}

/// The number `k` of `<prefix><k>.nii` / `<prefix><k>.nii.gz`, if the name has that form.
fn numbered(name: &str, prefix: &str) -> Option<Result<usize, ()>> {
    let rest = name.strip_prefix(prefix)?;
    let k = rest
        .strip_suffix(".nii.gz")
        .or_else(|| rest.strip_suffix(".nii"))?;
    Some(k.parse().map_err(|_| ()))
}

/// Walks the folder: every `study/target/` holding `pred_*.nii[.gz]`, sorted by
/// (study, target).
pub fn list_volumes(dir: &Path) -> Result<Vec<SavedVolume>, PredictionsError> {
    use crate::predictions::{invalid, list_dir};
    let mut out = Vec::new();
    for (study, sp) in list_dir(dir)? {
        if !sp.is_dir() {
            continue;
        }
        for (target, tp) in list_dir(&sp)? {
            if !tp.is_dir() {
                continue;
            }
            let mut preds = Vec::new();
            let mut raters: Vec<Option<PathBuf>> = Vec::new();
            let mut image = None;
            for (name, p) in list_dir(&tp)? {
                match numbered(&name, "pred_") {
                    None => {}
                    Some(Ok(k)) => preds.push((k, p.clone())),
                    Some(Err(())) => {
                        return Err(invalid(&p, "expected pred_<number>.nii.gz (or .nii)"))
                    }
                }
                match numbered(&name, "rater_") {
                    None => {}
                    Some(Ok(k)) if k >= 1 => {
                        crate::predictions::check_rater_number(&p, k)?;
                        if raters.len() < k {
                            raters.resize(k, None);
                        }
                        if raters[k - 1].is_some() {
                            return Err(invalid(
                                &p,
                                format!("rater {k} exists as both .nii and .nii.gz"),
                            ));
                        }
                        raters[k - 1] = Some(p.clone());
                    }
                    Some(_) => {
                        return Err(invalid(
                            &p,
                            "expected rater_<number from 1>.nii.gz (or .nii)",
                        ))
                    }
                }
                if name == "image.nii.gz" || name == "image.nii" {
                    if image.is_some() {
                        return Err(invalid(&p, "the image exists as both .nii and .nii.gz"));
                    }
                    image = Some(p);
                }
            }
            if preds.is_empty() {
                continue;
            }
            preds.sort();
            if let Some(w) = preds.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(invalid(
                    &w[1].1,
                    format!("prediction {} exists as both .nii and .nii.gz", w[1].0),
                ));
            }
            if preds.iter().enumerate().any(|(i, (k, _))| *k != i + 1) {
                return Err(invalid(
                    &tp,
                    "prediction files must be numbered pred_01 .. pred_NN without gaps",
                ));
            }
            out.push(SavedVolume {
                study_id: study.clone(),
                target_id: target.clone(),
                dir: tp.clone(),
                preds: preds.into_iter().map(|(_, p)| p).collect(),
                raters,
                image,
            });
        }
    }
    Ok(out)
}

/// The NIfTI shape `(x, y, z)` of a file's `dim`, trailing singleton dimensions dropped (a
/// 4D file with t = 1 is a volume) and missing ones padded with 1 (a 2D file is one plane).
fn shape_of(path: &Path, header: &NiftiHeader) -> Result<Vec<usize>, PredictionsError> {
    let dim = header
        .dim()
        .map_err(|e| crate::predictions::invalid(path, format!("has an invalid dim field: {e}")))?;
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
    let header = NiftiHeader::from_file(path).map_err(|e| {
        crate::predictions::invalid(path, format!("is not a readable NIfTI-1 file: {e}"))
    })?;
    match shape_of(path, &header)?[..] {
        [x, y, z] => Ok([x, y, z]),
        ref other => Err(crate::predictions::invalid(
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
    use crate::predictions::invalid;
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
        return Err(crate::predictions::invalid(
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
/// (only the id, z and spacing columns are decoded).
pub fn read_geometry(
    manifest: &Manifest,
    studies: &[String],
) -> Result<HashMap<(String, String), VolumeGeometry>, PredictionsError> {
    use crate::predictions::invalid;
    use arrow::array::{Array, Float64Array, Int32Array, StringArray};
    let by_id: HashMap<&str, &str> = manifest
        .studies
        .iter()
        .map(|s| (s.study_id.as_str(), s.shard.as_str()))
        .collect();
    let mut shards: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in studies {
        let shard = by_id.get(s.as_str()).ok_or_else(|| {
            invalid(
                &manifest.path,
                format!("study `{s}` is not in the manifest"),
            )
        })?;
        shards.entry(shard).or_default().push(s);
    }
    // (study, target) -> slice_index -> (z, row, col)
    let mut planes: HashMap<(String, String), BTreeMap<i32, [f64; 3]>> = HashMap::new();
    for (shard, ids) in shards {
        let path = manifest.resolve(shard);
        let file = open_checked(&path, &SLICE_SCHEMA)?;
        let names = [
            col::STUDY_ID,
            col::TARGET_ID,
            col::SLICE_INDEX,
            col::Z_MM,
            col::SPACING_ROW_MM,
            col::SPACING_COL_MM,
        ];
        let fields = file.builder.parquet_schema().root_schema().get_fields();
        let roots: Vec<usize> = names
            .iter()
            .map(|n| {
                fields
                    .iter()
                    .position(|f| f.name() == *n)
                    .ok_or_else(|| invalid(&path, format!("has no column `{n}`")))
            })
            .collect::<Result<_, _>>()?;
        let mask =
            parquet::arrow::ProjectionMask::roots(file.builder.parquet_schema(), roots.clone());
        let reader = file
            .builder
            .with_projection(mask)
            .build()
            .map_err(|e| invalid(&path, format!("cannot be read: {e}")))?;
        for batch in reader {
            let batch = batch.map_err(|e| invalid(&path, format!("cannot be read: {e}")))?;
            let column = |n: &str| {
                batch
                    .column_by_name(n)
                    .ok_or_else(|| invalid(&path, format!("has no column `{n}`")))
            };
            let typed = |n: &'static str| invalid(&path, format!("column `{n}` has another type"));
            let study = column(col::STUDY_ID)?;
            let study = study
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| typed(col::STUDY_ID))?;
            let target = column(col::TARGET_ID)?;
            let target = target
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| typed(col::TARGET_ID))?;
            let slice = column(col::SLICE_INDEX)?;
            let slice = slice
                .as_any()
                .downcast_ref::<Int32Array>()
                .ok_or_else(|| typed(col::SLICE_INDEX))?;
            let f64col = |n: &'static str| -> Result<Float64Array, PredictionsError> {
                column(n)?
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .cloned()
                    .ok_or_else(|| typed(n))
            };
            let (z, row, colm) = (
                f64col(col::Z_MM)?,
                f64col(col::SPACING_ROW_MM)?,
                f64col(col::SPACING_COL_MM)?,
            );
            for i in 0..batch.num_rows() {
                if !ids.contains(&study.value(i)) {
                    continue;
                }
                planes
                    .entry((study.value(i).to_string(), target.value(i).to_string()))
                    .or_default()
                    .insert(slice.value(i), [z.value(i), row.value(i), colm.value(i)]);
            }
        }
    }
    Ok(planes
        .into_iter()
        .map(|(key, p)| {
            let v: Vec<[f64; 3]> = p.into_values().collect();
            let step = match v.get(1) {
                Some(next) if next[0] > v[0][0] => next[0] - v[0][0],
                _ => 1.0,
            };
            let g = VolumeGeometry {
                spacing_mm: [step, v[0][1], v[0][2]],
                origin_z_mm: v[0][0],
            };
            (key, g)
        })
        .collect())
}
