//! [`NiftiFormat`]: the NPC-style NIfTI layout as a [`SourceFormat`].
//!
//! ```text
//! RAW/dataset.json                 see [`super::dataset_json`]
//! RAW/images/{CASE}_{XXXX}{ending} one file per channel, XXXX = channel index (0000, 0001, ...)
//! RAW/labels/{CASE}_{RATER}{ending} one file per rater; nonzero voxels are the rater's mask
//! ```
//!
//! Per case (= study = patient): every channel and label must have the same 3D shape and
//! affine; the channels are z-scored over the whole volume; each axial slice (row = y, col = x,
//! see [`super::slicing`]) is resampled (nearest, like the paper's NPC loader) or cropped to
//! `crop_size`; slices any rater marks are kept, plus a seeded share of unmarked ones.
//! A case is one target, `lesion` (the NPC GTVp): per-volume metrics rebuild the volume from
//! `slice_index`, `crop_row0/col0` and `source_height/width`.
//!
//! Entries that belong to no case (another ending, a name that fits no pattern, labels of a
//! case without images, a `numTraining` that disagrees) are [`SourceFormat::notices`],
//! found by [`super::layout`]: nothing in the raw folder is left out without a word.
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use schemas::manifest::SourceKind;
use schemas::slice::SliceRecord;
use serde::{Deserialize, Serialize};

use super::dataset_json::DatasetJson;
use super::layout::{count_notice, survey, Survey};
use super::slicing::{axial_slice, box_origin, centre_origin, crop, resample_nearest};
use super::volume::{read_volume, Volume};
use crate::study::{DatasetFacts, ImageValues, SourceFormat, StudyError, StudyInput, StudyOutput};

/// Target id of the single target of a case.
pub const TARGET_ID: &str = "lesion";
/// Largest difference (mm) between two files' affine entries still taken as "the same grid"
/// (affines are stored as float32).
pub const AFFINE_TOLERANCE_MM: f64 = 1e-3;

/// Where the crop window sits when slices are cropped rather than resampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CropMode {
    /// Centred on the slice grid.
    Centre,
    /// Centred on the in-plane bounding box of every rater's marks over the whole volume
    /// (one window per case, so the volume can be rebuilt); the grid centre when no mark.
    UnionBox,
}

/// Every parameter that changes the output (all of them go into the fingerprint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NiftiParams {
    /// Side of the square slices served, in pixels.
    pub crop_size: u32,
    /// Window position when `resample` is false.
    pub crop_mode: CropMode,
    /// Resample every slice to `crop_size` x `crop_size` (nearest neighbour, scipy
    /// `zoom(order=0)`), as the paper's NPC loader does; false = crop at native resolution.
    pub resample: bool,
    /// Share (0..=1) of slices no rater marks that are kept as negatives (rounded).
    pub empty_slice_share: f64,
    /// Seed of the choice of kept unmarked slices (mixed with the case id).
    pub empty_slice_seed: u64,
}

impl Default for NiftiParams {
    fn default() -> Self {
        NiftiParams {
            crop_size: 128,
            crop_mode: CropMode::Centre,
            resample: true,
            empty_slice_share: 0.1,
            empty_slice_seed: 0,
        }
    }
}

/// The NIfTI source format.
#[derive(Debug)]
pub struct NiftiFormat {
    params: NiftiParams,
    /// dataset.json of the raw folder, known after `discover`.
    dataset: RwLock<Option<DatasetJson>>,
    /// Entries of the raw folder that belong to no case (see [`super::layout`]), known
    /// after `discover`.
    notices: RwLock<Vec<StudyError>>,
}

impl NiftiFormat {
    pub fn new(params: NiftiParams) -> Self {
        NiftiFormat {
            params,
            dataset: RwLock::new(None),
            notices: RwLock::new(Vec::new()),
        }
    }

    pub fn params(&self) -> &NiftiParams {
        &self.params
    }

    fn dataset(&self) -> Option<DatasetJson> {
        self.dataset.read().expect("dataset lock").clone()
    }
}

