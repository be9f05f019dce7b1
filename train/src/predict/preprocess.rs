//! An unlabelled case on the model's grid, prepared exactly as ingest prepared the training
//! data: the preprocessing comes from the run's manifest header (channels, crop size,
//! normalisation parameters), never from flags, and every step is a call into `ingest`
//! (the same functions that wrote the shards), so a scan ingested and a scan predicted give
//! the model the same numbers.
use std::collections::HashMap;
use std::path::PathBuf;

use ingest::lidc::dicom_series::{read_series, CtSeries};
use ingest::lidc::format::{crop_image, crop_origin, LidcParams};
use ingest::nifti::format::{
    channel_stats, check_same_grid, check_volume, model_image, slice_index,
};
use ingest::nifti::volume::{read_volume_with_header, Volume};
use ingest::nifti::{NiftiParams, SliceGrid};
use schemas::manifest::{ManifestHeader, SourceKind};

use super::input::{looks_like_dicom, CaseError, CaseInput, CaseSource};
use super::roi::{Roi, RoiUnit};

/// How the run's training rows were cut, read from its manifest header.
#[derive(Debug, Clone, PartialEq)]
pub enum Preprocessing {
    /// NPC-style: every axial slice z-scored per channel over the volume, then resampled
    /// or cropped to the model grid (ingest's NIfTI format).
    WholeSlices(NiftiParams),
    /// LIDC-style: one `crop x crop` window of one CT slice per ROI, HU windowed to [0, 1]
    /// (ingest's LIDC format); needs `--roi`.
    Crops(LidcParams),
}

impl Preprocessing {
    /// The preprocessing of the manifest a run was trained on, or why predict cannot
    /// reproduce it.
    pub fn from_header(h: &ManifestHeader) -> Result<Self, String> {
        match h.source_kind {
            SourceKind::Nifti => {
                let p = h.params.get("nifti").ok_or_else(|| {
                    "the manifest header's params have no `nifti` table (a manifest from an \
                     older dpersona? ingest the data again)"
                        .to_string()
                })?;
                let p: NiftiParams = serde_json::from_value(p.clone()).map_err(|e| {
                    format!("the manifest header's `nifti` parameters do not parse: {e}")
                })?;
                if !p.resample && p.crop_mode == ingest::nifti::CropMode::UnionBox {
                    return Err(
                        "the run was trained on crops centred on the raters' marks (ingest \
                         --no-resample --crop-mode union-box); an unlabelled scan has no marks \
                         to centre on, so predict cannot reproduce that window (ingest with \
                         --crop-mode centre or without --no-resample and train again)"
                            .into(),
                    );
                }
                Ok(Preprocessing::WholeSlices(p))
            }
            SourceKind::Lidc => {
                let p: LidcParams = serde_json::from_value(h.params.clone()).map_err(|e| {
                    format!("the manifest header's LIDC parameters do not parse: {e}")
                })?;
                Ok(Preprocessing::Crops(p))
            }
            SourceKind::LidcPickle => Err(
                "the run was trained on the authors' pickled LIDC crops, which record no \
                 windowing or crop parameters of their own; predict cannot prepare a DICOM \
                 series the same way (train on an `ingest lidc` manifest to predict CT)"
                    .into(),
            ),
            SourceKind::Mmis => Err(
                "the run was trained on an MMIS (HDF5) manifest, whose slice preprocessing \
                 predict cannot reproduce from NIfTI files yet; train on a NIfTI ingest of the \
                 same data to predict NIfTI scans"
                    .into(),
            ),
        }
    }
}

/// The input scan's grid, which every output is written on.
#[derive(Debug, Clone)]
pub struct InputGrid {
    /// The first channel's header: outputs take its sform/qform, codes and pixdim.
    pub header: nifti::NiftiHeader,
    /// Voxels along x, y, z.
    pub shape: [usize; 3],
    /// The world affine (nibabel's `img.affine`, last row left out).
    pub affine: [[f64; 4]; 3],
}

