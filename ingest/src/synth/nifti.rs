//! Synthetic NPC-style NIfTI dataset: phantom volumes as three MR-like channels plus one
//! label file per rater, in the layout [`crate::nifti::NiftiFormat`] reads:
//!
//! ```text
//! OUT/dataset.json                      name, channel_names, raters, file_ending, rater_order
//! OUT/images/{CASE}_{XXXX}.nii.gz       one file per channel (0000 = t1, 0001 = t1c, 0002 = t2)
//! OUT/labels/{CASE}_{RATER}.nii.gz      one u8 0/1 file per rater (all zero: drew nothing)
//! ```
//!
//! Arrays on disk are `[x, y, z]` with x = phantom column, y = phantom row, z = phantom slice
//! (the convention the reader undoes, see [`crate::nifti`]). The affine is RAS-aligned
//! (positive diagonal = voxel size, a per-case origin) and written as both sform and qform,
//! so every reader (nibabel, SimpleITK, the nifti crate) agrees on it.
//!
//! Every NPC case has one gross tumour volume, so each phantom has one target; every rater
//! reads every case (the MMIS layout has a label file per rater per case).
use std::path::{Path, PathBuf};

use ::nifti::writer::WriterOptions;
use ::nifti::NiftiHeader;
use anyhow::{Context, Result};
use ndarray::Array3;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::phantom::{self, PhantomParams, PhantomVolume, RATER_STYLES};

/// Channel names in channel order (the NPC h5 keys, stacked in that order).
pub const CHANNELS: [&str; 3] = ["t1", "t1c", "t2"];
/// File ending of every written volume.
pub const FILE_ENDING: &str = ".nii.gz";
/// `name` written to dataset.json.
pub const DATASET_NAME: &str = "synth-npc";
/// Standard deviation of the MR-like channels' own noise (on top of the phantom's).
pub const MR_NOISE: f64 = 10.0;
/// NIfTI `xyzt_units` for millimetres and seconds.
const UNITS_MM_SEC: u8 = 2 | 8;
/// NIfTI xform code "scanner anatomical".
const XFORM_SCANNER: i16 = 1;

/// What `write_dataset` wrote.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SynthSummary {
    pub studies: usize,
    pub image_files: usize,
    pub label_files: usize,
    /// (case, rater) label files that are all zero (the rater drew nothing).
    pub empty_labels: usize,
}

/// Case id of study `i`: `synth_000`, `synth_001`, ...
pub fn case_id(i: usize) -> String {
    format!("synth_{i:03}")
}

/// Seed of study `i` of a dataset (a test regenerates the phantom with it).
pub fn study_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i as u64 + 1)
}

/// Phantom parameters of every study: one target, four raters, nobody missing.
pub fn study_params() -> PhantomParams {
    PhantomParams {
        n_targets: 1,
        n_raters: RATER_STYLES.len(),
        p_missing_rater: 0.0,
        ..PhantomParams::default()
    }
}

/// Rater names in rater order (the phantom's style names).
pub fn rater_names() -> Vec<String> {
    RATER_STYLES.iter().map(|s| s.name.to_string()).collect()
}

/// Voxel-to-world affine (3 x 4 rows, mm) of study `i`: voxel size on the diagonal
/// (x = column spacing, y = row spacing, z = slice spacing) and an origin that differs per
/// case, so that per-case affines are not all equal.
pub fn case_affine(v: &PhantomVolume, i: usize) -> [[f64; 4]; 3] {
    let [sz, sr, sc] = v.spacing_mm;
    [
        [sc, 0.0, 0.0, -(v.width as f64) * sc / 2.0 + i as f64],
        [0.0, sr, 0.0, -(v.height as f64) * sr / 2.0 - 0.5 * i as f64],
        [0.0, 0.0, sz, -40.0 + 2.0 * i as f64],
    ]
}

/// The three MR-like channels (`[D*H*W]`, z-row-col) derived from the phantom's CT-like
/// intensities: tissue "density" `n = (hu + 1000) / 1040` (air 0, soft tissue ~1) mapped
/// with different contrasts (t1 linear, t1c quadratic so dense tissue stands out more, t2
/// inverted), each with its own noise.
pub fn mr_channels(v: &PhantomVolume, seed: u64) -> [Vec<f32>; 3] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4D52_4348_414E_4E45);
    let noise = Normal::new(0.0, MR_NOISE).expect("MR noise sigma is finite and positive");
    let map = |f: &dyn Fn(f64) -> f64, rng: &mut ChaCha8Rng| -> Vec<f32> {
        v.hu.iter()
            .map(|&hu| {
                let n = ((hu as f64 + 1000.0) / 1040.0).clamp(0.0, 1.3);
                (f(n) + noise.sample(rng)) as f32
            })
            .collect()
    };
    let t1 = map(&|n| 150.0 + 500.0 * n, &mut rng);
    let t1c = map(&|n| 120.0 + 650.0 * n * n, &mut rng);
    let t2 = map(&|n| 900.0 - 600.0 * n, &mut rng);
    [t1, t1c, t2]
}

/// A `[D*H*W]` (z, row, col) volume as the `[x, y, z]` = `[col, row, z]` array NIfTI stores.
fn to_xyz<T: Copy>(v: &PhantomVolume, data: &[T]) -> Array3<T> {
    let (h, w) = (v.height, v.width);
    Array3::from_shape_fn((w, h, v.depth), |(x, y, z)| data[(z * h + y) * w + x])
}