/// Expected image file of channel `c` of `case`.
pub fn channel_file(raw: &Path, case: &str, c: usize, ending: &str) -> PathBuf {
    raw.join("images").join(format!("{case}_{c:04}{ending}"))
}

/// Expected label file of `rater` for `case`.
pub fn label_file(raw: &Path, case: &str, rater: &str, ending: &str) -> PathBuf {
    raw.join("labels").join(format!("{case}_{rater}{ending}"))
}

impl SourceFormat for NiftiFormat {
    fn discover(&self, raw: &Path) -> Result<Vec<StudyInput>, StudyError> {
        let ds_path = raw.join("dataset.json");
        let ds = DatasetJson::read(&ds_path)?;
        let Survey { cases, mut notices } = survey(raw, &ds)?;
        if cases.is_empty() {
            let images = raw.join("images");
            let mut reason = format!(
                "no image files named CASE_XXXX{} (XXXX = channel index)",
                ds.file_ending
            );
            if let Some(first) = notices.first() {
                reason.push_str(&format!(
                    "; {} other entr{} found, the first: {first}",
                    notices.len(),
                    if notices.len() == 1 { "y" } else { "ies" }
                ));
            }
            return Err(StudyError::new(&images, reason));
        }
        notices.extend(count_notice(&ds_path, &ds, cases.len()));
        let studies = cases
            .into_iter()
            .map(|case| {
                let mut files: Vec<PathBuf> = (0..ds.channels.len())
                    .map(|c| channel_file(raw, &case, c, &ds.file_ending))
                    .collect();
                files.extend(
                    ds.raters
                        .iter()
                        .map(|r| label_file(raw, &case, r, &ds.file_ending)),
                );
                StudyInput {
                    study_id: case.clone(),
                    patient_id: case.clone(),
                    source_path: format!("images/{case}"),
                    files,
                }
            })
            .collect();
        *self.dataset.write().expect("dataset lock") = Some(ds);
        *self.notices.write().expect("notices lock") = notices;
        Ok(studies)
    }

    fn load(&self, study: &StudyInput) -> Result<StudyOutput, StudyError> {
        let ds = self.dataset().ok_or_else(|| {
            StudyError::new(
                &study.source_path,
                "NiftiFormat::load called before discover",
            )
        })?;
        let (n_ch, n_r) = (ds.channels.len(), ds.raters.len());
        if study.files.len() != n_ch + n_r {
            return Err(StudyError::new(
                &study.source_path,
                format!(
                    "expected {n_ch} channel files and {n_r} label files, the study lists {}",
                    study.files.len()
                ),
            ));
        }
        for (i, f) in study.files.iter().enumerate() {
            if !f.is_file() {
                let what = if i < n_ch {
                    format!("missing channel file (channel {i}, `{}`)", ds.channels[i])
                } else {
                    format!("missing label file of rater `{}`", ds.raters[i - n_ch])
                };
                return Err(StudyError::new(f, what));
            }
        }
        let mut vols = Vec::with_capacity(study.files.len());
        for f in &study.files {
            let v = read_volume(f)?;
            check_volume(f, &v)?;
            if let Some((f0, v0)) = vols.first().map(|v0: &Volume| (&study.files[0], v0)) {
                check_same_grid(f, &v, f0, v0)?;
            }
            vols.push(v);
        }
        let labels: Vec<Volume> = vols.split_off(n_ch);
        slice_study(&self.params, study, &vols, &labels)
    }

