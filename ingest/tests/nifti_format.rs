//! NiftiFormat on the synthetic NIfTI dataset: masks come back as the phantom drew them
//! (after the documented crop / nearest resample), z-scores are standardised, and bad
//! input is rejected with an error naming the file and the problem.
use std::path::{Path, PathBuf};

use ingest::nifti::{CropMode, NiftiFormat, NiftiParams};
use ingest::study::SourceFormat;
use ingest::synth::nifti as synth;
use ingest::synth::phantom::{self, PhantomVolume};
use ndarray::Array3;

fn phantom_of(i: usize, seed: u64) -> PhantomVolume {
    phantom::generate(&synth::study_params(), synth::study_seed(seed, i))
}

fn mask_at(v: &PhantomVolume, k: usize, z: usize, row: usize, col: usize) -> u8 {
    v.targets[0].rater_masks[k].as_ref().unwrap()[(z * v.height + row) * v.width + col]
}

#[test]
fn crop_keeps_the_phantom_masks_and_standardises_channels() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path();
    synth::write_dataset(raw, 2, 11).unwrap();
    let size = 120usize; // smaller than the 160 grid: row0 = col0 = 20
    let fmt = NiftiFormat::new(NiftiParams {
        crop_size: size as u32,
        crop_mode: CropMode::Centre,
        resample: false,
        empty_slice_share: 1.0,
        empty_slice_seed: 0,
    });
    let studies = fmt.discover(raw).unwrap();
    assert_eq!(
        studies
            .iter()
            .map(|s| s.study_id.as_str())
            .collect::<Vec<_>>(),
        ["synth_000", "synth_001"]
    );
    let facts = fmt.facts();
    assert_eq!(facts.raters, synth::rater_names());
    assert_eq!(facts.channels, ["t1", "t1c", "t2"]);
    assert_eq!(facts.dataset, "synth-npc");
    for (i, st) in studies.iter().enumerate() {
        let v = phantom_of(i, 11);
        let out = fmt.load(st).unwrap();
        assert_eq!(out.volume_shape, [v.depth as u32, 160, 160]);
        assert_eq!(out.slices.len(), v.depth, "share 1.0 keeps every slice");
        for s in &out.slices {
            assert_eq!((s.crop_row0, s.crop_col0), (20, 20));
            assert_eq!(
                (s.spacing_row_mm, s.spacing_col_mm),
                (v.spacing_mm[1] as f32 as f64, v.spacing_mm[2] as f32 as f64)
            );
            let z = s.slice_index as usize;
            for k in 0..4 {
                for r in 0..size {
                    for c in 0..size {
                        assert_eq!(
                            s.masks[(k * size + r) * size + c],
                            mask_at(&v, k, z, r + 20, c + 20),
                            "{} z{z} rater {k} ({r},{c})",
                            st.study_id
                        );
                    }
                }
            }
        }
        // z_mm follows the affine: origin + z * spacing.
        let a = synth::case_affine(&v, i);
        assert!((out.slices[3].z_mm - (a[2][3] + 3.0 * a[2][2])).abs() < 1e-3);
    }
    // Full-grid crop of every slice = the whole volume: each channel has mean 0, std 1.
    let full = NiftiFormat::new(NiftiParams {
        crop_size: 160,
        resample: false,
        empty_slice_share: 1.0,
        ..NiftiParams::default()
    });
    let st = &full.discover(raw).unwrap()[0];
    let out = full.load(st).unwrap();
    for c in 0..3 {
        let vals: Vec<f64> = out
            .slices
            .iter()
            .flat_map(|s| {
                s.image[c * 160 * 160..(c + 1) * 160 * 160]
                    .iter()
                    .map(|&x| x as f64)
            })
            .collect();
        let n = vals.len() as f64;
        let mean = vals.iter().sum::<f64>() / n;
        let std = (vals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(
            mean.abs() < 1e-4 && (std - 1.0).abs() < 1e-4,
            "channel {c}: mean {mean} std {std}"
        );
    }
}

