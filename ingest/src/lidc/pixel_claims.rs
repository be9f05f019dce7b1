//! Checks the size of the image a DICOM header claims against the encapsulated (compressed)
//! pixel data actually present, before dicom-pixeldata decodes it.
//!
//! Why: the decoders of dicom-transfer-syntax-registry zero-fill an output buffer of
//! `Rows x Columns x SamplesPerPixel x BitsAllocated/8 x NumberOfFrames` bytes before they
//! decode a byte. They mean to refuse a buffer above 16 MiB that is more than 64 times the
//! compressed data (their JPEG and JPEG 2000 threshold; PackBits, RLE Lossless's coding, can
//! expand at most 64:1 either), but estimate the compressed size as the first fragment's
//! length times NumberOfFrames (the JPEG adapter multiplies by it twice), so a file claiming
//! many frames, or holding one large fragment and many tiny ones, passes their guard: an
//! 830-byte file claiming 1000 frames of 512 x 512 x 16 bits cost 524 MB per read (found
//! reading the decoders while chasing the fuzz target `dicom_series`'s 951 MB peak).
//!
//! The rules, both from the format: a fragment holds data of at most one frame (DICOM PS3.5
//! A.4), so NumberOfFrames may not exceed the fragments present; and the decoded frames may
//! not exceed [`FLOOR_BYTES`] or, above it, [`MAX_RATIO`] times the bytes of all fragments:
//! the registry's own guard, applied to what the file really holds. Native (uncompressed)
//! pixel data needs no check of its size: it is decoded by copying the bytes present.
//!
//! Also checked, for every transfer syntax: BitsStored between 1 and BitsAllocated (PS3.3
//! C.7.6.3.1.1). dicom-pixeldata builds a modality LUT of `2^BitsStored` entries for 16-bit
//! samples and asserts `1 <= BitsStored <= 32`: a fuzzed BitsStored of 61452 panicked
//! there, and 28 would have cost a 2 GB table.
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use crate::study::StudyError;

/// Decoded pixel data below this size is never refused (dicom-transfer-syntax-registry's
/// `DANGEROUS_CAPACITY`: 16 MiB, a 2048 x 2048 x 4-byte frame).
pub const FLOOR_BYTES: u64 = 16 * 1024 * 1024;

/// Largest expansion of compressed pixel data accepted above [`FLOOR_BYTES`]: the
/// registry's `COMPRESSION_RATIO_THRESHOLD` for JPEG and JPEG 2000, and the most PackBits
/// (RLE Lossless) can expand (a 2-byte run gives 128 bytes).
pub const MAX_RATIO: u64 = 64;

/// The fragments of encapsulated Pixel Data, or `None` for native (or no) pixel data; the
/// one lookup this check and the RLE check share.
pub fn encapsulated_fragments(obj: &DefaultDicomObject) -> Option<&[Vec<u8>]> {
    obj.element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .and_then(|e| e.value().fragments())
}

/// Refuses encapsulated pixel data whose claimed decoded size the fragments present cannot
/// hold (see the module doc). Native pixel data, a missing attribute (the decoder reports
/// it) or no pixel data pass unchanged.
pub fn check_pixel_claims(obj: &DefaultDicomObject, path: &Path) -> Result<(), StudyError> {
    check_bits_stored(obj, path)?;
    let Some(fragments) = encapsulated_fragments(obj) else {
        return Ok(());
    };
    let int = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<i64>().ok())
    };
    let (Some(rows), Some(columns)) = (int(tags::ROWS), int(tags::COLUMNS)) else {
        return Ok(());
    };
    let spp = int(tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits = int(tags::BITS_ALLOCATED).unwrap_or(16);
    let frames = int(tags::NUMBER_OF_FRAMES).unwrap_or(1);
    if frames < 1 || frames > fragments.len() as i64 {
        return Err(StudyError::new(
            path,
            format!(
                "NumberOfFrames {frames} but the encapsulated pixel data holds {} fragment(s); \
                 each frame needs at least one (corrupt DICOM file)",
                fragments.len()
            ),
        ));
    }
    // Each factor is a 16-bit attribute or a count bounded by the fragments, so the
    // product fits in u128; a negative one (a fuzzed VR) claims nothing.
    let factor = |v: i64| u128::try_from(v).unwrap_or(0);
    let claim =
        factor(rows) * factor(columns) * factor(spp) * factor(bits).div_ceil(8) * factor(frames);
    let present: u64 = fragments.iter().map(|f| f.len() as u64).sum();
    let most = u128::from(FLOOR_BYTES.max(present.saturating_mul(MAX_RATIO)));
    if claim > most {
        return Err(StudyError::new(
            path,
            format!(
                "the header claims {frames} frame(s) of {rows}x{columns}x{spp} samples of \
                 {bits} bits ({claim} bytes decoded), more than {MAX_RATIO} times the {present} \
                 bytes of compressed pixel data present (corrupt DICOM file)"
            ),
        ));
    }
    Ok(())
}

/// Refuses a BitsStored outside `1..=BitsAllocated` (BitsAllocated 16 when absent, as
/// [`super::dicom_series`] reads it; the decoder refuses a file without it anyway).
fn check_bits_stored(obj: &DefaultDicomObject, path: &Path) -> Result<(), StudyError> {
    let int = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<i64>().ok())
    };
    let Some(stored) = int(tags::BITS_STORED) else {
        return Ok(());
    };
    let allocated = int(tags::BITS_ALLOCATED).unwrap_or(16);
    if !(1..=allocated).contains(&stored) {
        return Err(StudyError::new(
            path,
            format!(
                "BitsStored {stored} is not between 1 and BitsAllocated {allocated} \
                 (corrupt DICOM file)"
            ),
        ));
    }
    Ok(())
}