/// One case ready for the model.
#[derive(Debug, Clone)]
pub struct PreparedCase {
    pub input: CaseInput,
    pub grid: InputGrid,
    /// Where each model slice came from (and where its outputs go back).
    pub placement: Placement,
    /// `[D, C, S, S]` model inputs.
    pub images: Vec<f32>,
    pub channels: usize,
    /// S, the side of the model grid.
    pub size: usize,
    /// The DICOM series the case was read from (a DICOM SEG refers to it).
    pub dicom: Option<super::dicom_seg::SourceSeries>,
}

/// Where the model slices of a case sit in the input.
#[derive(Debug, Clone)]
pub enum Placement {
    /// Every axial plane through `grid`; `plane_of[j]` = the file's z plane of model slice
    /// `j` (slices in `slice_index` order, as ingest numbers them: lowest world z first).
    Slices {
        grid: SliceGrid,
        plane_of: Vec<usize>,
    },
    /// One crop per ROI: `(plane, row0, col0)` of its window in a `rows x cols` plane.
    Crops {
        rows: usize,
        cols: usize,
        at: Vec<(usize, i64, i64)>,
    },
}

impl PreparedCase {
    /// D, the number of model slices.
    pub fn depth(&self) -> usize {
        match &self.placement {
            Placement::Slices { plane_of, .. } => plane_of.len(),
            Placement::Crops { at, .. } => at.len(),
        }
    }
}

/// Reads and prepares one case (see the module doc). Any problem is a [`CaseError`] that
/// names the file.
pub fn prepare(
    input: &CaseInput,
    pre: &Preprocessing,
    channels: &[String],
    rois: &[Roi],
) -> Result<PreparedCase, CaseError> {
    let fail = |reason: String| CaseError::new(&input.case, reason);
    let params = match pre {
        Preprocessing::WholeSlices(p) => p,
        Preprocessing::Crops(p) => return prepare_crops(input, p, rois),
    };
    let files: &[PathBuf] = match &input.source {
        CaseSource::Nifti(files) => files,
        CaseSource::Dicom(dir) => {
            return Err(fail(format!(
                "{}: a DICOM series, but the run was trained on NIfTI volumes ({}); give \
                 the case as NIfTI files (one per channel)",
                dir.display(),
                channels.join(", ")
            )))
        }
    };
    if files.len() != channels.len() {
        return Err(fail(format!(
            "{} files for {} channels ({})",
            files.len(),
            channels.len(),
            channels.join(", ")
        )));
    }
    let mut vols: Vec<Volume> = Vec::with_capacity(files.len());
    let mut header = None;
    for f in files {
        let (v, h) = read_volume_with_header(f).map_err(|e| fail(e.to_string()))?;
        check_volume(f, &v).map_err(|e| fail(e.to_string()))?;
        if let Some(v0) = vols.first() {
            check_same_grid(f, &v, &files[0], v0).map_err(|e| fail(e.to_string()))?;
        }
        header.get_or_insert(h);
        vols.push(v);
    }
    let stats = channel_stats(&vols, files).map_err(|e| fail(e.to_string()))?;
    let [nx, ny, nz] = vols[0].shape3();
    let affine = vols[0].affine;
    let grid = SliceGrid::without_labels(params, ny, nx)
        .expect("union-box windows are refused by Preprocessing::from_header");
    let mut plane_of = vec![0; nz];
    for k in 0..nz {
        plane_of[slice_index(&affine, nz, k)] = k;
    }
    let mut images = Vec::with_capacity(nz * vols.len() * grid.size * grid.size);
    for &k in &plane_of {
        images.extend(model_image(&vols, &stats, &grid, k));
    }
    Ok(PreparedCase {
        input: input.clone(),
        grid: InputGrid {
            header: header.expect("at least one channel"),
            shape: [nx, ny, nz],
            affine,
        },
        placement: Placement::Slices { grid, plane_of },
        images,
        channels: vols.len(),
        size: grid.size,
        dicom: None,
    })
}

