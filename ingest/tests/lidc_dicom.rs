//! Our DICOM reader against pydicom: every file `synth lidc` writes and pydicom's own test
//! files (tests/py/dicom_values_vs_pydicom.py compares the values).

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{python, run_script};

use ingest::lidc::read_dicom_pixels;

fn pydicom_test_files() -> PathBuf {
    let out = Command::new(python())
        .args(["-c", "import pydicom.data, os; print(os.path.dirname(pydicom.data.get_testdata_file('CT_small.dcm')))"])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Decodes each file with our reader and has pydicom check the values.
fn compare(files: &[PathBuf], work: &Path) -> String {
    let mut entries = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match read_dicom_pixels(f) {
            Ok(px) => {
                let raw = work.join(format!("v{i}.f64"));
                let bytes: Vec<u8> = px.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                std::fs::write(&raw, bytes).unwrap();
                entries.push(serde_json::json!({"path": f, "values": raw,
                    "shape": [px.frames, px.rows, px.columns, px.samples_per_pixel]}));
            }
            Err(e) => entries.push(serde_json::json!({"path": f, "error": e.to_string()})),
        }
    }
    let manifest = work.join("manifest.json");
    std::fs::write(&manifest, serde_json::to_vec(&entries).unwrap()).unwrap();
    let (ok, text) = run_script("dicom_values_vs_pydicom.py", &[manifest.as_os_str()]);
    assert!(ok, "pydicom disagrees:\n{text}");
    text
}

#[test]
fn synth_lidc_files_read_the_same_in_pydicom() {
    let dir = tempfile::tempdir().unwrap();
    let summary = ingest::synth::lidc::write_dataset(dir.path(), 1, 7).unwrap();
    let files = testkit::files_with_extension(dir.path(), "dcm");
    assert_eq!(files.len(), summary.dicom_files);
    let work = tempfile::tempdir().unwrap();
    let text = compare(&files, work.path());
    assert_eq!(text.matches("EQUAL").count(), files.len());
}

#[test]
fn pydicom_test_files_match_or_are_refused_by_name() {
    let dir = pydicom_test_files();
    let supported = [
        "CT_small.dcm",
        "MR_small.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_RLE.dcm",
        "JPEG2000.dcm",
        "MR_small_jp2klossless.dcm",
        "image_dfl.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
    ];
    let files: Vec<PathBuf> = supported.iter().map(|f| dir.join(f)).collect();
    let work = tempfile::tempdir().unwrap();
    let text = compare(&files, work.path());
    assert_eq!(
        text.matches("EQUAL").count(),
        supported.len(),
        "every supported file must decode equal"
    );

    // JPEG-LS is not compiled in (the `charls` decoder needs cmake + C++): a clear refusal.
    for f in ["MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_16.dcm"] {
        let p = dir.join(f);
        if !p.exists() {
            continue;
        }
        let e = read_dicom_pixels(&p).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(f), "{msg}");
        assert!(
            msg.contains("unsupported transfer syntax 1.2.840.10008.1.2.4.8"),
            "{msg}"
        );
    }
}
