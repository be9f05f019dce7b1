//! Our NIfTI reader against nibabel: nibabel's own test files (integer, float, scaled, 4D,
//! NaN voxels, big-endian) and the files the synthetic NIfTI writer produces.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{python, run_script};

use ingest::nifti::volume::read_volume;
use ingest::synth::nifti as synth;
use ingest::synth::phantom;

fn nibabel_data() -> PathBuf {
    let out = Command::new(python())
        .args(["-c", "import nibabel, os; print(os.path.join(os.path.dirname(nibabel.__file__), 'tests', 'data'))"])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Reads each file with our reader, dumps voxels + affine, and has nibabel check them.
fn check_with_nibabel(files: &[PathBuf], dir: &Path) -> String {
    let mut entries = vec![];
    for (i, f) in files.iter().enumerate() {
        let v = read_volume(f).unwrap_or_else(|e| panic!("{e}"));
        let data = dir.join(format!("vol{i}.f64"));
        let bytes: Vec<u8> = v.data.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&data, bytes).unwrap();
        entries
            .push(serde_json::json!({"file": f, "dims": v.dims, "data": data, "affine": v.affine}));
    }
    let manifest = dir.join("manifest.json");
    std::fs::write(&manifest, serde_json::to_vec(&entries).unwrap()).unwrap();
    let (ok, text) = run_script("nifti_volumes_vs_nibabel.py", &[manifest.as_os_str()]);
    assert!(ok, "nibabel disagrees:\n{text}");
    text
}

#[test]
fn nibabel_test_files_read_like_get_fdata() {
    let data = nibabel_data();
    let names = [
        "anatomical.nii",
        "functional.nii",
        "example4d.nii.gz",
        "standard.nii.gz",
        "reoriented_anat_moved.nii",
        "resampled_anat_moved.nii",
    ];
    let files: Vec<PathBuf> = names.iter().map(|n| data.join(n)).collect();
    let tmp = tempfile::tempdir().unwrap();
    let text = check_with_nibabel(&files, tmp.path());
    assert!(text.contains("6/6 volumes match nibabel"), "{text}");
    // The NaN file really has NaNs, and the scaled one really is scaled (not integers).
    let moved = read_volume(&data.join("resampled_anat_moved.nii")).unwrap();
    assert!(moved.data.iter().filter(|x| x.is_nan()).count() > 0);
    let func = read_volume(&data.join("functional.nii")).unwrap();
    assert_eq!(func.dims.len(), 4);
    assert!(func.data.iter().any(|x| x.fract() != 0.0));
}

#[test]
fn nifti2_files_get_a_clear_error() {
    let data = nibabel_data();
    for name in ["example_nifti2.nii.gz", "row_major.dconn.nii"] {
        let f = data.join(name);
        let err = read_volume(&f).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.file, f);
        assert!(
            msg.contains("NIfTI-2") && msg.contains("only NIfTI-1"),
            "{msg}"
        );
    }
}

#[test]
fn nibabel_reads_what_the_synthetic_writer_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let s = synth::write_dataset(&raw, 2, 5).unwrap();
    assert_eq!((s.studies, s.image_files, s.label_files), (2, 6, 8));
    let mut files = vec![];
    let raters = synth::rater_names();
    for i in 0..2 {
        let case = synth::case_id(i);
        let v = phantom::generate(&synth::study_params(), synth::study_seed(5, i));
        let want_affine = synth::case_affine(&v, i);
        for c in 0..3 {
            files.push(synth::image_path(&raw.join("images"), &case, c));
        }
        for (k, r) in raters.iter().enumerate() {
            let f = raw.join("labels").join(format!("{case}_{r}.nii.gz"));
            // Our reader gives back the phantom's mask in the documented [x, y, z] = [col, row, z] order.
            let vol = read_volume(&f).unwrap();
            assert_eq!(vol.dims, vec![v.width, v.height, v.depth]);
            for (a, b) in vol
                .affine
                .iter()
                .flatten()
                .zip(want_affine.iter().flatten())
            {
                assert!(
                    (a - b).abs() < 1e-4,
                    "{f:?}: affine {:?} vs {want_affine:?}",
                    vol.affine
                );
            }
            let mask = v.targets[0].rater_masks[k].as_ref().unwrap();
            for z in 0..v.depth {
                for row in 0..v.height {
                    for col in 0..v.width {
                        assert_eq!(
                            vol.at(col, row, z),
                            mask[(z * v.height + row) * v.width + col] as f64
                        );
                    }
                }
            }
            files.push(f);
        }
    }
    let text = check_with_nibabel(&files, tmp.path());
    assert!(text.contains("14/14 volumes match nibabel"), "{text}");
}
