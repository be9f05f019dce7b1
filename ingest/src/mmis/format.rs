//! [`MmisFormat`]: MMIS-2024 Task 1 (NPC GTVp, four raters) as a [`SourceFormat`].
//!
//! One case = one study = one patient (`Sample_<n>`). Every axial slice k of the case is a
//! row (the authors train on every 2D slice and score whole volumes): the channels `t1`,
//! `t1c`, `t2` stacked in that order and the masks `label_a1`..`label_a4` in rater order,
//! each slice resampled to `crop_size` x `crop_size` by nearest neighbour exactly as scipy
//! `ndimage.zoom(order=0)` (the authors' train and test transforms), image values as
//! stored unless `--normalize zscore`. Row = axis 1 (H), column = axis 2 (W) of the stored
//! D x H x W arrays, so a row's image is numpy's `zoom(vol[k], ...)`.
//!
//! Splits come from the release's folders ([`super::layout`]), not from a seeded draw.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use schemas::manifest::{RaterOrder, SourceKind};
use schemas::slice::SliceRecord;
use serde::{Deserialize, Serialize};

use super::h5::H5File;
use super::layout::{self, Case, FileKind};
use crate::nifti::slicing::resample_nearest;
use crate::study::{
    DatasetFacts, ImageValues, PresetSplit, SourceFormat, StudyError, StudyInput, StudyOutput,
};

/// Target id of the single target of a case (the GTVp).
pub const TARGET_ID: &str = "lesion";
/// Image keys, stacked as channels in this order (the authors' order).
pub const CHANNELS: [&str; 3] = ["t1", "t1c", "t2"];
/// Label keys, one per rater, in the release's (identity) order.
pub const LABELS: [&str; 4] = ["label_a1", "label_a2", "label_a3", "label_a4"];
/// Rater names in the manifest.
pub const RATERS: [&str; 4] = ["a1", "a2", "a3", "a4"];
/// Voxel spacing key: (z, y, x) in mm.
pub const SPACING: &str = "voxel_spacing";

/// Image normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Values as stored (as float32), as the authors' loader does.
    None,
    /// Per case and channel over the whole volume: (v - mean) / std (population std).
    Zscore,
}

/// Every parameter that changes the output (all go into the fingerprint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MmisParams {
    /// Side of the square slices, in pixels (the authors': 128).
    pub crop_size: u32,
    pub normalize: Normalize,
    /// Inclusive range of training sample numbers moved into `val` (ProSeg moves 80..=99).
    pub val_from_training: Option<(u64, u64)>,
}

impl Default for MmisParams {
    fn default() -> Self {
        MmisParams {
            crop_size: 128,
            normalize: Normalize::None,
            val_from_training: None,
        }
    }
}

/// `--val-from-training`'s `A..B` (inclusive, A <= B; `A..=B` is read the same) as (A, B).
pub fn parse_sample_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("expected A..B (for example 80..99), got `{s}`"))?;
    let num = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("`{t}` in `{s}` is not a sample number"))
    };
    let (a, b) = (num(a)?, num(b.strip_prefix('=').unwrap_or(b))?);
    if a > b {
        return Err(format!("the range {a}..{b} is empty (A must not exceed B)"));
    }
    Ok((a, b))
}

/// What `discover` learned, for `preset_split` and `notices`.
#[derive(Debug, Default)]
struct Found {
    by_study: BTreeMap<String, (u32, String)>,
    notices: Vec<StudyError>,
}

/// The MMIS-2024 Task 1 source format.
#[derive(Debug)]
pub struct MmisFormat {
    params: MmisParams,
    found: RwLock<Found>,
}

impl MmisFormat {
    pub fn new(params: MmisParams) -> Self {
        MmisFormat {
            params,
            found: RwLock::new(Found::default()),
        }
    }

    pub fn params(&self) -> &MmisParams {
        &self.params
    }

    /// `train`, `val` or `test` of a case: its folder's split, or `val` for training
    /// samples in `--val-from-training`.
    fn split_of(&self, c: &Case) -> String {
        let (_, split) = layout::FOLDERS
            .iter()
            .find(|(f, _)| *f == c.folder)
            .expect("a release folder");
        match self.params.val_from_training {
            Some((a, b)) if c.folder == "training" && (a..=b).contains(&c.sample) => "val".into(),
            _ => split.to_string(),
        }
    }

    fn protocol(&self) -> String {
        match self.params.val_from_training {
            Some((a, b)) => format!("mmis-folders-val{a}..{b}"),
            None => "mmis-folders".into(),
        }
    }
}

