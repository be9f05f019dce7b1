//! An unlabelled case on the model's grid, prepared exactly as ingest prepared the training
//! data: the preprocessing comes from the run's manifest header (channels, crop size,
//! normalisation parameters), never from flags, and every step is a call into `ingest`
//! (the same functions that wrote the shards), so a scan ingested and a scan predicted give
//! the model the same numbers.
use std::path::PathBuf;

use ingest::nifti::format::{
    channel_stats, check_same_grid, check_volume, model_image, slice_index,
};
use ingest::nifti::volume::{read_volume_with_header, Volume};
use ingest::nifti::{NiftiParams, SliceGrid};
use schemas::manifest::{ManifestHeader, SourceKind};

use super::input::{CaseError, CaseInput, CaseSource};

/// How the run's training rows were cut, read from its manifest header.
#[derive(Debug, Clone, PartialEq)]
pub enum Preprocessing {
    /// NPC-style: every axial slice z-scored per channel over the volume, then resampled
    /// or cropped to the model grid (ingest's NIfTI format).
    WholeSlices(NiftiParams),
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
            SourceKind::Lidc | SourceKind::LidcPickle => Err(format!(
                "the run was trained on {} crops around annotated nodules; predict needs the \
                 crop centres (--roi FILE: CSV or JSON with case, x, y, z), and LIDC-style \
                 prediction from DICOM is not available in this build",
                if h.source_kind == SourceKind::Lidc {
                    "LIDC"
                } else {
                    "pickled LIDC"
                }
            )),
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
    /// How each axial plane became a model slice (and how outputs go back).
    pub slices: SliceGrid,
    /// `plane_of[j]` = the file's z plane of model slice `j` (slices in `slice_index`
    /// order, as ingest numbers them: lowest world z first).
    pub plane_of: Vec<usize>,
    /// `[D, C, S, S]` model inputs, slices in `slice_index` order.
    pub images: Vec<f32>,
    pub channels: usize,
}

impl PreparedCase {
    pub fn depth(&self) -> usize {
        self.plane_of.len()
    }
    pub fn size(&self) -> usize {
        self.slices.size
    }
}

/// Reads and prepares one case (see the module doc). Any problem is a [`CaseError`] that
/// names the file.
pub fn prepare(
    input: &CaseInput,
    pre: &Preprocessing,
    channels: &[String],
) -> Result<PreparedCase, CaseError> {
    let fail = |reason: String| CaseError::new(&input.case, reason);
    let Preprocessing::WholeSlices(params) = pre;
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
        slices: grid,
        plane_of,
        images,
        channels: vols.len(),
    })
}