/// One crop per ROI from a DICOM CT series, windowed as ingest windows LIDC crops.
fn prepare_crops(
    input: &CaseInput,
    params: &LidcParams,
    rois: &[Roi],
) -> Result<PreparedCase, CaseError> {
    let fail = |reason: String| CaseError::new(&input.case, reason);
    let dir = match &input.source {
        CaseSource::Dicom(dir) => dir,
        CaseSource::Nifti(files) => {
            return Err(fail(format!(
                "{}: NIfTI, but the run was trained on CT crops read from DICOM series; give \
                 the case as its DICOM series folder",
                files[0].display()
            )))
        }
    };
    if rois.is_empty() {
        return Err(fail(format!(
            "{}: no ROI for this case in --roi (its `case` must be the folder's name, `{}`)",
            dir.display(),
            input.case
        )));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| fail(format!("{}: cannot list the folder: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && looks_like_dicom(p)
        })
        .collect();
    files.sort();
    let series = read_series(&files).map_err(|e| fail(e.to_string()))?;
    let grid = dicom_grid(&series).map_err(|m| fail(format!("{}: {m}", dir.display())))?;
    let (rows, cols) = (series.rows as usize, series.columns as usize);
    let size = params.crop_size as usize;
    let mut at = Vec::with_capacity(rois.len());
    let mut images = Vec::with_capacity(rois.len() * size * size);
    let mut samples = HashMap::new();
    for roi in rois {
        let (k, row, col) = roi_voxel(&series, roi).map_err(fail)?;
        let (row0, col0) = crop_origin((row, col), size);
        if let std::collections::hash_map::Entry::Vacant(slot) = samples.entry(k) {
            let (s, _) = series.slice_samples(k).map_err(|e| fail(e.to_string()))?;
            slot.insert(s);
        }
        images.extend(crop_image(
            &samples[&k],
            (rows, cols),
            (row0, col0),
            size,
            params,
        ));
        at.push((k, row0 as i64, col0 as i64));
    }
    let dicom = super::dicom_seg::SourceSeries {
        first_file: series.slices[0].path.clone(),
        series_instance_uid: series.series_instance_uid.clone(),
        rows,
        cols,
        pixel_spacing: series.pixel_spacing,
        slice_thickness: series.slice_thickness,
        orientation: series.orientation.unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
        slices: series
            .slices
            .iter()
            .map(|s| super::dicom_seg::SourceSlice {
                sop_instance_uid: s.sop_instance_uid.clone(),
                position: s.position,
            })
            .collect(),
    };
    Ok(PreparedCase {
        input: input.clone(),
        grid,
        placement: Placement::Crops { rows, cols, at },
        images,
        channels: 1,
        size,
        dicom: Some(dicom),
    })
}

/// The ROI's slice index and (row, col) centre, or why it is outside the series.
fn roi_voxel(series: &CtSeries, roi: &Roi) -> Result<(usize, f64, f64), String> {
    let (rows, cols, n) = (
        series.rows as f64,
        series.columns as f64,
        series.slices.len(),
    );
    let (k, row, col) = match roi.unit {
        RoiUnit::Voxel => {
            let k = roi.z.round();
            if !(0.0..n as f64).contains(&k) {
                return Err(outside(roi, series));
            }
            (k as usize, roi.y, roi.x)
        }
        RoiUnit::Mm => {
            let (k, dz) = series
                .slices
                .iter()
                .enumerate()
                .map(|(k, s)| (k, (s.z_mm - roi.z).abs()))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("a series has slices");
            if dz > series.slice_thickness.max(1e-6) / 2.0 + 1e-6 {
                return Err(outside(roi, series));
            }
            let o = series.orientation.unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
            let p = series.slices[k].position;
            let d = [roi.x - p[0], roi.y - p[1], roi.z - p[2]];
            let dot = |v: &[f64]| d[0] * v[0] + d[1] * v[1] + d[2] * v[2];
            let [sr, sc] = series.pixel_spacing;
            (k, dot(&o[3..6]) / sr, dot(&o[0..3]) / sc)
        }
    };
    let inside = |v: f64, n: f64| v.round() >= 0.0 && v.round() < n;
    if !(inside(row, rows) && inside(col, cols)) {
        return Err(outside(roi, series));
    }
    Ok((k, row, col))
}

/// The message for an ROI outside the series, naming the ROI's file and line.
fn outside(roi: &Roi, series: &CtSeries) -> String {
    let n = series.slices.len();
    let (unit, z_range) = match roi.unit {
        RoiUnit::Voxel => ("voxel", String::new()),
        RoiUnit::Mm => (
            "mm",
            format!(
                ", z {:.2}..{:.2} mm",
                series.slices[0].z_mm,
                series.slices[n - 1].z_mm
            ),
        ),
    };
    format!(
        "{}: ROI ({}, {}, {}) {unit} is outside the volume ({} columns x {} rows x {n} slices{z_range})",
        roi.origin, roi.x, roi.y, roi.z, series.columns, series.rows,
    )
}

/// The NIfTI grid of a CT series: voxel (i = column, j = row, k = slice in z order) to
/// RAS mm, from ImagePositionPatient, ImageOrientationPatient and PixelSpacing (DICOM is
/// LPS: the first two rows are negated, as nibabel and dcm2niix do). Refuses unevenly
/// spaced slices, which one affine cannot describe.
fn dicom_grid(series: &CtSeries) -> Result<InputGrid, String> {
    let n = series.slices.len();
    let o = series.orientation.unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let [sr, sc] = series.pixel_spacing;
    let p0 = series.slices[0].position;
    let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let step: [f64; 3] = if n > 1 {
        let pl = series.slices[n - 1].position;
        let step = [0, 1, 2].map(|i| (pl[i] - p0[i]) / (n - 1) as f64);
        let len = norm(step);
        for w in series.slices.windows(2) {
            let d = [0, 1, 2].map(|i| w[1].position[i] - w[0].position[i]);
            if (norm(d) - len).abs() > 0.01 * len.max(1e-6) {
                return Err(format!(
                    "slices are not evenly spaced ({:.3} mm between z {:.3} and {:.3}, {:.3} mm \
                     on average); one NIfTI affine cannot place them",
                    norm(d),
                    w[0].z_mm,
                    w[1].z_mm,
                    len
                ));
            }
        }
        step
    } else {
        let normal = [
            o[1] * o[5] - o[2] * o[4],
            o[2] * o[3] - o[0] * o[5],
            o[0] * o[4] - o[1] * o[3],
        ];
        normal.map(|v| v * series.slice_thickness)
    };
    let lps = [
        [o[0] * sc, o[3] * sr, step[0], p0[0]],
        [o[1] * sc, o[4] * sr, step[1], p0[1]],
        [o[2] * sc, o[5] * sr, step[2], p0[2]],
    ];
    let affine = [lps[0].map(|v| -v), lps[1].map(|v| -v), lps[2]];
    let header = nifti::NiftiHeader {
        pixdim: [
            1.0,
            sc as f32,
            sr as f32,
            norm(step) as f32,
            0.0,
            0.0,
            0.0,
            0.0,
        ],
        xyzt_units: 2 | 8,
        sform_code: 1,
        qform_code: 0,
        srow_x: affine[0].map(|v| v as f32),
        srow_y: affine[1].map(|v| v as f32),
        srow_z: affine[2].map(|v| v as f32),
        ..nifti::NiftiHeader::default()
    };
    Ok(InputGrid {
        header,
        shape: [series.columns as usize, series.rows as usize, n],
        affine,
    })
}