impl SourceFormat for MmisFormat {
    fn discover(&self, raw: &Path) -> Result<Vec<StudyInput>, StudyError> {
        let (cases, mut notices) = layout::scan(raw)?;
        // `Sample_<n>` unless the same n is in two folders: then `<folder>_Sample_<n>`.
        let mut folders_of: BTreeMap<u64, usize> = BTreeMap::new();
        for (_, n) in cases.keys() {
            *folders_of.entry(*n).or_default() += 1;
        }
        if let Some((a, b)) = self.params.val_from_training {
            if !cases
                .keys()
                .any(|(f, n)| f == "training" && (a..=b).contains(n))
            {
                notices.push(StudyError::new(
                    raw.join("training"),
                    format!("--val-from-training {a}..{b}: no training sample in that range"),
                ));
            }
        }
        let mut by_study = BTreeMap::new();
        let mut studies = Vec::with_capacity(cases.len());
        for c in cases.values() {
            let study_id = if folders_of[&c.sample] > 1 {
                format!("{}_Sample_{}", c.folder, c.sample)
            } else {
                format!("Sample_{}", c.sample)
            };
            let mut files: Vec<PathBuf> = c.volume.iter().cloned().collect();
            files.extend(c.slices.values().cloned());
            let source_path = match (&c.volume, c.slices.is_empty()) {
                (Some(_), true) => format!("{}/Sample_{}.h5", c.folder, c.sample),
                (None, false) => format!("{}_2d/Sample_{}_slice_*.h5", c.folder, c.sample),
                _ => format!(
                    "{0}/Sample_{1}.h5 + {0}_2d/Sample_{1}_slice_*.h5",
                    c.folder, c.sample
                ),
            };
            by_study.insert(study_id.clone(), (0, self.split_of(c)));
            studies.push(StudyInput {
                patient_id: study_id.clone(),
                study_id,
                source_path,
                files,
            });
        }
        *self.found.write().expect("found lock") = Found { by_study, notices };
        Ok(studies)
    }

    fn load(&self, study: &StudyInput) -> Result<StudyOutput, StudyError> {
        let first = study
            .files
            .first()
            .ok_or_else(|| StudyError::new(&study.source_path, "the study lists no file"))?;
        let kinds: Vec<Option<FileKind>> = study
            .files
            .iter()
            .map(|f| layout::file_kind(&f.file_name().unwrap_or_default().to_string_lossy()))
            .collect();
        let n_volumes = kinds
            .iter()
            .filter(|k| matches!(k, Some(FileKind::Volume { .. })))
            .count();
        let case = if n_volumes == study.files.len() && n_volumes == 1 {
            read_volume_file(first)?
        } else if n_volumes == 0 && kinds.iter().all(Option::is_some) {
            read_slice_files(study, &kinds)?
        } else {
            return Err(StudyError::new(
                first,
                format!(
                    "the case is both a 3D file and {} 2D slice files ({}): keep one layout",
                    study.files.len() - n_volumes,
                    study.source_path
                ),
            ));
        };
        slice_case(&self.params, study, case)
    }

    fn facts(&self) -> DatasetFacts {
        DatasetFacts {
            dataset: "mmis2024-npc".into(),
            source_kind: SourceKind::Mmis,
            raters: RATERS.iter().map(|r| r.to_string()).collect(),
            rater_order: RaterOrder::Identity,
            channels: CHANNELS.iter().map(|c| c.to_string()).collect(),
            crop_size: self.params.crop_size,
            normalisation: match self.params.normalize {
                Normalize::None => "none: values as stored in the h5 (as float32), as the authors' loader",
                Normalize::Zscore => "per-case z-score per channel: (v - mean) / std over every voxel of the volume (population std)",
            }
            .into(),
            params: serde_json::json!({
                "format": "mmis",
                "slice_axes": "row = axis 1 (H), col = axis 2 (W), slice = axis 0 (D) of the stored D x H x W arrays",
                "resample": "nearest, scipy ndimage.zoom(order=0) to crop_size x crop_size",
                "target": TARGET_ID,
                "split_protocol": self.protocol(),
                "mmis": serde_json::to_value(&self.params).expect("MmisParams serialise"),
            }),
            image_values: ImageValues::Continuous,
        }
    }

    fn preset_split(&self) -> Option<PresetSplit> {
        Some(PresetSplit {
            protocol: self.protocol(),
            k_folds: 1,
            by_study: self.found.read().expect("found lock").by_study.clone(),
        })
    }

    fn notices(&self) -> Vec<StudyError> {
        self.found.read().expect("found lock").notices.clone()
    }
}

/// A case read and checked: `[channel][D * H * W]` images, `[rater][D * H * W]` 0/1
/// masks, the slice numbers (one per plane), spacing (z, y, x) and files with hashes.
struct CaseData {
    images: Vec<Vec<f64>>,
    masks: Vec<Vec<u8>>,
    ks: Vec<u64>,
    rows: usize,
    cols: usize,
    spacing: [f64; 3],
    files: Vec<String>,
    sha256: Vec<String>,
}

