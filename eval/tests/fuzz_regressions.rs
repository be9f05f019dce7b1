//! Inputs the fuzzer (fuzz/, target `predictions_folder`) or its review turned up, fed
//! through the real readers of a predictions folder: each must give a clean error that names
//! the file, never a panic or a runaway allocation.
use std::path::Path;

use eval::predictions::list_slices;
use eval::predictions::list_volumes;

/// A tiny valid 1x1 8-bit greyscale PNG (the content does not matter: only names are read).
const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x3a, 0x7e, 0x9b,
    0x55, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0x60, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x01, 0xe2, 0x21, 0xbc, 0x33, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

fn put(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// `rater_<huge>.png` used to size the slice's rater list by the number in the name
/// (`vec![None; k]`): a capacity-overflow panic, or gigabytes, from a file name.
#[test]
fn png_rater_number_too_large_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "S/T/slice_0001/pred_01.png", PNG_1X1);
    put(
        dir.path(),
        "S/T/slice_0001/rater_99999999999999999.png",
        PNG_1X1,
    );
    let err = list_slices(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("rater_99999999999999999.png") && err.contains("rater number"),
        "{err}"
    );
    // A plausible number is still read (rater 2 without a rater 1).
    std::fs::remove_file(
        dir.path()
            .join("S/T/slice_0001/rater_99999999999999999.png"),
    )
    .unwrap();
    put(dir.path(), "S/T/slice_0001/rater_2.png", PNG_1X1);
    let slices = list_slices(dir.path()).unwrap();
    assert_eq!(slices[0].raters.len(), 2);
    assert!(slices[0].raters[0].is_none() && slices[0].raters[1].is_some());
}

/// The same for NIfTI volume folders (`raters.resize(k, None)`).
#[test]
fn nifti_rater_number_too_large_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Only names are read by the listing; the bytes need not be NIfTI.
    put(dir.path(), "S/T/pred_01.nii", b"x");
    put(dir.path(), "S/T/rater_99999999999999999.nii.gz", b"x");
    let err = list_volumes(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("rater_99999999999999999.nii.gz") && err.contains("rater number"),
        "{err}"
    );
}

/// A 102-byte PNG whose header claims 241 x 4294967046 pixels (fuzz artifact, the
/// `image.png` of a mutated seed): `read_grey_png` allocated the claimed 1 TB buffer and
/// aborted. Now refused from the file length, naming the file.
#[test]
fn png_claiming_more_pixels_than_its_bytes_is_refused() {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/png_241x4294967046.png");
    let err = eval::raster::read_grey_png(&src).unwrap_err().to_string();
    assert!(
        err.contains("png_241x4294967046.png")
            && err.contains("241x4294967046 pixels, more than a 102-byte PNG can hold"),
        "{err}"
    );
}

/// The same inconsistent NIfTI as ingest's regression (float32 datatype, bitpix 8) as a
/// prediction volume: the nifti crate panicked converting it.
#[test]
fn nifti_bitpix_disagreeing_with_datatype_is_refused() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions/nifti_float32_bitpix8.nii");
    let err = eval::prediction_volumes::read_probability_volume(&src, 2, 2, 2)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nifti_float32_bitpix8.nii") && err.contains("voxel data is 8 bytes"),
        "{err}"
    );
}
