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
/// really are cut short, and are refused (pydicom reads what is there); two are encoded
/// against their transfer syntax and one holds a UN sequence in implicit VR that
/// dicom-parser misreads: those are refused for what dicom-object would read.
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
        // Encoded against their transfer syntax, which pydicom detects and dicom-object
        // does not: an implicit VR data set under an explicit VR transfer syntax, whose
        // first element dicom-object reads as UN claiming 1.2 GB (it allocated 1.2 GB and
        // took 4 s before the walk read unknown VRs as UN); and a file meta group without
        // a transfer syntax (dicom-object refuses it anyway).
        (
            "SC_rgb_jpeg.dcm",
            "(0008,0008) (VR bytes 18 00, no VR code: read as UN, as dicom-object reads it) \
             claims a value of 1230128452 bytes",
        ),
        // Valid, but beyond dicom-parser: a UN of undefined length whose items are implicit
        // VR (PS3.5 6.2.2); dicom-parser reads them in the data set's explicit VR, finds
        // a 3.7 GB claim and allocated it (3.7 GB RSS) before the walk followed UN too.
        (
            "UN_sequence.dcm",
            "(0008,1115) (VR bytes FF FF, no VR code: read as UN, as dicom-object reads it) \
             claims a value of 3758161918 bytes",
        ),
        (
            "meta_missing_tsyntax.dcm",
            "(0001,0001) (VR bytes FF FF, no VR code: read as UN, as dicom-object reads it) \
             claims a value of 3758161918 bytes",
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
        "{} files pydicom reads whole: the {} cut short or misencoded refused, no other",
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

/// Files written by h5py and pydicom (tests/py/claimed_sizes.py) whose headers claim far
/// more data than they hold, in a fresh directory.
fn claimed_size_fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    testkit::run_py("claimed_sizes.py", &[dir.path()]);
    dir
}

/// An MMIS key's read through the real adapter, as the MMIS reader does it.
fn read_h5_key(path: &Path, key: &str) -> Result<ingest::mmis::h5::Array<f64>, String> {
    ingest::mmis::h5::H5File::read(path)?.read_f64(key)
}

/// h5py writes a dataset created without data as a header only (1.4 KB here): hdf5-reader
/// then reads the whole claimed array as fill values, allocating it first (an 8 GB claim
/// costs 8 GB). The claim is now checked against the file before the read (fuzz target
/// `mmis_h5`, whose peak RSS rose to 812 MB): an uncompressed dataset must be in the file,
/// a chunked one can decode to at most 1032 x the file (DEFLATE's limit).
#[test]
fn hdf5_datasets_claiming_more_than_the_file_holds_are_refused() {
    let dir = claimed_size_fixtures();
    let e = read_h5_key(&dir.path().join("h5_unwritten_contiguous.h5"), "t1").unwrap_err();
    assert!(
        e.contains("`t1`: the dataset claims 100 x 100 x 100 values of 8 bytes (8000000 bytes, stored uncompressed), more than the file's 1400 bytes can hold"),
        "{e}"
    );
    let e = read_h5_key(&dir.path().join("h5_unwritten_chunked.h5"), "label_a1").unwrap_err();
    assert!(
        e.contains("`label_a1`: the dataset claims 200 x 200 x 200 values of 1 bytes (8000000 bytes, stored chunked (compressed at most 1032:1, DEFLATE's limit)), more than the file's 1400 bytes can hold"),
        "{e}"
    );
    println!("{e}");
}

/// The bound refuses no real file: the most compressible dataset h5py can write (zeros,
/// gzip level 9 + shuffle, 4 MB in an 8.6 KB file, about 490:1) is read, and equals zeros.
#[test]
fn hdf5_extremely_compressed_zeros_are_still_read() {
    let dir = claimed_size_fixtures();
    let a = read_h5_key(&dir.path().join("h5_zeros_gzip9.h5"), "label_a1").unwrap();
    assert_eq!(a.shape, vec![64, 256, 256]);
    assert_eq!(a.data.len(), 64 * 256 * 256);
    assert!(a.data.iter().all(|&v| v == 0.0));
}

/// Every key an MMIS case holds, read as the fuzz target `mmis_h5` reads them; the errors.
fn read_mmis_keys(path: &Path) -> Vec<String> {
    use ingest::mmis::format::{CHANNELS, LABELS, SPACING};
    use ingest::mmis::h5::H5File;
    let f = match H5File::read(path) {
        Ok(f) => f,
        Err(e) => return vec![e],
    };
    let mut errors = Vec::new();
    for key in CHANNELS.iter().chain(&LABELS).chain(&[SPACING]) {
        match f.has(key) {
            Err(e) => errors.push(e),
            Ok(true) => errors.extend(f.read_f64(key).err()),
            Ok(false) => {}
        }
    }
    errors
}