/// Header with voxel size, units and the affine as sform and qform (identity rotation).
fn header_for(v: &PhantomVolume, affine: &[[f64; 4]; 3], case: &str) -> Result<NiftiHeader> {
    let mut h = NiftiHeader::default();
    let [sz, sr, sc] = v.spacing_mm;
    h.pixdim = [1.0, sc as f32, sr as f32, sz as f32, 0.0, 0.0, 0.0, 0.0];
    h.xyzt_units = UNITS_MM_SEC;
    h.sform_code = XFORM_SCANNER;
    h.qform_code = XFORM_SCANNER;
    h.srow_x = affine[0].map(|x| x as f32);
    h.srow_y = affine[1].map(|x| x as f32);
    h.srow_z = affine[2].map(|x| x as f32);
    h.quatern_b = 0.0;
    h.quatern_c = 0.0;
    h.quatern_d = 0.0;
    h.quatern_x = affine[0][3] as f32;
    h.quatern_y = affine[1][3] as f32;
    h.quatern_z = affine[2][3] as f32;
    h.set_description_str(format!("dpersona synthetic phantom {case}"))
        .context("setting the NIfTI description")?;
    Ok(h)
}

/// Writes a volume to `path` through a temporary file in `tmp_dir` (`write` gets the
/// temporary path), so a killed run never leaves a torn volume under its final name.
fn write_volume(
    path: &Path,
    tmp_dir: &Path,
    write: impl FnOnce(&Path) -> ::nifti::Result<()>,
) -> Result<()> {
    let name = path.file_name().context("volume path has no file name")?;
    let tmp = tmp_dir.join(name);
    write(&tmp).with_context(|| format!("writing NIfTI {}", tmp.display()))?;
    schemas::atomic::commit_temp(&tmp, path)
        .with_context(|| format!("moving {} into place", path.display()))?;
    Ok(())
}

/// Writes `studies` synthetic cases under `out` (created if needed; files of the same
/// names are replaced). Deterministic for a given `seed`.
pub fn write_dataset(out: &Path, studies: usize, seed: u64) -> Result<SynthSummary> {
    anyhow::ensure!(studies > 0, "asked for 0 synthetic studies");
    let images = out.join("images");
    let labels = out.join("labels");
    let tmp_dir = out.join(format!(".partial-{}", std::process::id()));
    for d in [&images, &labels, &tmp_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let raters = rater_names();
    let params = study_params();
    let mut summary = SynthSummary::default();
    for i in 0..studies {
        let case = case_id(i);
        let s = study_seed(seed, i);
        let v = phantom::generate(&params, s);
        let affine = case_affine(&v, i);
        let header = header_for(&v, &affine, &case)?;
        let [t1, t1c, t2] = mr_channels(&v, s);
        // Integer and float datatypes both occur in real MR exports: t1/t2 as int16, t1c as float32.
        let round = |x: &Vec<f32>| {
            x.iter()
                .map(|&v| v.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16)
                .collect::<Vec<i16>>()
        };
        let writer = |tmp: &Path| WriterOptions::new(tmp).reference_header(&header);
        let (t1, t1c, t2) = (
            to_xyz(&v, &round(&t1)),
            to_xyz(&v, &t1c),
            to_xyz(&v, &round(&t2)),
        );
        write_volume(&image_path(&images, &case, 0), &tmp_dir, |p| {
            writer(p).write_nifti(&t1)
        })?;
        write_volume(&image_path(&images, &case, 1), &tmp_dir, |p| {
            writer(p).write_nifti(&t1c)
        })?;
        write_volume(&image_path(&images, &case, 2), &tmp_dir, |p| {
            writer(p).write_nifti(&t2)
        })?;
        summary.image_files += CHANNELS.len();
        let target = &v.targets[0];
        for (k, rater) in raters.iter().enumerate() {
            let mask = target.rater_masks[k]
                .clone()
                .unwrap_or_else(|| vec![0u8; v.hu.len()]);
            summary.empty_labels += mask.iter().all(|&m| m == 0) as usize;
            let path = labels.join(format!("{case}_{rater}{FILE_ENDING}"));
            let mask = to_xyz(&v, &mask);
            write_volume(&path, &tmp_dir, |p| writer(p).write_nifti(&mask))?;
            summary.label_files += 1;
        }
        summary.studies += 1;
    }
    let _ = std::fs::remove_dir(&tmp_dir);
    let json = serde_json::json!({
        "name": DATASET_NAME,
        "description": "dpersona synthetic phantom, NPC-like layout (3 MR-like channels, 4 raters of documented styles)",
        "channel_names": CHANNELS.iter().enumerate().map(|(k, c)| (k.to_string(), serde_json::Value::from(*c))).collect::<serde_json::Map<_, _>>(),
        "raters": raters,
        "file_ending": FILE_ENDING,
        "rater_order": "identity",
        "numTraining": studies,
        "seed": seed,
    });
    let bytes = serde_json::to_vec_pretty(&json).context("serialising dataset.json")?;
    schemas::atomic::write_file_atomic(&out.join("dataset.json"), &bytes)
        .context("writing dataset.json")?;
    Ok(summary)
}

/// `images/{CASE}_{XXXX}.nii.gz`.
pub fn image_path(images: &Path, case: &str, channel: usize) -> PathBuf {
    images.join(format!("{case}_{channel:04}{FILE_ENDING}"))
}