    fn facts(&self) -> DatasetFacts {
        let ds = self.dataset();
        DatasetFacts {
            dataset: ds
                .as_ref()
                .map_or(super::dataset_json::DEFAULT_NAME.into(), |d| d.name.clone()),
            source_kind: SourceKind::Nifti,
            raters: ds.as_ref().map_or(vec![], |d| d.raters.clone()),
            rater_order: ds
                .as_ref()
                .map_or(schemas::manifest::RaterOrder::Identity, |d| d.rater_order),
            channels: ds.as_ref().map_or(vec![], |d| d.channels.clone()),
            crop_size: self.params.crop_size,
            normalisation:
                "per-volume z-score per channel: (v - mean) / std over every voxel of the volume \
                            (population std), after scl_slope/scl_inter; crop padding is 0"
                    .into(),
            params: serde_json::json!({
                "format": "nifti",
                "slice_axes": "row = y, col = x, slice = z (nibabel get_fdata()[:, :, k].T)",
                "target": TARGET_ID,
                "nifti": serde_json::to_value(&self.params).expect("NiftiParams serialise"),
            }),
            image_values: ImageValues::Continuous,
        }
    }

    fn notices(&self) -> Vec<StudyError> {
        self.notices.read().expect("notices lock").clone()
    }
}

/// 3D (or 4D with one frame) and every voxel finite.
pub fn check_volume(f: &Path, v: &Volume) -> Result<(), StudyError> {
    let extra: usize = v.dims.iter().skip(3).product();
    if v.dims.len() < 3 || extra != 1 {
        return Err(StudyError::new(
            f,
            format!("expected a 3D volume, got dimensions {:?}", v.dims),
        ));
    }
    if let Some(i) = v.data.iter().position(|x| !x.is_finite()) {
        let bad = v.data.iter().filter(|x| !x.is_finite()).count();
        let [nx, ny, _] = v.shape3();
        return Err(StudyError::new(
            f,
            format!(
                "{bad} voxels are NaN or infinite (first at voxel x={}, y={}, z={}: {})",
                i % nx,
                (i / nx) % ny,
                i / (nx * ny),
                v.data[i]
            ),
        ));
    }
    Ok(())
}

/// Same shape and (within [`AFFINE_TOLERANCE_MM`]) the same affine as the case's first file.
pub fn check_same_grid(f: &Path, v: &Volume, f0: &Path, v0: &Volume) -> Result<(), StudyError> {
    if v.shape3() != v0.shape3() {
        return Err(StudyError::new(
            f,
            format!(
                "shape {:?} differs from {:?} of {}",
                v.shape3(),
                v0.shape3(),
                f0.display()
            ),
        ));
    }
    let worst = (0..3)
        .flat_map(|i| (0..4).map(move |j| (i, j)))
        .map(|(i, j)| (v.affine[i][j] - v0.affine[i][j]).abs())
        .fold(0.0, f64::max);
    if worst > AFFINE_TOLERANCE_MM {
        return Err(StudyError::new(
            f,
            format!(
                "affine {:?} differs from {:?} of {} (by up to {worst:.4} mm)",
                v.affine,
                v0.affine,
                f0.display()
            ),
        ));
    }
    Ok(())
}

/// Mean and population standard deviation of every voxel.
fn mean_std(data: &[f64]) -> (f64, f64) {
    let n = data.len() as f64;
    let mean = data.iter().sum::<f64>() / n;
    let var = data.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Mean and population standard deviation of every channel (the z-score statistics), or
/// an error naming the channel's file when it is constant. Shared with `dpersona predict`,
/// which must normalise an unlabelled scan exactly as ingest normalised the training data.
pub fn channel_stats(images: &[Volume], files: &[PathBuf]) -> Result<Vec<(f64, f64)>, StudyError> {
    let mut stats = Vec::with_capacity(images.len());
    for (c, img) in images.iter().enumerate() {
        let (mean, std) = mean_std(&img.data);
        if std.is_nan() || std <= 0.0 || !std.is_finite() {
            return Err(StudyError::new(
                files.get(c).cloned().unwrap_or_default(),
                format!("channel is constant (every voxel {mean}): cannot z-score it"),
            ));
        }
        stats.push((mean, std));
    }
    Ok(stats)
}

/// How a case's axial slices (`rows x cols`) become the `size x size` images the model
/// sees: resampled (nearest, scipy `zoom(order=0)`) or cropped at native resolution with
/// the window's top-left pixel at (`row0`, `col0`), zero-padded outside the slice.
/// Ingest cuts training rows with it; `dpersona predict` cuts unlabelled scans with it and
/// maps the model's outputs back through its inverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceGrid {
    pub rows: usize,
    pub cols: usize,
    pub size: usize,
    pub resample: bool,
    /// Crop window origin (0, 0 when resampling).
    pub row0: i64,
    pub col0: i64,
}