/// A 4017-byte file the fuzz target `mmis_h5` turned up (under `-rss_limit_mb=512`:
/// 847 MB; 1.6 GB without the address-space cap): `t1` claims 2 x 4 x 16777220 float32
/// values (537 MB) stored uncompressed, and `label_a4` 79 TB, which hdf5-reader allocated
/// (and filled) before finding the data absent. Now refused before the read, naming the
/// key; the MMIS reader adds the file's path.
#[test]
fn fuzzed_hdf5_claims_past_the_file_are_refused() {
    let errors = read_mmis_keys(&artifact("h5_fuzzed_claim.h5"));
    println!("{errors:#?}");
    let want = [
        "`t1`: the dataset claims 2 x 4 x 16777220 values of 4 bytes (536871040 bytes, stored \
         uncompressed), more than the file's 4017 bytes can hold",
        "`t2`: cannot read the values",
        "`label_a4`: the dataset claims 2 x 9895604649988 x 4 values of 1 bytes \
         (79164837199904 bytes, stored uncompressed), more than the file's 4017 bytes can hold",
    ];
    assert_eq!(errors.len(), want.len(), "{errors:#?}");
    for (e, w) in errors.iter().zip(want) {
        assert!(e.contains(w), "{e}");
    }
}

/// JPEG-encapsulated pixel data whose header claims many 512 x 512 x 16-bit frames: the
/// JPEG decoder of dicom-transfer-syntax-registry zero-fills the claimed frames before
/// decoding (its guard scales the compressed size by NumberOfFrames, twice), so an 830-byte
/// file cost 524 MB and a 47 KB one 210 MB per read (found reading the decoders while
/// chasing the `dicom_series` fuzz target's 951 MB peak). Now refused first
/// (ingest/src/lidc/pixel_claims.rs), naming the file.
#[test]
fn encapsulated_pixel_data_claiming_more_than_it_holds_is_refused() {
    let dir = claimed_size_fixtures();
    let cases = [
        (
            "jpeg_1000_frames.dcm",
            "NumberOfFrames 1000 but the encapsulated pixel data holds 1 fragment(s)",
        ),
        (
            "jpeg_big_and_empty.dcm",
            "the header claims 400 frame(s) of 512x512x1 samples of 16 bits (209715200 bytes decoded), more than 64 times the 41758 bytes of compressed pixel data present",
        ),
    ];
    for (name, why) in cases {
        let path = dir.path().join(name);
        let e = read_dicom_pixels(&path).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(why), "{e}");
        println!("{e}");
    }
}

/// A slice (fuzz target `dicom_series`, 982 bytes) whose element (0028,6F43) has the VR
/// bytes "ul" (75 6C), no VR code: dicom-parser reads such an element as UN, whose 32-bit length
/// (here the text " not", 544501614) it then allocates and zero-fills: 565 MB, found in
/// seconds under `-rss_limit_mb=512`. The walk of element headers stopped without a
/// verdict at an unknown VR; it now reads it as UN too and refuses the claim.
#[test]
fn unknown_vr_read_as_un_claiming_519_mb_is_refused() {
    let path = artifact("dicom_unknown_vr_claims_519mb.dcm");
    let errors = read_all_ways(&path);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("dicom_unknown_vr_claims_519mb.dcm")
                && e.contains(
                    "element (0028,6F43) (VR bytes 75 6C, no VR code: read as UN, as \
                     dicom-object reads it) claims a value of 544501614 bytes"
                ),
            "{e}"
        );
    }
    println!("{errors:#?}");
}

/// A slice (fuzz target `dicom_series`, first of a 1438-byte input) whose StudyInstanceUID
/// is encoded with VR UL and length 6: dicom-parser reads one 4-byte value but counts 6
/// bytes, so it reads the next header 2 bytes early, finds no VR code there, reads it as UN
/// and allocates the "length" 0x2E310008 (740 MB) made of the UID's bytes: 789 MB RSS.
/// Every header checked by the walk was sound; a binary value whose length is not a
/// multiple of its size is now refused first.
#[test]
fn binary_value_of_misaligned_length_is_refused_before_the_parser_loses_step() {
    let path = artifact("dicom_ul_length_6_desync.dcm");
    let errors = read_all_ways(&path);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("dicom_ul_length_6_desync.dcm")
                && e.contains(
                    "element (0020,000D) of VR UL has a length of 6 bytes, not a multiple of \
                     its 4-byte values"
                ),
            "{e}"
        );
    }
    println!("{errors:#?}");
}

