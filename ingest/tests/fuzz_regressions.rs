//! Inputs the fuzzer (fuzz/, target `dicom_series`) turned up, fed through the real
//! readers: each must give a clean error naming the file, never a panic or a runaway
//! allocation. The files are the fuzzer's minimised artifacts (tests/fuzz_regressions/).
use std::path::{Path, PathBuf};

use ingest::lidc::{read_dicom_pixels, read_series};

fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(name)
}

/// Every way ingest reads one slice file: the series header pass, then the slice's samples
/// (what a nodule's crop decodes), and the single-image reader. Returns the errors.
fn read_all_ways(path: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    match read_series(&[path.to_path_buf()]) {
        Err(e) => errors.push(e.to_string()),
        Ok(series) => {
            for k in 0..series.slices.len() {
                if let Err(e) = series.slice_samples(k) {
                    errors.push(e.to_string());
                }
            }
        }
    }
    if let Err(e) = read_dicom_pixels(path) {
        errors.push(e.to_string());
    }
    errors
}

/// An RLE Lossless fragment whose segment offsets point past its end: the decoder of
/// dicom-transfer-syntax-registry panicked (`range end index 4194316 out of range for slice
/// of length 208`).
#[test]
fn rle_segment_offsets_past_the_fragment_are_refused() {
    let path = artifact("rle_segment_offsets.dcm");
    let errors = read_all_ways(&path);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("rle_segment_offsets.dcm") && e.contains("corrupt RLE Lossless pixel data"),
            "{e}"
        );
    }
}

/// The 194-byte minimised form of the same input (libFuzzer's tmin drifted to another
/// fault): a file meta element claiming 2.3 GB in a 194-byte file.
///
/// Ignored: the file is refused cleanly, but only after dicom-object has allocated and
/// zeroed a file-meta element's claimed length (2.3 GB, 16 s): an open finding (README,
/// "Fuzzing"); run it with `--ignored` once dicom reading bounds claimed lengths.
#[test]
#[ignore = "open: dicom-object allocates a meta element's claimed 2.3 GB before reading it"]
fn rle_with_too_few_segments_is_refused_before_allocating() {
    let path = artifact("rle_bad_header.dcm");
    let errors = read_all_ways(&path);
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(e.contains("rle_bad_header.dcm"), "{e}");
    }
    println!("{errors:#?}");
}

/// A float32 NIfTI (written by nibabel) whose header says bitpix 8, the inconsistency the
/// fuzzer (target `nifti_volume`) found: the nifti crate read 1 byte per voxel and then
/// panicked (`Inconsistent raw data size`) converting them as float32.
#[test]
fn nifti_bitpix_disagreeing_with_datatype_is_refused() {
    let path = artifact("nifti_float32_bitpix8.nii");
    let err = ingest::nifti::volume::read_volume(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nifti_float32_bitpix8.nii")
            && err
                .contains("voxel data is 8 bytes, but dim [2, 2, 2] of datatype Float32 needs 32"),
        "{err}"
    );
}

/// Two slices (the fuzz input's `--DPERSONA-SLICE--` separator) of which the first has a
/// string element claiming 1.8 GB: dicom-parser's `read_value_strs` allocates the claim
/// infallibly (`resize_with`), so on a machine (or address-space cap) without 1.8 GB free
/// the process aborts. Open, like the test above.
#[test]
#[ignore = "open: dicom-parser allocates a string element's claimed 1.8 GB infallibly"]
fn string_element_claiming_more_than_the_file_is_refused() {
    let bytes = std::fs::read(artifact("string_claims_1_8gb.bin")).unwrap();
    let sep = b"--DPERSONA-SLICE--";
    let at = bytes.windows(sep.len()).position(|w| w == sep).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slice.dcm");
    std::fs::write(&path, &bytes[..at]).unwrap();
    let errors = read_all_ways(&path);
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(e.contains("slice.dcm"), "{e}");
    }
}