impl SliceGrid {
    /// The grid of a case that has no labels (prediction): resampling, or the centred
    /// crop. `None` for [`CropMode::UnionBox`], whose window is placed on the raters'
    /// marks and so cannot be reproduced without them.
    pub fn without_labels(p: &NiftiParams, rows: usize, cols: usize) -> Option<Self> {
        let size = p.crop_size as usize;
        let (row0, col0) = match (p.resample, p.crop_mode) {
            (true, _) => (0, 0),
            (false, CropMode::Centre) => (centre_origin(rows, size), centre_origin(cols, size)),
            (false, CropMode::UnionBox) => return None,
        };
        Some(SliceGrid {
            rows,
            cols,
            size,
            resample: p.resample,
            row0,
            col0,
        })
    }

    /// One `[rows * cols]` slice on the model grid `[size * size]` (`fill` pads a crop).
    pub fn apply<T: Copy>(&self, img: &[T], fill: T) -> Vec<T> {
        if self.resample {
            resample_nearest(img, self.rows, self.cols, self.size)
        } else {
            crop(
                img, self.rows, self.cols, self.row0, self.col0, self.size, fill,
            )
        }
    }
}

/// The model input of axial plane `k`: every channel z-scored with `stats`, then put on
/// `grid`, as `[C * size * size]` f32 (crop padding 0, i.e. the channel mean).
pub fn model_image(
    images: &[Volume],
    stats: &[(f64, f64)],
    grid: &SliceGrid,
    k: usize,
) -> Vec<f32> {
    let mut image = Vec::with_capacity(images.len() * grid.size * grid.size);
    for (img, &(mean, std)) in images.iter().zip(stats) {
        let z: Vec<f64> = axial_slice(img, k)
            .iter()
            .map(|v| (v - mean) / std)
            .collect();
        image.extend(grid.apply(&z, 0.0).into_iter().map(|v| v as f32));
    }
    image
}

/// `slice_index` of axial plane `k` of a volume with `nz` planes and affine `a`: planes
/// ordered by world z, 0 = lowest (so an inverted z axis counts down).
pub fn slice_index(a: &[[f64; 4]; 3], nz: usize, k: usize) -> usize {
    if a[2][2] >= 0.0 {
        k
    } else {
        nz - 1 - k
    }
}