/// The datasets of one file: images, masks (each `[planes * H * W]`) and spacing, all
/// shapes equal to the first key's and `ndim` long.
struct FileData {
    shape: Vec<usize>,
    images: Vec<Vec<f64>>,
    masks: Vec<Vec<u8>>,
    spacing: [f64; 3],
    sha256: String,
}

fn read_file(path: &Path, ndim: usize) -> Result<FileData, StudyError> {
    let err = |m: String| StudyError::new(path, m);
    let f = H5File::read(path).map_err(err)?;
    let mut shape: Option<(Vec<usize>, &str)> = None;
    let mut check_shape = |key: &'static str, s: &[usize]| -> Result<(), StudyError> {
        if s.len() != ndim {
            return Err(err(format!(
                "`{key}` has shape {s:?}, expected {ndim} dimensions ({})",
                if ndim == 3 { "D x H x W" } else { "H x W" }
            )));
        }
        match &shape {
            Some((s0, k0)) if s0.as_slice() != s => {
                Err(err(format!("`{key}` has shape {s:?}, `{k0}` has {s0:?}")))
            }
            Some(_) => Ok(()),
            None => {
                shape = Some((s.to_vec(), key));
                Ok(())
            }
        }
    };
    let mut images = Vec::with_capacity(CHANNELS.len());
    for key in CHANNELS {
        let a = f.read_f64(key).map_err(err)?;
        check_shape(key, &a.shape)?;
        let bad = a.data.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            let i = a.data.iter().position(|v| !v.is_finite()).expect("one");
            return Err(err(format!(
                "`{key}`: {bad} values are NaN or infinite (first at flat index {i}: {})",
                a.data[i]
            )));
        }
        images.push(a.data);
    }
    let mut masks = Vec::with_capacity(LABELS.len());
    for key in LABELS {
        let a = f.read_f64(key).map_err(err)?;
        check_shape(key, &a.shape)?;
        if let Some(v) = a.data.iter().find(|&&v| v != 0.0 && v != 1.0) {
            let bad = a.data.iter().filter(|&&v| v != 0.0 && v != 1.0).count();
            return Err(err(format!(
                "`{key}`: {bad} values are neither 0 nor 1 (for example {v}); a rater's mask must be binary"
            )));
        }
        masks.push(a.data.iter().map(|&v| v as u8).collect());
    }
    let sp = f.read_f64(SPACING).map_err(err)?;
    let spacing: [f64; 3] = match sp.data.as_slice() {
        [z, y, x] if [z, y, x].iter().all(|v| v.is_finite() && **v > 0.0) => [*z, *y, *x],
        other => {
            return Err(err(format!(
                "`{SPACING}` must be 3 positive numbers (z, y, x in mm), got {other:?}"
            )))
        }
    };
    Ok(FileData {
        shape: shape.expect("checked keys").0,
        images,
        masks,
        spacing,
        sha256: f.sha256,
    })
}

/// A 3D case file.
fn read_volume_file(path: &Path) -> Result<CaseData, StudyError> {
    let d = read_file(path, 3)?;
    let [depth, rows, cols] = [d.shape[0], d.shape[1], d.shape[2]];
    if depth * rows * cols == 0 {
        return Err(StudyError::new(
            path,
            format!("empty volume, shape {:?}", d.shape),
        ));
    }
    Ok(CaseData {
        images: d.images,
        masks: d.masks,
        ks: (0..depth as u64).collect(),
        rows,
        cols,
        spacing: d.spacing,
        files: vec![path.display().to_string()],
        sha256: vec![d.sha256],
    })
}