#[test]
fn resample_is_scipy_style_nearest_and_empty_share_is_seeded() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path();
    synth::write_dataset(raw, 1, 3).unwrap();
    let v = phantom_of(0, 3);
    let p = NiftiParams::default(); // 128, resample, share 0.1
    let fmt = NiftiFormat::new(p.clone());
    let st = &fmt.discover(raw).unwrap()[0];
    let out = fmt.load(st).unwrap();
    let marked: Vec<usize> = (0..v.depth)
        .filter(|&z| {
            (0..4).any(|k| {
                (0..v.height * v.width).any(|i| mask_at(&v, k, z, i / v.width, i % v.width) != 0)
            })
        })
        .collect();
    let n_empty = v.depth - marked.len();
    assert_eq!(
        out.slices.len(),
        marked.len() + (0.1 * n_empty as f64).round() as usize
    );
    for z in &marked {
        assert!(
            out.slices.iter().any(|s| s.slice_index as usize == *z),
            "marked slice {z} kept"
        );
    }
    // scipy.ndimage.zoom(order=0) maps output o to input round(o * (n_in - 1) / (n_out - 1)).
    let idx = |o: usize| ((o as f64 * 159.0 / 127.0) + 0.5).floor() as usize;
    for s in &out.slices {
        assert_eq!(
            (s.source_height, s.source_width, s.crop_row0),
            (128, 128, 0)
        );
        for k in 0..4 {
            for r in 0..128 {
                for c in 0..128 {
                    assert_eq!(
                        s.masks[(k * 128 + r) * 128 + c],
                        mask_at(&v, k, s.slice_index as usize, idx(r), idx(c))
                    );
                }
            }
        }
    }
    // Same seed, same rows; the empty slices kept depend on the seed only.
    assert_eq!(fmt.load(st).unwrap(), out);
}

fn dataset(raw: &Path) -> (NiftiFormat, ingest::study::StudyInput) {
    let fmt = NiftiFormat::new(NiftiParams::default());
    let st = fmt.discover(raw).unwrap().remove(0);
    (fmt, st)
}

/// Rewrites `file` with `data` (same header as before apart from what `edit` changes).
fn rewrite(file: &Path, data: &Array3<f32>, edit: impl FnOnce(&mut nifti::NiftiHeader)) {
    use nifti::NiftiObject;
    let mut h = nifti::ReaderOptions::new()
        .read_file(file)
        .unwrap()
        .header()
        .clone();
    edit(&mut h);
    nifti::writer::WriterOptions::new(file)
        .reference_header(&h)
        .write_nifti(data)
        .unwrap();
}

fn fresh(seed: u64) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().to_path_buf();
    synth::write_dataset(&raw, 1, seed).unwrap();
    (tmp, raw)
}

fn assert_rejects(raw: &Path, file: &Path, what: &str) {
    let (fmt, st) = dataset(raw);
    let err = fmt.load(&st).unwrap_err();
    assert_eq!(err.file, file, "{err}");
    assert!(
        err.to_string().contains(what),
        "`{err}` should say `{what}`"
    );
}

#[test]
fn bad_inputs_name_the_file_and_the_problem() {
    let label = |raw: &Path, r: &str| raw.join("labels").join(format!("synth_000_{r}.nii.gz"));
    let image = |raw: &Path, c: usize| synth::image_path(&raw.join("images"), "synth_000", c);
    // Missing rater file.
    let (_t, raw) = fresh(1);
    std::fs::remove_file(label(&raw, "shifted")).unwrap();
    assert_rejects(
        &raw,
        &label(&raw, "shifted"),
        "missing label file of rater `shifted`",
    );
    // Missing channel file (another channel still names the case).
    let (_t, raw) = fresh(1);
    std::fs::remove_file(image(&raw, 1)).unwrap();
    assert_rejects(
        &raw,
        &image(&raw, 1),
        "missing channel file (channel 1, `t1c`)",
    );
    // Label shape disagrees with the images.
    let (_t, raw) = fresh(1);
    rewrite(
        &label(&raw, "generous"),
        &Array3::zeros((160, 150, 16)),
        |_| {},
    );
    assert_rejects(
        &raw,
        &label(&raw, "generous"),
        "shape [160, 150, 16] differs from [160, 160, 16]",
    );
    // Image affine disagrees.
    let (_t, raw) = fresh(1);
    rewrite(
        &image(&raw, 2),
        &Array3::from_elem((160, 160, 16), 1.0),
        |h| h.srow_x[3] += 5.0,
    );
    assert_rejects(&raw, &image(&raw, 2), "affine");
    // NaN and Inf voxels.
    for bad in [f32::NAN, f32::INFINITY] {
        let (_t, raw) = fresh(1);
        let mut data = Array3::from_elem((160, 160, 16), 3.0f32);
        data[[4, 5, 6]] = bad;
        rewrite(&image(&raw, 0), &data, |_| {});
        assert_rejects(
            &raw,
            &image(&raw, 0),
            "1 voxels are NaN or infinite (first at voxel x=4, y=5, z=6",
        );
    }
    // Malformed dataset.json: the whole input is refused, naming dataset.json.
    let (_t, raw) = fresh(1);
    std::fs::write(
        raw.join("dataset.json"),
        r#"{"channel_names": {"0": "t1"}, "raters": "a1", "file_ending": ".nii.gz"}"#,
    )
    .unwrap();
    let err = NiftiFormat::new(NiftiParams::default())
        .discover(&raw)
        .unwrap_err();
    assert_eq!(err.file, raw.join("dataset.json"));
    assert!(
        err.to_string()
            .contains("`raters` must be a non-empty list"),
        "{err}"
    );
}