/// FNV-1a of the case id: mixes the case into the empty-slice seed, stable across runs.
fn case_hash(case: &str) -> u64 {
    case.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Cuts a checked case into slice rows (see the module doc).
fn slice_study(
    p: &NiftiParams,
    study: &StudyInput,
    images: &[Volume],
    labels: &[Volume],
) -> Result<StudyOutput, StudyError> {
    let size = p.crop_size as usize;
    let [nx, ny, nz] = images[0].shape3();
    let (rows, cols) = (ny, nx);
    let a = images[0].affine;
    // Per-slice masks, nonzero = marked: [rater][z][rows * cols].
    let masks: Vec<Vec<Vec<u8>>> = labels
        .iter()
        .map(|l| {
            (0..nz)
                .map(|k| {
                    axial_slice(l, k)
                        .iter()
                        .map(|&v| (v != 0.0) as u8)
                        .collect()
                })
                .collect()
        })
        .collect();
    let marked: Vec<bool> = (0..nz)
        .map(|k| masks.iter().any(|m| m[k].iter().any(|&v| v != 0)))
        .collect();
    let (src_h, src_w) = if p.resample {
        (size, size)
    } else {
        (rows, cols)
    };
    let volume_shape = [nz as u32, src_h as u32, src_w as u32];
    if !marked.iter().any(|&m| m) {
        return Ok(StudyOutput {
            slices: vec![],
            n_targets: 0,
            volume_shape,
        });
    }
    let stats = channel_stats(images, &study.files)?;
    // Crop window (native resolution only): one per case.
    let (row0, col0) = if p.resample {
        (0i64, 0i64)
    } else {
        match p.crop_mode {
            CropMode::Centre => (centre_origin(rows, size), centre_origin(cols, size)),
            CropMode::UnionBox => {
                let (mut rlo, mut rhi, mut clo, mut chi) = (usize::MAX, 0, usize::MAX, 0);
                for m in masks.iter().flatten() {
                    for (i, _) in m.iter().enumerate().filter(|(_, &v)| v != 0) {
                        let (r, c) = (i / cols, i % cols);
                        (rlo, rhi, clo, chi) = (rlo.min(r), rhi.max(r), clo.min(c), chi.max(c));
                    }
                }
                (
                    box_origin(rlo, rhi, rows, size),
                    box_origin(clo, chi, cols, size),
                )
            }
        }
    };
    let grid = SliceGrid {
        rows,
        cols,
        size,
        resample: p.resample,
        row0,
        col0,
    };
    // Which unmarked slices to keep.
    let mut empty: Vec<usize> = (0..nz).filter(|&k| !marked[k]).collect();
    let n_keep = (p.empty_slice_share.clamp(0.0, 1.0) * empty.len() as f64).round() as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(p.empty_slice_seed ^ case_hash(&study.study_id));
    empty.shuffle(&mut rng);
    let mut keep: Vec<usize> = (0..nz)
        .filter(|&k| marked[k])
        .chain(empty.into_iter().take(n_keep))
        .collect();
    let index_of = |k: usize| slice_index(&a, nz, k);
    keep.sort_by_key(|&k| index_of(k));
    // Spacing from the affine's columns (x = col, y = row); resampling stretches it.
    let norm = |j: usize| (0..3).map(|i| a[i][j] * a[i][j]).sum::<f64>().sqrt();
    let (mut sp_row, mut sp_col) = (norm(1), norm(0));
    if p.resample {
        sp_row *= (rows.max(2) - 1) as f64 / (size.max(2) - 1) as f64;
        sp_col *= (cols.max(2) - 1) as f64 / (size.max(2) - 1) as f64;
    }
    let source_files: Vec<String> = study
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let source_sha256 = study
        .files
        .iter()
        .map(|f| schemas::hashing::sha256_file(f).map_err(|e| StudyError::new(f, e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let (cx, cy) = ((nx as f64 - 1.0) / 2.0, (ny as f64 - 1.0) / 2.0);
    let slices = keep
        .into_iter()
        .map(|k| {
            let image = model_image(images, &stats, &grid, k);
            let mut m = Vec::with_capacity(masks.len() * size * size);
            for r in &masks {
                m.extend(grid.apply(&r[k], 0u8));
            }
            let mut rec = SliceRecord {
                study_id: study.study_id.clone(),
                patient_id: study.patient_id.clone(),
                target_id: TARGET_ID.into(),
                slice_index: index_of(k) as i32,
                z_mm: a[2][0] * cx + a[2][1] * cy + a[2][2] * k as f64 + a[2][3],
                height: size as u32,
                width: size as u32,
                channels: images.len() as u32,
                spacing_row_mm: sp_row,
                spacing_col_mm: sp_col,
                image,
                masks: m,
                raters_present: vec![true; labels.len()],
                rater_area: vec![],
                intersection: vec![],
                union: vec![],
                crop_row0: row0 as i32,
                crop_col0: col0 as i32,
                source_height: src_h as u32,
                source_width: src_w as u32,
                source_files: source_files.clone(),
                source_sha256: source_sha256.clone(),
            };
            rec.derive_consensus();
            rec
        })
        .collect();
    Ok(StudyOutput {
        slices,
        n_targets: 1,
        volume_shape,
    })
}