/// The 2D slice files of a case, stacked in k order (`study.files` is in k order); every
/// slice must have the first one's H x W and voxel spacing.
fn read_slice_files(
    study: &StudyInput,
    kinds: &[Option<FileKind>],
) -> Result<CaseData, StudyError> {
    let mut case: Option<CaseData> = None;
    for (path, kind) in study.files.iter().zip(kinds) {
        let Some(FileKind::Slice { k, .. }) = kind else {
            unreachable!("checked by the caller")
        };
        let d = read_file(path, 2)?;
        let (rows, cols) = (d.shape[0], d.shape[1]);
        if rows * cols == 0 {
            return Err(StudyError::new(
                path,
                format!("empty slice, shape {:?}", d.shape),
            ));
        }
        let c = case.get_or_insert_with(|| CaseData {
            images: vec![Vec::new(); CHANNELS.len()],
            masks: vec![Vec::new(); LABELS.len()],
            ks: Vec::new(),
            rows,
            cols,
            spacing: d.spacing,
            files: Vec::new(),
            sha256: Vec::new(),
        });
        if (rows, cols) != (c.rows, c.cols) {
            return Err(StudyError::new(
                path,
                format!(
                    "slice is {rows} x {cols}, slice {} of the case ({}) is {} x {}",
                    c.ks[0], c.files[0], c.rows, c.cols
                ),
            ));
        }
        if d.spacing != c.spacing {
            return Err(StudyError::new(
                path,
                format!(
                    "`{SPACING}` {:?} differs from {:?} of {}",
                    d.spacing, c.spacing, c.files[0]
                ),
            ));
        }
        for (all, one) in c.images.iter_mut().zip(d.images) {
            all.extend(one);
        }
        for (all, one) in c.masks.iter_mut().zip(d.masks) {
            all.extend(one);
        }
        c.ks.push(*k);
        c.files.push(path.display().to_string());
        c.sha256.push(d.sha256);
    }
    case.ok_or_else(|| StudyError::new(&study.source_path, "the study lists no slice file"))
}

/// Mean and population standard deviation.
fn mean_std(data: &[f64]) -> (f64, f64) {
    let n = data.len() as f64;
    let mean = data.iter().sum::<f64>() / n;
    let var = data.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Cuts a checked case into one row per plane (see the module doc).
///
/// Spacing: `z_mm = k * spacing_z`; the in-plane spacing is scaled by the zoom as scipy
/// maps it (corners onto corners: `spacing * (n - 1) / (size - 1)`), like the NIfTI path.
/// The rows form the resampled grid itself (`source_height/width = crop_size`, crop origin
/// 0), which is what eval rebuilds volumes from and where the authors score them.
fn slice_case(
    p: &MmisParams,
    study: &StudyInput,
    mut case: CaseData,
) -> Result<StudyOutput, StudyError> {
    let size = p.crop_size as usize;
    let (rows, cols) = (case.rows, case.cols);
    let plane = rows * cols;
    if p.normalize == Normalize::Zscore {
        for (c, img) in case.images.iter_mut().enumerate() {
            let (mean, std) = mean_std(img);
            if !(std.is_finite() && std > 0.0) {
                return Err(StudyError::new(
                    &case.files[0],
                    format!(
                        "`{}` is constant (every voxel {mean}): cannot z-score it",
                        CHANNELS[c]
                    ),
                ));
            }
            img.iter_mut().for_each(|v| *v = (*v - mean) / std);
        }
    }
    let scale = |n: usize| (n.max(2) - 1) as f64 / (size.max(2) - 1) as f64;
    let (sp_row, sp_col) = (case.spacing[1] * scale(rows), case.spacing[2] * scale(cols));
    let slices = case
        .ks
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            let mut image = Vec::with_capacity(CHANNELS.len() * size * size);
            for img in &case.images {
                let z: Vec<f32> = img[i * plane..(i + 1) * plane]
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                image.extend(resample_nearest(&z, rows, cols, size));
            }
            let mut masks = Vec::with_capacity(LABELS.len() * size * size);
            for m in &case.masks {
                masks.extend(resample_nearest(
                    &m[i * plane..(i + 1) * plane],
                    rows,
                    cols,
                    size,
                ));
            }
            let mut rec = SliceRecord {
                study_id: study.study_id.clone(),
                patient_id: study.patient_id.clone(),
                target_id: TARGET_ID.into(),
                slice_index: k as i32,
                z_mm: k as f64 * case.spacing[0],
                height: size as u32,
                width: size as u32,
                channels: CHANNELS.len() as u32,
                spacing_row_mm: sp_row,
                spacing_col_mm: sp_col,
                image,
                masks,
                raters_present: vec![true; LABELS.len()],
                rater_area: vec![],
                intersection: vec![],
                union: vec![],
                crop_row0: 0,
                crop_col0: 0,
                source_height: size as u32,
                source_width: size as u32,
                source_files: case.files.clone(),
                source_sha256: case.sha256.clone(),
            };
            rec.derive_consensus();
            rec
        })
        .collect();
    Ok(StudyOutput {
        slices,
        n_targets: 1,
        volume_shape: [case.ks.len() as u32, size as u32, size as u32],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_ranges() {
        assert_eq!(parse_sample_range("80..99"), Ok((80, 99)));
        assert_eq!(parse_sample_range("80..=99"), Ok((80, 99)));
        assert_eq!(parse_sample_range("5..5"), Ok((5, 5)));
        for bad in ["80", "99..80", "a..9", "1..-2", "..3"] {
            assert!(parse_sample_range(bad).is_err(), "{bad}");
        }
    }
}
