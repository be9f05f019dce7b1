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
/// dicom-object allocated and zeroed the claim (2.3 GB, 16 s) before failing; the walk
/// of element headers (ingest/src/lidc/claimed_lengths.rs) now refuses the file first.
#[test]
fn rle_with_too_few_segments_is_refused_before_allocating() {
    let path = artifact("rle_bad_header.dcm");
    let errors = read_all_ways(&path);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("rle_bad_header.dcm")
                && e.contains("file meta element (0002,0002) has no valid VR"),
            "{e}"
        );
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
/// the process aborts. The walk of element headers now refuses the file first.
#[test]
fn string_element_claiming_more_than_the_file_is_refused() {
    let bytes = std::fs::read(artifact("string_claims_1_8gb.bin")).unwrap();
    let sep = b"--DPERSONA-SLICE--";
    let at = bytes.windows(sep.len()).position(|w| w == sep).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slice.dcm");
    std::fs::write(&path, &bytes[..at]).unwrap();
    let errors = read_all_ways(&path);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("slice.dcm") && e.contains("bytes are left in the file"),
            "{e}"
        );
    }
    println!("{errors:#?}");
}

/// The claimed-length walk refuses no file pydicom reads whole: every file of pydicom's
/// test data that `dcmread` parses with every element's value read (sequences included)
/// passes the check (explicit and implicit VR, big endian, deflated, encapsulated pixel
/// data, nested sequences of defined and undefined length). Three files pydicom tolerates
/// really are cut short, and are refused (pydicom reads what is there).
#[test]
fn claimed_length_walk_accepts_every_file_pydicom_reads() {
    let script = r#"
import glob, os, pydicom, pydicom.data
d = os.path.dirname(pydicom.data.get_testdata_file('CT_small.dcm'))
for f in sorted(glob.glob(os.path.join(d, '**', '*'), recursive=True)):
    if not os.path.isfile(f):
        continue
    try:
        with open(f, 'rb') as fh:
            head = fh.read(132)
        if head[128:132] != b'DICM' and head[:4] != b'DICM':
            continue
        ds = pydicom.dcmread(f)
        ds.walk(lambda ds, e: e.value)
        print(f)
    except Exception:
        pass
"#;
    let out = std::process::Command::new(testkit::python())
        .args(["-c", script])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(files.len() > 50, "only {} files: {files:?}", files.len());
    // Cut short: pydicom reads what is there (values and sequences read lazily).
    let truncated = [
        (
            "MR_truncated.dcm",
            "(7FE0,0010) claims a value of 8192 bytes, but only 8130",
        ),
        (
            "DICOMDIR-nooffset",
            "(FFFE,E000) claims a value of 248 bytes, but only 224",
        ),
        (
            "rtplan_truncated.dcm",
            "(300A,00B0) claims a value of 976 bytes, but only 711",
        ),
    ];
    for (name, why) in truncated {
        let f = files.iter().find(|f| f.ends_with(name)).expect(name);
        let e = ingest::lidc::claimed_lengths::check_file(Path::new(f))
            .unwrap_err()
            .to_string();
        assert!(e.contains(name) && e.contains(why), "{e}");
    }
    let refused: Vec<String> = files
        .iter()
        .filter(|f| !truncated.iter().any(|(n, _)| f.ends_with(n)))
        .filter_map(|f| {
            ingest::lidc::claimed_lengths::check_file(Path::new(f))
                .err()
                .map(|e| e.to_string())
        })
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
    println!(
        "{} files pydicom reads whole: the {} cut short refused, no other",
        files.len(),
        truncated.len()
    );
}

/// An HDF5 file (target `mmis_h5`) whose dataset header holds a v1/v2 contiguous layout
/// message with dimensions that multiply past `u64`: hdf5-reader overflowed (`attempt to
/// multiply with overflow` in `messages::layout::parse_v1_v2`) while listing the root
/// group. The adapter (ingest/src/mmis/h5.rs) turns the panic into an error; the MMIS
/// reader adds the file's path to it.
#[test]
fn hdf5_layout_dimensions_overflowing_u64_are_refused() {
    use ingest::mmis::format::{CHANNELS, LABELS, SPACING};
    use ingest::mmis::h5::H5File;
    let path = artifact("h5_layout_dims_overflow.h5");
    let f = H5File::read(&path).expect("the superblock parses");
    let mut errors = Vec::new();
    for key in CHANNELS.iter().chain(&LABELS).chain(&[SPACING]) {
        match f.has(key) {
            Err(e) => errors.push(e),
            Ok(true) => errors.extend(f.read_f64(key).err()),
            Ok(false) => {}
        }
    }
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(
            e.contains("malformed HDF5 file: hdf5-reader panicked while listing the root group")
                && e.contains("attempt to multiply with overflow"),
            "{e}"
        );
    }
    println!("{errors:#?}");
}
