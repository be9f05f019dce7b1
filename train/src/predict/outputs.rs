//! Writing one case's outputs: NIfTI-1 volumes on the input's grid, all in one folder that
//! appears at once.
//!
//! ```text
//! DIR/CASE/rater_1.nii.gz ..    Stage II: rater k's personalised mask, uint8 0/1
//! DIR/CASE/sample_01.nii.gz ..  Stage I: sample j's probabilities, float32 in [0, 1]
//! DIR/CASE/mean.nii.gz          Stage I: mean of the samples' probabilities, float32
//! DIR/CASE/uncertainty.nii.gz   Stage I: per-voxel variance of the samples' probabilities
//!                               (population variance, 0 .. 0.25), float32
//! DIR/CASE/model_grid/...       with --save-model-grid: the same maps on the model's grid
//!                               (float32, shape (S, S, D), planes in slice_index order),
//!                               the layout `dpersona eval --save-predictions` writes
//! ```
//!
//! Every volume takes the input's first channel header as reference (the `nifti` writer
//! then sets dim, datatype and bitpix and resets scl_slope/scl_inter), so sform, qform,
//! their codes, pixdim and units are the input's and nibabel reads the same affine.
//!
//! Atomicity: the files are written into `DIR/.partial-CASE-<pid>/`, which is renamed to
//! `DIR/CASE/` when complete; a case folder therefore exists only when every file in it is
//! whole, and a rerun skips exactly the cases whose folder exists.
use std::path::{Path, PathBuf};

use ndarray::{Array3, ShapeBuilder};

use super::preprocess::InputGrid;

/// File ending of every volume written.
pub const ENDING: &str = ".nii.gz";

/// Why writing failed, with the file named.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub reason: String,
}

fn werr(path: &Path, reason: impl std::fmt::Display) -> WriteError {
    WriteError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// A case folder being written (see the module doc).
pub struct CaseWriter {
    tmp: PathBuf,
    dest: PathBuf,
}

/// The final folder of `case` in `out`.
pub fn case_dir(out: &Path, case: &str) -> PathBuf {
    out.join(case)
}

impl CaseWriter {
    /// Starts `out/case/` in a fresh hidden folder (left-overs of a killed run with this
    /// process id are removed).
    pub fn begin(out: &Path, case: &str) -> Result<Self, WriteError> {
        let tmp = out.join(format!(".partial-{case}-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| werr(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| werr(&tmp, e))?;
        Ok(CaseWriter {
            tmp,
            dest: case_dir(out, case),
        })
    }

    /// Writes `name` (`<name>.nii.gz`) from `data` in NIfTI order (x fastest, shape
    /// `shape` = (nx, ny, nz)) with `reference`'s geometry.
    pub fn put(
        &self,
        name: &str,
        data: VolumeData,
        shape: [usize; 3],
        reference: &nifti::NiftiHeader,
        description: &str,
    ) -> Result<(), WriteError> {
        let path = self.tmp.join(format!("{name}{ENDING}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| werr(dir, e))?;
        }
        let mut header = reference.clone();
        // What the input's header said about its own values does not apply to ours.
        header.cal_min = 0.0;
        header.cal_max = 0.0;
        header.intent_code = 0;
        header.intent_name = [0; 16];
        header.aux_file = [0; 24];
        header.descrip = Vec::new();
        let _ = header.set_description_str(description);
        let writer = nifti::writer::WriterOptions::new(&path).reference_header(&header);
        let dim = (shape[0], shape[1], shape[2]).f();
        let internal = |e: ndarray::ShapeError| werr(&path, format!("internal error: {e}"));
        let written = match data {
            VolumeData::F32(v) => {
                writer.write_nifti(&Array3::from_shape_vec(dim, v).map_err(internal)?)
            }
            VolumeData::U8(v) => {
                writer.write_nifti(&Array3::from_shape_vec(dim, v).map_err(internal)?)
            }
        };
        written.map_err(|e| werr(&path, format!("writing NIfTI failed: {e}")))
    }

    /// Where a file named `name` is written before the folder is committed.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.tmp.join(name)
    }

    /// Moves the complete folder to `out/case/`.
    pub fn commit(self) -> Result<PathBuf, WriteError> {
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| werr(&self.dest, e))?;
        Ok(self.dest.clone())
    }
}

/// Removes the hidden folder of a case that failed half-way.
impl Drop for CaseWriter {
    fn drop(&mut self) {
        if self.tmp.exists() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// The voxels of one volume: float32 probabilities or uint8 masks.
pub enum VolumeData {
    F32(Vec<f32>),
    U8(Vec<u8>),
}

/// A header for model-grid volumes `(S, S, D)`: voxel size 1, identity affine (the model
/// grid has no place in the scanner; these files are for comparisons, not viewers).
pub fn model_grid_header() -> nifti::NiftiHeader {
    nifti::NiftiHeader {
        pixdim: [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        sform_code: 0,
        qform_code: 0,
        ..nifti::NiftiHeader::default()
    }
}

/// Input-grid volume (x fastest) from per-plane maps: `plane(k)` gives the input plane
/// `[ny * nx]` (row = y, col = x) of the file's z plane k.
pub fn assemble<T: Copy>(grid: &InputGrid, mut plane: impl FnMut(usize) -> Vec<T>) -> Vec<T> {
    let [nx, ny, nz] = grid.shape;
    let mut data = Vec::with_capacity(nx * ny * nz);
    for k in 0..nz {
        let p = plane(k);
        debug_assert_eq!(p.len(), nx * ny);
        // An axial plane [rows = y][cols = x] row-major already has x fastest.
        data.extend(p);
    }
    data
}