/// A slice (fuzz target `dicom_series`, first of a 1133-byte input) with BitsStored 61452
/// and BitsAllocated 16: dicom-pixeldata's modality LUT of `2^BitsStored` entries asserts
/// `bits_stored <= 32` and panicked (a BitsStored of 28 would have cost a 2 GB table). Now
/// refused before decoding, naming the file.
#[test]
fn bits_stored_beyond_bits_allocated_is_refused() {
    let path = artifact("dicom_bits_stored_61452.dcm");
    let errors = read_all_ways(&path);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("dicom_bits_stored_61452.dcm")
                && e.contains("BitsStored 61452 is not between 1 and BitsAllocated 16"),
            "{e}"
        );
    }
    println!("{errors:#?}");
}

/// A slice (fuzz target `dicom_series`, 977 bytes, RLE Lossless) whose last element
/// (42E0,104F) has VR bytes F7 7F (read as UN) and an undefined length: dicom-parser reads
/// it as a sequence, whose item holds an element claiming 0x1F1F1F1F bytes (522 MB; 543 MB
/// RSS). The walk stopped without a verdict at a UN of undefined length; it now walks it
/// as a sequence too and refuses the claim.
#[test]
fn un_of_undefined_length_is_walked_as_a_sequence() {
    let path = artifact("dicom_un_undefined_length.dcm");
    let errors = read_all_ways(&path);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("dicom_un_undefined_length.dcm")
                && e.contains("claims a value of 522133279 bytes"),
            "{e}"
        );
    }
    println!("{errors:#?}");
}

/// A slice (fuzz target `dicom_series`, 736 bytes) with an item header (FFFE,E000) of 36
/// bytes at the top level of its data set: dicom-parser reads it there as a UN element and
/// skips its 36 bytes, while the walk entered it as a sequence item and so read other
/// headers than the parser, which then found (312E,3030) claiming 875442478 bytes and
/// allocated them (887 MB). The walk now tracks sequences and items as the parser does.
#[test]
fn item_outside_a_sequence_is_walked_as_the_parser_reads_it() {
    let path = artifact("dicom_item_at_top_level.dcm");
    let errors = read_all_ways(&path);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("dicom_item_at_top_level.dcm")
                && e.contains(
                    "element (312E,3030) (VR bytes 30 38, no VR code: read as UN, as \
                     dicom-object reads it) claims a value of 875442478 bytes"
                ),
            "{e}"
        );
    }
    println!("{errors:#?}");
}

/// A slice (fuzz target `dicom_series`, 477 bytes) whose file meta group holds an element
/// of another group, (E702,0002): dicom-object reads the meta group up to its group length
/// whatever the tags, while the walk ended the group at the first tag of another group, so
/// the two started the data set at different bytes and dicom-object allocated a 772 MB
/// claim (786 MB RSS). The walk now reads the group as dicom-object does, and meets the
/// invalid VR of (0002,8F13) in it.
#[test]
fn meta_group_is_walked_to_its_group_length() {
    let path = artifact("dicom_meta_group_off_group_tag.dcm");
    let errors = read_all_ways(&path);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("dicom_meta_group_off_group_tag.dcm")
                && e.contains("file meta element (0002,8F13) has no valid VR (bytes 00 53)"),
            "{e}"
        );
    }
    println!("{errors:#?}");
}

/// A slice (fuzz target `dicom_series`, 682 bytes) whose (10E0,7F00) is OB of undefined
/// length: only Pixel Data of undefined length holds fragments, so dicom-parser reads it as
/// a sequence, and an element in its item claims 522133279 bytes (542 MB RSS). The walk
/// skipped the items as fragments; it now walks them as a sequence's.
#[test]
fn ob_of_undefined_length_outside_pixel_data_is_walked_as_a_sequence() {
    let path = artifact("dicom_ob_undefined_length_not_pixel_data.dcm");
    let errors = read_all_ways(&path);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.contains("dicom_ob_undefined_length_not_pixel_data.dcm")
                && e.contains("claims a value of 522133279 bytes"),
            "{e}"
        );
    }
    println!("{errors:#?}");
}
