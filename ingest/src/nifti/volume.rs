//! Reading one NIfTI-1 file (`.nii` or `.nii.gz`) into f64 voxels and a world affine.
//!
//! Voxel values come from the `nifti` crate with the header's `scl_slope`/`scl_inter`
//! applied (for any integer or float datatype), which is what nibabel's `get_fdata()`
//! returns. The affine follows nibabel's choice (`img.affine`): the sform when
//! `sform_code > 0`, else the qform when `qform_code > 0`, else the "base" affine built
//! from pixdim alone. The crate's own affine helpers need nalgebra, so the qform is decoded
//! here from the NIfTI-1 quaternion definition.
use std::path::Path;

use ::nifti::{IntoNdArray, NiftiObject, NiftiVolume, ReaderOptions};

use crate::study::StudyError;

/// A voxel volume as stored: `dims` in file order (x, y, z[, t, ...]) and the voxels in the
/// file's (Fortran) order, x fastest: voxel (i, j, k) of a 3D volume is
/// `data[i + nx * (j + ny * k)]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub dims: Vec<usize>,
    pub data: Vec<f64>,
    /// Voxel (i, j, k) to world mm, the last row `[0, 0, 0, 1]` left out.
    pub affine: [[f64; 4]; 3],
    /// pixdim[1..=3]: voxel size along x, y, z (mm, as stored).
    pub pixdim: [f64; 3],
}

impl Volume {
    /// Number of voxels along x, y, z (1 where the file has fewer dimensions).
    pub fn shape3(&self) -> [usize; 3] {
        [0, 1, 2].map(|k| self.dims.get(k).copied().unwrap_or(1))
    }

    /// Voxel (x, y, z) of a 3D volume.
    pub fn at(&self, x: usize, y: usize, z: usize) -> f64 {
        let [nx, ny, _] = self.shape3();
        self.data[x + nx * (y + ny * z)]
    }
}

/// Reads `path` (NIfTI-1, `.nii` or `.nii.gz`, any dimensionality).
///
/// NIfTI-2 and CIFTI-2 files fail here with an error that names them: the `nifti` crate
/// reads NIfTI-1 only.
pub fn read_volume(path: &Path) -> Result<Volume, StudyError> {
    read_volume_with_header(path).map(|(v, _)| v)
}

/// [`read_volume`] plus the file's header as stored, for writers that must give their
/// output exactly the input's geometry (`dpersona predict` writes its volumes with the
/// input's header as reference, so sform, qform, codes and pixdim match the source).
pub fn read_volume_with_header(path: &Path) -> Result<(Volume, ::nifti::NiftiHeader), StudyError> {
    let obj = ReaderOptions::new().read_file(path).map_err(|e| {
        let hint = match nifti2_magic(path) {
            Some(true) => "this is a NIfTI-2 file; only NIfTI-1 is supported (convert it, e.g. with nibabel: nib.Nifti1Image(img.dataobj, img.affine).to_filename(...))".to_string(),
            _ => "not a readable NIfTI-1 file".to_string(),
        };
        StudyError::new(path, format!("{hint}: {e}"))
    })?;
    let header = obj.header().clone();
    let dims: Vec<usize> = obj.volume().dim().iter().map(|&d| d as usize).collect();
    check_raw_size(obj.volume(), &dims).map_err(|reason| StudyError::new(path, reason))?;
    let arr = obj
        .into_volume()
        .into_ndarray::<f64>()
        .map_err(|e| StudyError::new(path, format!("cannot decode the voxel data: {e}")))?;
    // The array is indexed [x, y, z, ...]; its transpose iterates with x fastest.
    let data: Vec<f64> = arr.t().iter().copied().collect();
    let pixdim = [1, 2, 3].map(|k| header.pixdim[k] as f64);
    let affine = best_affine(&header, &dims);
    Ok((
        Volume {
            dims,
            data,
            affine,
            pixdim,
        },
        header,
    ))
}

/// The voxel bytes the `nifti` crate read must be exactly `dims x datatype size`: its
/// conversion to an array `expect`s that and panicked on a header whose bitpix disagrees
/// with its datatype (found by fuzzing, fuzz/ target `nifti_volume`).
fn check_raw_size(v: &::nifti::InMemNiftiVolume, dims: &[usize]) -> Result<(), String> {
    let t = v.data_type();
    let want = dims.iter().try_fold(t.size_of(), |n, &d| n.checked_mul(d));
    let got = v.raw_data().len();
    if want != Some(got) {
        return Err(format!(
            "voxel data is {got} bytes, but dim {dims:?} of datatype {t:?} needs {} \
             (bitpix or dim inconsistent with the datatype)",
            want.map_or("more than memory holds".to_string(), |w| w.to_string())
        ));
    }
    Ok(())
}

/// True when the file's first 4 bytes (after gunzip for `.gz`) are the NIfTI-2 header
/// size 540 (either byte order); None when they cannot be read.
fn nifti2_magic(path: &Path) -> Option<bool> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut head = [0u8; 4];
    let gz = path.to_string_lossy().ends_with(".gz");
    if gz {
        flate2::read::GzDecoder::new(file)
            .read_exact(&mut head)
            .ok()?;
    } else {
        std::io::BufReader::new(file).read_exact(&mut head).ok()?;
    }
    Some(i32::from_le_bytes(head) == 540 || i32::from_be_bytes(head) == 540)
}

/// nibabel's `Nifti1Header.get_best_affine()`.
pub fn best_affine(h: &::nifti::NiftiHeader, dims: &[usize]) -> [[f64; 4]; 3] {
    if h.sform_code > 0 {
        [h.srow_x, h.srow_y, h.srow_z].map(|r| r.map(|v| v as f64))
    } else if h.qform_code > 0 {
        qform_affine(h)
    } else {
        base_affine(h, dims)
    }
}

/// The qform affine: rotation from the quaternion (b, c, d; a = sqrt(1 - b² - c² - d²)),
/// scaled by pixdim with qfac (pixdim[0], -1 or else 1) on z, offset quatern_x/y/z.
pub fn qform_affine(h: &::nifti::NiftiHeader) -> [[f64; 4]; 3] {
    let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
    // nibabel: a = sqrt(1 - (b² + c² + d²)), clipped to 0 for tiny negative values.
    let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
    let r = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ];
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let zooms = [
        h.pixdim[1] as f64,
        h.pixdim[2] as f64,
        h.pixdim[3] as f64 * qfac,
    ];
    let offset = [h.quatern_x as f64, h.quatern_y as f64, h.quatern_z as f64];
    let mut m = [[0.0; 4]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = r[i][j] * zooms[j];
        }
        m[i][3] = offset[i];
    }
    m
}

/// nibabel's base affine (no xform): diag(-dx, dy, dz), centred on the volume.
pub fn base_affine(h: &::nifti::NiftiHeader, dims: &[usize]) -> [[f64; 4]; 3] {
    let zooms = [
        -(h.pixdim[1] as f64),
        h.pixdim[2] as f64,
        h.pixdim[3] as f64,
    ];
    let mut m = [[0.0; 4]; 3];
    for k in 0..3 {
        let n = dims.get(k).copied().unwrap_or(1) as f64;
        m[k][k] = zooms[k];
        m[k][3] = -(n - 1.0) / 2.0 * zooms[k];
    }
    m
}
